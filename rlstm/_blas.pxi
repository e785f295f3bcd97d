# Shared helpers of the kernels: row-major BLAS wrappers and numerically stable activations.
# Included by _kernels.pyx; every other .pxi may use these.

from cython cimport floating
from libc.math cimport exp, expf, tanh, tanhf, log, logf, log1p, log1pf, fabs, fabsf, INFINITY
from libc.string cimport memcpy, memset
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


cdef inline floating sigmoid(floating x) noexcept nogil:
    """1 / (1 + exp(-x)), without overflow for large |x|."""
    cdef floating e
    if floating is float:
        if x >= 0:
            return 1.0 / (1.0 + expf(-x))
        e = expf(x)
        return e / (1.0 + e)
    else:
        if x >= 0:
            return 1.0 / (1.0 + exp(-x))
        e = exp(x)
        return e / (1.0 + e)


cdef inline floating tanh_(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


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


cdef inline floating log1p_(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)
