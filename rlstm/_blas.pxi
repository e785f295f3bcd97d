# Shared helpers of the kernels: row-major BLAS wrappers and numerically stable activations.
# Included by _kernels.pyx; every other .pxi may use these.

from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf, log, logf, fabs, fabsf, INFINITY
from libc.string cimport memcpy, memset
from libc.stdlib cimport calloc, malloc, free
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv, saxpy, daxpy


cdef inline void gemm_rm(bint trans_a, bint trans_b, int m, int n, int k, floating alpha,
                         const floating* a, int lda, const floating* b, int ldb,
                         floating beta, floating* c, int ldc) noexcept nogil:
    """Row-major C[m, n] = alpha * op(A) @ op(B) + beta * C.

    Row-major X seen by a column-major BLAS is X.T, so C.T = op(B).T @ op(A).T is one Fortran
    GEMM with the operands swapped and the same transpose flags.
    """
    cdef char ta = b't' if trans_a else b'n'
    cdef char tb = b't' if trans_b else b'n'
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda, &beta, c, &ldc)


cdef inline void gemv_rm(bint trans, int m, int n, floating alpha, const floating* a, int lda,
                         const floating* x, floating beta, floating* y) noexcept nogil:
    """Row-major y = alpha * op(A) @ x + beta * y, A of shape (m, n).

    Column-major BLAS sees A.T (n x m), so op flips: trans=False calls GEMV with 't'.
    """
    cdef char t = b'n' if trans else b't'
    cdef int one = 1
    if m == 0 or n == 0:
        return
    if floating is float:
        sgemv(&t, &n, &m, &alpha, <float*>a, &lda, <float*>x, &one, &beta, y, &one)
    else:
        dgemv(&t, &n, &m, &alpha, <double*>a, &lda, <double*>x, &one, &beta, y, &one)


cdef inline void matmul_wt(int m, int n, int k, const floating* a, int lda,
                           const floating* w, int ldw, floating beta,
                           floating* c, int ldc) noexcept nogil:
    """C[m, n] = A[m, k] @ W[n, k].T + beta * C, with a GEMV when m == 1 (the B=1 rollout)."""
    if m == 1:
        # c = W @ a  (one row of A)
        gemv_rm(False, n, k, <floating>1.0, w, ldw, a, beta, c)
    else:
        gemm_rm(False, True, m, n, k, <floating>1.0, a, lda, w, ldw, beta, c, ldc)


cdef inline void _colsum_add(const floating* a, Py_ssize_t rows, Py_ssize_t n,
                             floating* out) noexcept nogil:
    """out += a.sum(axis=0) for a row-major (rows, n) array."""
    cdef Py_ssize_t r, j
    for r in range(rows):
        for j in range(n):
            out[j] += a[r * n + j]


cdef inline void matmul_wt_add(int m, int n, int k, const floating* a, int lda,
                               const floating* w, int ldw, floating* c, int ldc,
                               floating* scratch) noexcept nogil:
    """C[m, n] += A[m, k] @ W[n, k].T for small m (the per-step recurrent product).

    OpenBLAS is about twice as fast at the transposed problem S = W @ A.T (n x m) when m is a
    batch of a few dozen rows, so that is computed into ``scratch`` (n * m elements) and added
    back transposed. m == 1 is a plain GEMV.
    """
    cdef Py_ssize_t i, j
    if m == 1:
        gemv_rm(False, n, k, <floating>1.0, w, ldw, a, <floating>1.0, c)
        return
    # scratch = W @ A.T
    gemm_rm(False, True, n, m, k, <floating>1.0, w, ldw, a, lda, <floating>0.0, scratch, m)
    for i in range(m):
        for j in range(n):
            c[i * ldc + j] += scratch[j * m + i]


cdef extern from "_rlk.h" nogil:
    ctypedef struct rl_gemm:
        int dbl
        long M, N, K
        const void* a
        long lda
        const void* b
        long ldb
        void* c
        long ldc
        int accumulate
    int rl_gemm_run(const rl_gemm* g)
    ctypedef struct rl_cell_rows:
        int dbl
        long B, H, ldg
        void* gates
        const void* cprev
        const void* peep
        long peep_ld
        void* c_out
        void* h_out
        int identity
    int rl_lstm_cell_rows(const rl_cell_rows* a)
    ctypedef struct rl_cell_bwd_rows:
        int dbl, identity
        long B, H, ldg
        const void* a
        const void* c
        const void* cprev
        const void* dy
        const void* peep
        long peep_ld
        void* dh
        void* dc
        void* dg
        void* dbias
        void* dpeep
        long dpeep_ld
    int rl_lstm_cell_bwd_rows(const rl_cell_bwd_rows* a)
    ctypedef struct rl_step_layer:
        int dbl, identity
        long B, D, H
        const void* x
        const void* h
        const void* c
        const void* w_ih
        const void* w_hh
        const void* b_ih
        const void* b_hh
        const void* peep
        void* h_out
        void* c_out
        void* work
    int rl_lstm_step_layer(const rl_step_layer* a)


cdef inline int _small_gemm(bint dbl, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const void* a,
                            Py_ssize_t lda, const void* b, Py_ssize_t ldb, void* c,
                            Py_ssize_t ldc, bint accumulate) noexcept nogil:
    """C[M, N] (+)= A[M, K] @ B[K, N] on the kernel library's micro-kernel (row-major)."""
    cdef rl_gemm g
    g.dbl, g.M, g.N, g.K = dbl, M, N, K
    g.a, g.lda, g.b, g.ldb, g.c, g.ldc = a, lda, b, ldb, c, ldc
    g.accumulate = accumulate
    return rl_gemm_run(&g)


def small_gemm(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] c,
               bint accumulate=False):
    """c (+)= a @ b on the kernel library's micro-kernel (exposed for its tests)."""
    cdef int rc
    with nogil:
        rc = _small_gemm(floating is double, a.shape[0], b.shape[1], a.shape[1],
                         &a[0, 0] if a.shape[0] * a.shape[1] > 0 else NULL, a.shape[1],
                         &b[0, 0] if b.shape[0] * b.shape[1] > 0 else NULL, b.shape[1],
                         &c[0, 0] if c.shape[0] * c.shape[1] > 0 else NULL, c.shape[1],
                         accumulate)
    if rc != 0:
        raise MemoryError()


cdef inline int _cell_rows(Py_ssize_t B, Py_ssize_t H, floating* gates, Py_ssize_t ldg,
                           const floating* cprev, const floating* peep, floating* c_out,
                           floating* h_out, bint identity) noexcept nogil:
    """The LSTM cell update of B rows at the selected SIMD level (the gates hold their biases;
    cprev and peep may be NULL: zeros)."""
    cdef rl_cell_rows a
    a.dbl, a.B, a.H, a.ldg = floating is double, B, H, ldg
    a.gates, a.cprev, a.peep, a.c_out, a.h_out = gates, cprev, peep, c_out, h_out
    a.peep_ld, a.identity = 0, identity
    return rl_lstm_cell_rows(&a)


cdef int _gates_t(Py_ssize_t B, Py_ssize_t G, Py_ssize_t K, const floating* x,
                  const floating* w, floating* xT, floating* gT) noexcept nogil:
    """gT[G, B] += w[G, K] @ x[B, K].T on the micro-kernel: x is transposed into xT (K, B) and
    W read in place, every weight once per call however many rows the batch has (the rollout
    step, whose weights may change between calls, so nothing is packed)."""
    cdef Py_ssize_t b, k
    for b in range(B):
        for k in range(K):
            xT[k * B + b] = x[b * K + k]
    return _small_gemm(floating is double, G, B, K, w, K, xT, B, gT, B, True)


cdef extern from "_fastmath.h" nogil:
    float rl_expf(float x)
    double rl_exp(double x)
    float rl_sigmoidf(float x)
    double rl_sigmoid(double x)
    float rl_tanhf(float x)
    double rl_tanh(double x)


cdef inline floating sigmoid(floating x) noexcept nogil:
    """1 / (1 + exp(-x)), branch-free and vectorisable (see _fastmath.h); no overflow."""
    if floating is float:
        return rl_sigmoidf(x)
    else:
        return rl_sigmoid(x)


cdef inline floating tanh_(floating x) noexcept nogil:
    """tanh(x), branch-free and vectorisable (see _fastmath.h)."""
    if floating is float:
        return rl_tanhf(x)
    else:
        return rl_tanh(x)


cdef inline floating fexp(floating x) noexcept nogil:
    """exp(x) clamped to the finite range, vectorisable (see _fastmath.h)."""
    if floating is float:
        return rl_expf(x)
    else:
        return rl_exp(x)


cdef inline floating exp_(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating log_(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


def activations(const floating[::1] x, floating[::1] sig, floating[::1] th,
                floating[::1] ex):
    """sig = sigmoid(x), th = tanh(x), ex = exp(x) with the kernels' own activations.

    Exposed for the accuracy tests (tests/test_fastmath.py); not part of the public API.
    """
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            sig[i] = sigmoid(x[i])
            th[i] = tanh_(x[i])
            ex[i] = fexp(x[i])
