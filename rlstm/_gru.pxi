# GRU kernels (PyTorch's convention, gate order r, z, n, reset applied after the recurrent
# product): one layer, one direction, a whole sequence per call, and one step. Included by
# _kernels.pyx after _blas.pxi and _lstm.pxi. The per-step products are BLAS; the cell loops
# (forward and backward) are in the kernel library (_rlk_body.h), at the selected SIMD level.
#
#   r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
#   z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
#   n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
#   h' = (1 - z) * n + z * h
#
# Shapes (rows are time-major: row r = t * B + b):
#   x      (T*B, D)       input
#   w_ih   (3H, D), w_hh (3H, H), b_ih (3H,), b_hh (3H,)
#   gates  (T*B, 3H)      out: x @ w_ih.T + b_ih, overwritten by the activations r, z, n
#   ghn    (T*B, H)       out: W_hn h_{t-1} + b_hn (what the reset gate multiplied)
#   hprev  (T*B, H)       out: h_{t-1} as the step saw it (zero after a reset)
#   y      (T*B, ldy)     out: h_t at column offset yoff
#   resets (T, B) uint8   state zeroed before step t where set, in processing order


cdef extern from "_rlk.h" nogil:
    ctypedef struct rl_gru_rows:
        int dbl
        long B, H
        void* g
        long ldg
        const void* gh
        long ldgh
        const void* hp
        long ldhp
        void* ghn
        long ldghn
        void* h_out
        long ldh
        const void* dy
        long lddy
        void* dh
        long lddh
        void* dgx
        void* dgh
        long lddg
    int rl_gru_cell_fwd_rows(const rl_gru_rows* a)
    int rl_gru_cell_bwd_rows(const rl_gru_rows* a)


def gru_forward(*, const floating[:, ::1] x, const floating[:, ::1] w_ih,
                const floating[:, ::1] w_hh, const floating[::1] b_ih,
                const floating[::1] b_hh, const floating[:, ::1] h0,
                const unsigned char[:, ::1] resets=None, bint reverse=False,
                floating[:, ::1] gates, floating[:, ::1] ghn, floating[:, ::1] hprev,
                floating[:, ::1] y, Py_ssize_t yoff=0, floating[:, ::1] h_n):
    """GRU forward over a whole sequence for one layer and direction (keyword arguments only).

    gates = x @ w_ih.T + b_ih (one GEMM over all T*B rows); per step gh = b_hh + h_{t-1} @ w_hh.T
    (one GEMM) and the fused cell update.
    """
    cdef Py_ssize_t B = h0.shape[0], H = h0.shape[1], D = x.shape[1]
    cdef Py_ssize_t TB = x.shape[0], T = TB // B if B > 0 else 0
    cdef Py_ssize_t G3 = 3 * H
    cdef Py_ssize_t s, t, tp, b, r
    cdef bint has_resets = resets is not None
    cdef floating* gh
    cdef floating* scratch
    cdef rl_gru_rows cr
    if TB == 0 or H == 0:
        return
    gh = <floating*>malloc(2 * G3 * B * sizeof(floating))   # once per call, not per step
    if gh == NULL:
        raise MemoryError()
    scratch = gh + G3 * B
    memset(&cr, 0, sizeof(cr))
    cr.dbl, cr.B, cr.H = floating is double, B, H
    cr.ldg, cr.gh, cr.ldgh, cr.ldhp, cr.ldghn, cr.ldh = G3, gh, G3, H, H, y.shape[1]
    with nogil:
        # gates = x @ w_ih.T + b_ih
        for r in range(TB):
            memcpy(&gates[r, 0], &b_ih[0], G3 * sizeof(floating))
        if D > 0:
            gemm_rm(False, True, <int>TB, <int>G3, <int>D, <floating>1.0, &x[0, 0], <int>D,
                    &w_ih[0, 0], <int>D, <floating>1.0, &gates[0, 0], <int>G3)
        tp = 0
        for s in range(T):
            t = T - 1 - s if reverse else s
            for b in range(B):
                r = t * B + b
                if has_resets and resets[t, b]:
                    memset(&hprev[r, 0], 0, H * sizeof(floating))
                elif s == 0:
                    memcpy(&hprev[r, 0], &h0[b, 0], H * sizeof(floating))
                else:
                    memcpy(&hprev[r, 0], &y[tp * B + b, yoff], H * sizeof(floating))
                memcpy(&gh[b * G3], &b_hh[0], G3 * sizeof(floating))
            # gh = b_hh + hprev[t] @ w_hh.T
            matmul_wt_add(<int>B, <int>G3, <int>H, &hprev[t * B, 0], <int>H, &w_hh[0, 0],
                          <int>H, gh, <int>G3, scratch)
            # the cell of every row, at the selected SIMD level
            cr.g, cr.hp, cr.ghn = &gates[t * B, 0], &hprev[t * B, 0], &ghn[t * B, 0]
            cr.h_out = &y[t * B, yoff]
            rl_gru_cell_fwd_rows(&cr)
            tp = t
        for b in range(B):
            memcpy(&h_n[b, 0], &y[tp * B + b, yoff], H * sizeof(floating))
    free(gh)


def gru_backward(*, const floating[:, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const unsigned char[:, ::1] resets=None,
                 bint reverse=False, const floating[:, ::1] gates,
                 const floating[:, ::1] ghn, const floating[:, ::1] hprev,
                 const floating[:, ::1] dy, Py_ssize_t dyoff=0,
                 floating[:, ::1] dgx, floating[:, ::1] dgh,
                 floating[:, ::1] dx=None, bint dx_accumulate=False,
                 floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                 floating[::1] db_ih, floating[::1] db_hh, floating[:, ::1] dh):
    """GRU backward over a whole sequence for one layer and direction (keyword arguments only).

    On entry dh holds the gradient on the final h; on exit, on the initial h. Per step: the
    fused cell backward, then dh = z * dh + dgh[t] @ w_hh (one GEMM). After the sweep:
    dx = dgx @ w_ih (``dx_accumulate``: dx +=; ``dx=None`` skips it), dw_ih += dgx.T @ x, dw_hh += dgh.T @ hprev and the bias
    gradients as column sums: the merged form.
    """
    cdef Py_ssize_t B = dh.shape[0], H = dh.shape[1], D = x.shape[1]
    cdef Py_ssize_t TB = x.shape[0], T = TB // B if B > 0 else 0
    cdef Py_ssize_t G3 = 3 * H
    cdef Py_ssize_t s, t, b, r
    cdef bint has_resets = resets is not None, want_dx = dx is not None
    cdef rl_gru_rows cr
    if TB == 0 or H == 0:
        return
    memset(&cr, 0, sizeof(cr))
    cr.dbl, cr.B, cr.H = floating is double, B, H
    cr.ldg, cr.ldghn, cr.ldhp, cr.lddy, cr.dh, cr.lddh, cr.lddg = G3, H, H, dy.shape[1], \
        &dh[0, 0], H, G3
    with nogil:
        for s in range(T - 1, -1, -1):
            t = T - 1 - s if reverse else s
            cr.g, cr.ghn, cr.hp = <void*>&gates[t * B, 0], <void*>&ghn[t * B, 0], &hprev[t * B, 0]
            cr.dy, cr.dgx, cr.dgh = &dy[t * B, dyoff], &dgx[t * B, 0], &dgh[t * B, 0]
            rl_gru_cell_bwd_rows(&cr)
            # dh += dgh[t] @ w_hh   (the gradient on h_{t-1})
            gemm_rm(False, False, <int>B, <int>H, <int>G3, <floating>1.0, &dgh[t * B, 0],
                    <int>G3, &w_hh[0, 0], <int>H, <floating>1.0, &dh[0, 0], <int>H)
            if has_resets:
                for b in range(B):
                    if resets[t, b]:
                        memset(&dh[b, 0], 0, H * sizeof(floating))
        if D > 0:
            if want_dx:
                # dx = dgx @ w_ih (+ dx)
                gemm_rm(False, False, <int>TB, <int>D, <int>G3, <floating>1.0, &dgx[0, 0],
                        <int>G3, &w_ih[0, 0], <int>D,
                        <floating>1.0 if dx_accumulate else <floating>0.0, &dx[0, 0], <int>D)
            # dw_ih += dgx.T @ x
            gemm_rm(True, False, <int>G3, <int>D, <int>TB, <floating>1.0, &dgx[0, 0],
                    <int>G3, &x[0, 0], <int>D, <floating>1.0, &dw_ih[0, 0], <int>D)
        # dw_hh += dgh.T @ hprev
        gemm_rm(True, False, <int>G3, <int>H, <int>TB, <floating>1.0, &dgh[0, 0], <int>G3,
                &hprev[0, 0], <int>H, <floating>1.0, &dw_hh[0, 0], <int>H)
        _colsum_add(&dgx[0, 0], TB, G3, &db_ih[0])
        _colsum_add(&dgh[0, 0], TB, G3, &db_hh[0])


# ---------------------------------------------------------------------------- rollout path
cdef void _gru_step_layers(floating* base, const Py_ssize_t* offs, int L, int D, int H,
                           const floating* x, const floating* h, floating* work,
                           floating* hn, Py_ssize_t B, const floating* zb=NULL) noexcept nogil:
    """Advance every layer one step: gx = b_ih + x W_ih^T, gh = b_hh + h W_hh^T, the cell.

    work holds 3 * B * 3H elements: gx rows, gh rows, the transposed-product scratch. ``zb``
    (3H zeros) stands in for both biases of a layer built with bias=False (NULL: read them).
    """
    cdef int layer, d_in
    cdef Py_ssize_t b, G3 = 3 * H, BH = B * H
    cdef const floating* inp = x
    cdef floating* gx = work
    cdef floating* gh = work + B * G3
    cdef floating* scratch = work + 2 * B * G3
    cdef const floating* w_ih
    cdef const floating* w_hh
    cdef const floating* b_ih
    cdef const floating* b_hh
    cdef rl_gru_rows cr
    for layer in range(L):
        d_in = D if layer == 0 else H
        w_ih = base + offs[4 * layer]
        w_hh = base + offs[4 * layer + 1]
        if zb == NULL:
            b_ih = base + offs[4 * layer + 2]
            b_hh = base + offs[4 * layer + 3]
        else:
            b_ih = zb
            b_hh = zb
        for b in range(B):
            memcpy(gx + b * G3, b_ih, G3 * sizeof(floating))
            memcpy(gh + b * G3, b_hh, G3 * sizeof(floating))
        if d_in > 0:
            matmul_wt_add(<int>B, <int>G3, d_in, inp, d_in, w_ih, d_in, gx, <int>G3, scratch)
        matmul_wt_add(<int>B, <int>G3, H, h + layer * BH, H, w_hh, H, gh, <int>G3, scratch)
        # the cell of every row at the selected SIMD level (ghn, unused here, into scratch)
        cr.dbl, cr.B, cr.H = floating is double, B, H
        cr.g, cr.ldg, cr.gh, cr.ldgh = gx, G3, gh, G3
        cr.hp, cr.ldhp, cr.ghn, cr.ldghn = h + layer * BH, H, scratch, H
        cr.h_out, cr.ldh = hn + layer * BH, H
        rl_gru_cell_fwd_rows(&cr)
        inp = hn + layer * BH


cdef class GRUStepPlan:
    """Pointers into a GRU's flat parameters for the fast ``step()`` path (see StepPlan)."""
    cdef object owner          # the GRU; its flat_params keep the pointers valid
    cdef object flat
    cdef Py_ssize_t* offs      # per layer: offsets of w_ih, w_hh, b_ih, b_hh
    cdef int L, D, H, typenum
    cdef object zeros          # bias=False: 3H zeros read as both biases (else None)
    cdef void* zb

    def __cinit__(self, owner, list offsets, int input_size, int hidden_size, zero_bias=None):
        cdef Py_ssize_t i
        self.owner = owner
        self.flat = owner.flat_params
        self.zeros = zero_bias
        self.zb = NULL
        if zero_bias is not None:
            if not (_is_exact(zero_bias, cnp.PyArray_TYPE(<cnp.ndarray>self.flat), 1)
                    and (<cnp.ndarray>zero_bias).shape[0] == 3 * hidden_size):
                raise ValueError("zero_bias must be a contiguous (3H,) array of the dtype")
            self.zb = cnp.PyArray_DATA(<cnp.ndarray>zero_bias)
        self.L = len(offsets) // 4
        self.D = input_size
        self.H = hidden_size
        self.typenum = cnp.PyArray_TYPE(<cnp.ndarray>self.flat)
        self.offs = <Py_ssize_t*>malloc(max(1, len(offsets)) * sizeof(Py_ssize_t))
        if self.offs == NULL:
            raise MemoryError()
        for i in range(len(offsets)):
            self.offs[i] = offsets[i]

    def __dealloc__(self):
        free(self.offs)

    def step(self, x, state):
        """``h_t, h = plan.step(x_t, h)`` for the owning GRU (see ``GRU.step``)."""
        cdef cnp.ndarray xa, ha, hn, y
        cdef Py_ssize_t B
        cdef int L = self.L, H = self.H, nd3 = 3
        cdef cnp.npy_intp dims[3]
        cdef void* work
        if (_is_exact(x, self.typenum, 2) and (<cnp.ndarray>x).shape[1] == self.D
                and _is_exact(state, self.typenum, 3)
                and (<cnp.ndarray>state).shape[0] == L
                and (<cnp.ndarray>state).shape[1] == (<cnp.ndarray>x).shape[0]
                and (<cnp.ndarray>state).shape[2] == H):
            xa = <cnp.ndarray>x
            ha = <cnp.ndarray>state
        else:
            xa, ha = self.owner._step_inputs(x, state)
        B = xa.shape[0]
        if not (_finite(xa, B * self.D, self.typenum) and _finite(ha, L * B * H, self.typenum)):
            raise ValueError("x_t or the state h contains NaN or inf; clean the input "
                             "(np.nan_to_num) or reset the state")
        dims[0] = L
        dims[1] = B
        dims[2] = H
        hn = cnp.PyArray_EMPTY(nd3, dims, self.typenum, 0)
        y = cnp.PyArray_EMPTY(2, &dims[1], self.typenum, 0)
        if B == 0:
            return y, hn
        work = malloc(3 * B * 3 * H * cnp.PyArray_ITEMSIZE(hn))
        if work == NULL:
            raise MemoryError()
        with nogil:
            if self.typenum == cnp.NPY_FLOAT32:
                _gru_step_layers(<float*>cnp.PyArray_DATA(<cnp.ndarray>self.flat), self.offs, L,
                                 self.D, H, <float*>cnp.PyArray_DATA(xa),
                                 <float*>cnp.PyArray_DATA(ha), <float*>work,
                                 <float*>cnp.PyArray_DATA(hn), B, <float*>self.zb)
            else:
                _gru_step_layers(<double*>cnp.PyArray_DATA(<cnp.ndarray>self.flat), self.offs,
                                 L, self.D, H, <double*>cnp.PyArray_DATA(xa),
                                 <double*>cnp.PyArray_DATA(ha), <double*>work,
                                 <double*>cnp.PyArray_DATA(hn), B, <double*>self.zb)
            memcpy(cnp.PyArray_DATA(y),
                   <char*>cnp.PyArray_DATA(hn) + (L - 1) * B * H * cnp.PyArray_ITEMSIZE(hn),
                   B * H * cnp.PyArray_ITEMSIZE(hn))
        free(work)
        return y, hn
