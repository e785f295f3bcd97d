# LSTM kernels: one layer, one direction, a whole sequence per call (forward and backward),
# and one time step for the rollout path. Included by _kernels.pyx.
#
# Shapes (rows are time-major: row r = t * B + b):
#   x      (T*B, D)       input
#   w_ih   (4H, D)        fused input weights, gates i, f, g, o
#   w_hh   (4H, H)        fused recurrent weights
#   peep   (3H,)          diagonal peepholes p_i, p_f, p_o (only read when peephole is set)
#   gates  (T*B, 4H)      out: the gate activations i, f, g, o
#   cs     (T*B, H)       out: c_t
#   hprev  (T*B, H)       out: h_{t-1} as the step saw it (zero after a reset); backward's GEMM input
#   y      (T*B, ldy)     out: h_t, written at column offset yoff (both directions share one y)
#   resets (T, B) uint8   state zeroed before step t where set, in processing order
#
# The vanilla and peephole sweeps run in the compiled kernel library (_rlk.h, _rlk_body.h): the
# recurrent weights are packed once per call for a register-blocked micro-kernel, the cell
# update (backward: the cell backward) is fused into each weight panel's epilogue, and the
# panels are split across a thread team. The large GEMMs (input projection, dx, dW_ih, dW_hh)
# stay with BLAS, which runs them at peak.
#
# cell_rec (variant="peephole_cell"): the gates' recurrent input is c_{t-1} through full
# matrices and the cell input has no recurrent term. Then w_hh is w_ch (3H, H), rows for the
# gates i, f, o; hprev holds c_{t-1}; the recurrent product is two BLAS GEMMs (into the i, f
# columns and the o columns of the gate rows), and h_{t-1} feeds nothing.


cdef inline void _lstm_cell_fwd(floating* g, const floating* cprev, floating* c_out,
                                floating* h_out, const floating* peep, bint peephole,
                                bint identity, Py_ssize_t H) noexcept nogil:
    """One row: g holds pre-activations [i f g o] and is overwritten by activations.

    c = f * c_prev + i * g;  h = o * act(c)  (peepholes: i, f read c_prev; o reads c).
    ``cprev`` may be NULL, meaning zeros. Written as simple stages so each loop vectorises.
    """
    cdef Py_ssize_t j
    cdef floating* gi = g
    cdef floating* gf = g + H
    cdef floating* gg = g + 2 * H
    cdef floating* go = g + 3 * H
    if peephole and cprev != NULL:
        for j in range(H):
            gi[j] = gi[j] + peep[j] * cprev[j]
            gf[j] = gf[j] + peep[H + j] * cprev[j]
    for j in range(2 * H):
        g[j] = sigmoid(g[j])
    for j in range(H):
        gg[j] = tanh_(gg[j])
    if cprev != NULL:
        for j in range(H):
            c_out[j] = gf[j] * cprev[j] + gi[j] * gg[j]
    else:
        for j in range(H):
            c_out[j] = gi[j] * gg[j]
    if peephole:
        for j in range(H):
            go[j] = go[j] + peep[2 * H + j] * c_out[j]
    for j in range(H):
        go[j] = sigmoid(go[j])
    if identity:
        for j in range(H):
            h_out[j] = go[j] * c_out[j]
    else:
        for j in range(H):
            h_out[j] = go[j] * tanh_(c_out[j])


cdef inline void _add_bias_rows(floating* out, Py_ssize_t rows, Py_ssize_t n,
                                const floating* b1, const floating* b2) noexcept nogil:
    """out[r, :] = b1 + b2 for every row."""
    cdef Py_ssize_t r, j
    for j in range(n):
        out[j] = b1[j] + b2[j]
    for r in range(1, rows):
        memcpy(&out[r * n], out, n * sizeof(floating))


cdef extern from "_rlk.h" nogil:
    ctypedef struct rl_lstm_seq:
        int dbl
        long T, B, H
        int reverse, peephole, identity
        const unsigned char* resets
        const void* w_hh
        const void* bias
        const void* peep
        const void* h0
        const void* c0
        void* gates
        void* cs
        void* hprev
        void* y
        long ldy, yoff
        void* h_n
        void* c_n
        const void* dy
        long lddy, dyoff
        void* dgates
        void* dh
        void* dc
        void* dbias
        void* dpeep
        int nthreads
    int rl_lstm_forward(const rl_lstm_seq* a)
    int rl_lstm_backward(const rl_lstm_seq* a)


def lstm_forward(*, const floating[:, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[::1] b_ih,
                 const floating[::1] b_hh, const floating[::1] peep,
                 const floating[:, ::1] h0, const floating[:, ::1] c0,
                 const unsigned char[:, ::1] resets=None, bint reverse=False,
                 bint peephole=False, bint identity=False, bint cell_rec=False,
                 floating[:, ::1] gates, floating[:, ::1] cs, floating[:, ::1] hprev,
                 floating[:, ::1] y, Py_ssize_t yoff=0,
                 floating[:, ::1] h_n, floating[:, ::1] c_n):
    """LSTM forward over a whole sequence for one layer and direction (keyword arguments only).

    gates = x @ w_ih.T (one GEMM over all T*B rows), then per step
    gates[t] += h_{t-1} @ w_hh.T + b_ih + b_hh and the fused cell update (the compiled sweep).
    ``resets`` (T, B) zeroes a row's state before step t (processing order); ``peep`` is read
    only with ``peephole``; h_t goes to ``y[:, yoff:yoff + H]``.
    """
    cdef Py_ssize_t B = h0.shape[0], H = h0.shape[1], D = x.shape[1]
    cdef Py_ssize_t TB = x.shape[0], T = TB // B if B > 0 else 0
    cdef Py_ssize_t G4 = 4 * H, j
    cdef rl_lstm_seq a
    cdef floating* bias
    cdef int rc
    if TB == 0 or H == 0:
        return
    if cell_rec:
        _cellrec_forward(x, w_ih, w_hh, b_ih, b_hh, h0, c0, resets, reverse, identity,
                         gates, cs, hprev, y, yoff, h_n, c_n)
        return
    bias = <floating*>malloc(G4 * sizeof(floating))
    if bias == NULL:
        raise MemoryError()
    memset(&a, 0, sizeof(a))
    a.dbl = floating is double
    a.T, a.B, a.H = T, B, H
    a.reverse, a.peephole, a.identity = reverse, peephole, identity
    a.resets = &resets[0, 0] if resets is not None else NULL
    a.w_hh = &w_hh[0, 0]
    a.bias = bias
    a.peep = &peep[0] if peephole else NULL
    a.h0, a.c0 = &h0[0, 0], &c0[0, 0]
    a.gates, a.cs, a.hprev = &gates[0, 0], &cs[0, 0], &hprev[0, 0]
    a.y, a.ldy, a.yoff = &y[0, 0], y.shape[1], yoff
    a.h_n, a.c_n = &h_n[0, 0], &c_n[0, 0]
    with nogil:
        for j in range(G4):
            bias[j] = b_ih[j] + b_hh[j]
        # gates = x @ w_ih.T   (the biases are added in the sweep's cell update)
        if D > 0:
            gemm_rm(False, True, <int>TB, <int>G4, <int>D, <floating>1.0, &x[0, 0], <int>D,
                    &w_ih[0, 0], <int>D, <floating>0.0, &gates[0, 0], <int>G4)
        else:
            memset(&gates[0, 0], 0, TB * G4 * sizeof(floating))
        rc = rl_lstm_forward(&a)
    free(bias)
    if rc != 0:
        raise MemoryError()


cdef void _cellrec_forward(const floating[:, ::1] x, const floating[:, ::1] w_ih,
                           const floating[:, ::1] w_ch, const floating[::1] b_ih,
                           const floating[::1] b_hh, const floating[:, ::1] h0,
                           const floating[:, ::1] c0, const unsigned char[:, ::1] resets,
                           bint reverse, bint identity, floating[:, ::1] gates,
                           floating[:, ::1] cs, floating[:, ::1] hprev, floating[:, ::1] y,
                           Py_ssize_t yoff, floating[:, ::1] h_n,
                           floating[:, ::1] c_n) except *:
    """The peephole_cell sweep: gates[t][:, i f o] += c_{t-1} @ w_ch.T (BLAS), then the cell."""
    cdef Py_ssize_t B = h0.shape[0], H = h0.shape[1], D = x.shape[1]
    cdef Py_ssize_t TB = x.shape[0], T = TB // B
    cdef Py_ssize_t G4 = 4 * H
    cdef Py_ssize_t s, t, tp, b, r
    cdef bint has_resets = resets is not None
    cdef const floating* cprev
    cdef floating* scratch = <floating*>malloc(G4 * B * sizeof(floating))
    if scratch == NULL:
        raise MemoryError()
    with nogil:
        # gates = x @ w_ih.T + (b_ih + b_hh)
        _add_bias_rows(&gates[0, 0], TB, G4, &b_ih[0], &b_hh[0])
        if D > 0:
            gemm_rm(False, True, <int>TB, <int>G4, <int>D, <floating>1.0, &x[0, 0], <int>D,
                    &w_ih[0, 0], <int>D, <floating>1.0, &gates[0, 0], <int>G4)
        tp = 0
        for s in range(T):
            t = T - 1 - s if reverse else s
            # hprev[t] = c_{t-1}, zeroed where the row resets
            for b in range(B):
                r = t * B + b
                if has_resets and resets[t, b]:
                    memset(&hprev[r, 0], 0, H * sizeof(floating))
                elif s == 0:
                    memcpy(&hprev[r, 0], &c0[b, 0], H * sizeof(floating))
                else:
                    memcpy(&hprev[r, 0], &cs[tp * B + b, 0], H * sizeof(floating))
            # gates[t][:, i f] += c_{t-1} @ w_ch[:2H].T;  gates[t][:, o] += c_{t-1} @ w_ch[2H:].T
            matmul_wt_add(<int>B, <int>(2 * H), <int>H, &hprev[t * B, 0], <int>H,
                          &w_ch[0, 0], <int>H, &gates[t * B, 0], <int>G4, scratch)
            matmul_wt_add(<int>B, <int>H, <int>H, &hprev[t * B, 0], <int>H,
                          &w_ch[2 * H, 0], <int>H, &gates[t * B, 3 * H], <int>G4, scratch)
            for b in range(B):
                r = t * B + b
                if has_resets and resets[t, b]:
                    cprev = NULL
                elif s == 0:
                    cprev = &c0[b, 0]
                else:
                    cprev = &cs[tp * B + b, 0]
                _lstm_cell_fwd(&gates[r, 0], cprev, &cs[r, 0], &y[r, yoff], NULL,
                               False, identity, H)
            tp = t
        for b in range(B):
            memcpy(&h_n[b, 0], &y[tp * B + b, yoff], H * sizeof(floating))
            memcpy(&c_n[b, 0], &cs[tp * B + b, 0], H * sizeof(floating))
    free(scratch)


cdef extern from "_cells.h" nogil:
    void rl_lstm_cell_bwd_f(const float* a, const float* c, const float* cp, const float* dy,
                            const float* dh, float* dc, float* dg, const float* peep,
                            int identity, long H)
    void rl_lstm_cell_bwd_d(const double* a, const double* c, const double* cp,
                            const double* dy, const double* dh, double* dc, double* dg,
                            const double* peep, int identity, long H)


cdef inline void _lstm_cell_bwd(const floating* a, const floating* c, const floating* cprev,
                                const floating* dy, floating* dh, floating* dc,
                                floating* dg, const floating* peep, bint identity,
                                Py_ssize_t H) noexcept nogil:
    """One row of the cell's backward pass (the loop is in _cells.h, with restrict pointers).

    In: activations a = [i f g o], c_t, c_{t-1}, dy (gradient on h_t from above), dh/dc (gradient
    on h_t/c_t from step t+1), peepholes p_i, p_f, p_o (zeros for the vanilla LSTM). Out: dg, the
    gradient on the pre-activations, and dc, the gradient on c_{t-1}. dh is read here and
    overwritten by the caller's GEMM afterwards.
    """
    if floating is float:
        rl_lstm_cell_bwd_f(a, c, cprev, dy, dh, dc, dg, peep, identity, H)
    else:
        rl_lstm_cell_bwd_d(a, c, cprev, dy, dh, dc, dg, peep, identity, H)


cdef inline void _peephole_grad(const floating* dg, const floating* c, const floating* cprev,
                                floating* dpeep, Py_ssize_t H) noexcept nogil:
    """dp_i += dg_i * c_{t-1};  dp_f += dg_f * c_{t-1};  dp_o += dg_o * c_t  (one row)."""
    cdef Py_ssize_t j
    for j in range(H):
        dpeep[j] += dg[j] * cprev[j]
        dpeep[H + j] += dg[H + j] * cprev[j]
        dpeep[2 * H + j] += dg[3 * H + j] * c[j]


def lstm_backward(*, const floating[:, ::1] x, const floating[:, ::1] w_ih,
                  const floating[:, ::1] w_hh, const floating[::1] peep,
                  const floating[:, ::1] c0, const unsigned char[:, ::1] resets=None,
                  bint reverse=False, bint peephole=False, bint identity=False,
                  bint cell_rec=False, const floating[:, ::1] gates,
                  const floating[:, ::1] cs, const floating[:, ::1] hprev,
                  const floating[:, ::1] dy, Py_ssize_t dyoff=0, floating[:, ::1] dgates,
                  floating[:, ::1] dx=None, bint dx_accumulate=False,
                  floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                  floating[::1] db_ih, floating[::1] db_hh, floating[::1] dpeep,
                  floating[:, ::1] dh, floating[:, ::1] dc):
    """LSTM backward over a whole sequence for one layer and direction (keyword arguments only).

    On entry dh, dc hold the gradient on the final state; on exit, on the initial state.
    Per step (the compiled sweep): the fused cell backward, then dh = dgates[t] @ w_hh. After the
    sweep: dx = dgates @ w_ih (``dx_accumulate``: dx +=; ``dx=None`` skips it),
    dw_ih += dgates.T @ x, dw_hh += dgates.T @ hprev, db_ih and db_hh += colsum(dgates):
    the big GEMMs of oneDNN's merged form, on BLAS.
    """
    cdef Py_ssize_t B = c0.shape[0], H = c0.shape[1], D = x.shape[1]
    cdef Py_ssize_t TB = x.shape[0], T = TB // B if B > 0 else 0
    cdef Py_ssize_t G4 = 4 * H, j
    cdef rl_lstm_seq a
    cdef floating* dbias
    cdef int rc = 0
    if TB == 0 or H == 0:
        return
    dbias = <floating*>calloc(G4, sizeof(floating))
    if dbias == NULL:
        raise MemoryError()
    if cell_rec:
        try:
            _cellrec_backward(w_hh, c0, resets, reverse, identity, gates, cs, hprev, dy, dyoff,
                              dgates, dh, dc, dbias)
        except MemoryError:
            free(dbias)
            raise
    else:
        memset(&a, 0, sizeof(a))
        a.dbl = floating is double
        a.T, a.B, a.H = T, B, H
        a.reverse, a.peephole, a.identity = reverse, peephole, identity
        a.resets = &resets[0, 0] if resets is not None else NULL
        a.w_hh = &w_hh[0, 0]
        a.peep = &peep[0] if peephole else NULL
        a.c0 = &c0[0, 0]
        a.gates, a.cs = <void*>&gates[0, 0], <void*>&cs[0, 0]   # read only in backward
        a.dy, a.lddy, a.dyoff = &dy[0, 0], dy.shape[1], dyoff
        a.dgates, a.dh, a.dc = &dgates[0, 0], &dh[0, 0], &dc[0, 0]
        a.dbias = dbias
        a.dpeep = &dpeep[0] if peephole else NULL
        with nogil:
            rc = rl_lstm_backward(&a)
    if rc != 0:
        free(dbias)
        raise MemoryError()
    with nogil:
        if D > 0:
            if dx is not None:
                # dx = dgates @ w_ih (+ dx)
                gemm_rm(False, False, <int>TB, <int>D, <int>G4, <floating>1.0, &dgates[0, 0],
                        <int>G4, &w_ih[0, 0], <int>D,
                        <floating>1.0 if dx_accumulate else <floating>0.0, &dx[0, 0], <int>D)
            # dw_ih += dgates.T @ x
            gemm_rm(True, False, <int>G4, <int>D, <int>TB, <floating>1.0, &dgates[0, 0],
                    <int>G4, &x[0, 0], <int>D, <floating>1.0, &dw_ih[0, 0], <int>D)
        if cell_rec:
            # dw_ch[:2H] += dgates[:, i f].T @ hprev;  dw_ch[2H:] += dgates[:, o].T @ hprev
            gemm_rm(True, False, <int>(2 * H), <int>H, <int>TB, <floating>1.0, &dgates[0, 0],
                    <int>G4, &hprev[0, 0], <int>H, <floating>1.0, &dw_hh[0, 0], <int>H)
            gemm_rm(True, False, <int>H, <int>H, <int>TB, <floating>1.0, &dgates[0, 3 * H],
                    <int>G4, &hprev[0, 0], <int>H, <floating>1.0, &dw_hh[2 * H, 0], <int>H)
        else:
            # dw_hh += dgates.T @ hprev
            gemm_rm(True, False, <int>G4, <int>H, <int>TB, <floating>1.0, &dgates[0, 0],
                    <int>G4, &hprev[0, 0], <int>H, <floating>1.0, &dw_hh[0, 0], <int>H)
        # db_ih, db_hh += dgates.sum(axis=0)   (summed by the sweep)
        for j in range(G4):
            db_ih[j] += dbias[j]
            db_hh[j] += dbias[j]
    free(dbias)


cdef void _cellrec_backward(const floating[:, ::1] w_ch, const floating[:, ::1] c0,
                            const unsigned char[:, ::1] resets, bint reverse, bint identity,
                            const floating[:, ::1] gates, const floating[:, ::1] cs,
                            const floating[:, ::1] hprev, const floating[:, ::1] dy,
                            Py_ssize_t dyoff, floating[:, ::1] dgates, floating[:, ::1] dh,
                            floating[:, ::1] dc, floating* dbias) except *:
    """The peephole_cell sweep backward: the cell backward per step, then
    dc += dgates[t][:, i f] @ w_ch[:2H] + dgates[t][:, o] @ w_ch[2H:] (BLAS), dh = 0."""
    cdef Py_ssize_t B = c0.shape[0], H = c0.shape[1]
    cdef Py_ssize_t TB = gates.shape[0], T = TB // B
    cdef Py_ssize_t G4 = 4 * H
    cdef Py_ssize_t s, t, tc, b, r
    cdef bint reset, has_resets = resets is not None
    cdef const floating* cprev
    cdef floating* zeros = <floating*>calloc(3 * H, sizeof(floating))
    if zeros == NULL:
        raise MemoryError()
    with nogil:
        for s in range(T - 1, -1, -1):
            t = T - 1 - s if reverse else s
            tc = t + 1 if reverse else t - 1   # the step that ran just before t
            for b in range(B):
                r = t * B + b
                reset = has_resets and resets[t, b]
                if reset:
                    cprev = zeros
                elif s == 0:
                    cprev = &c0[b, 0]
                else:
                    cprev = &cs[tc * B + b, 0]
                _lstm_cell_bwd(&gates[r, 0], &cs[r, 0], cprev, &dy[r, dyoff], &dh[b, 0],
                               &dc[b, 0], &dgates[r, 0], zeros, identity, H)
                if reset:
                    memset(&dc[b, 0], 0, H * sizeof(floating))
            gemm_rm(False, False, <int>B, <int>H, <int>(2 * H), <floating>1.0,
                    &dgates[t * B, 0], <int>G4, &w_ch[0, 0], <int>H, <floating>1.0,
                    &dc[0, 0], <int>H)
            gemm_rm(False, False, <int>B, <int>H, <int>H, <floating>1.0,
                    &dgates[t * B, 3 * H], <int>G4, &w_ch[2 * H, 0], <int>H,
                    <floating>1.0, &dc[0, 0], <int>H)
            memset(&dh[0, 0], 0, B * H * sizeof(floating))
            if has_resets:
                for b in range(B):
                    if resets[t, b]:
                        memset(&dh[b, 0], 0, H * sizeof(floating))
                        memset(&dc[b, 0], 0, H * sizeof(floating))
        _colsum_add(&dgates[0, 0], TB, G4, dbias)
    free(zeros)
