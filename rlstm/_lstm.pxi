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
# cell_rec (variant="peephole_cell"): the gates' recurrent input is c_{t-1} through full
# matrices and the cell input has no recurrent term. Then w_hh is w_ch (3H, H), rows for the
# gates i, f, o; hprev holds c_{t-1}; the recurrent product is two GEMMs (into the i, f columns
# and the o columns of the gate rows), and h_{t-1} feeds nothing.


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


def lstm_forward(const floating[:, ::1] x, const floating[:, ::1] w_ih,
                 const floating[:, ::1] w_hh, const floating[::1] b_ih,
                 const floating[::1] b_hh, const floating[::1] peep,
                 const floating[:, ::1] h0, const floating[:, ::1] c0,
                 const unsigned char[:, ::1] resets, bint has_resets, bint reverse,
                 bint peephole, bint identity,
                 floating[:, ::1] gates, floating[:, ::1] cs, floating[:, ::1] hprev,
                 floating[:, ::1] y, Py_ssize_t yoff,
                 floating[:, ::1] h_n, floating[:, ::1] c_n, bint cell_rec=False):
    """LSTM forward over a whole sequence for one layer and direction.

    gates = x @ w_ih.T + b_ih + b_hh  (one GEMM over all T*B rows), then per step
    gates[t] += h_{t-1} @ w_hh.T and the fused cell update.
    """
    cdef Py_ssize_t B = h0.shape[0], H = h0.shape[1], D = x.shape[1]
    cdef Py_ssize_t TB = x.shape[0], T = TB // B if B > 0 else 0
    cdef Py_ssize_t G4 = 4 * H, ldy = y.shape[1]
    cdef Py_ssize_t s, t, tp, b, r
    cdef const floating* cprev
    cdef const floating* peep_p = &peep[0] if peep.shape[0] > 0 else NULL
    cdef floating* scratch
    if TB == 0 or H == 0:
        return
    scratch = <floating*>malloc(G4 * B * sizeof(floating))   # once per call, not per step
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
            # hprev[t] = h_{t-1} (c_{t-1} with cell_rec), zeroed where the row resets
            for b in range(B):
                r = t * B + b
                if has_resets and resets[t, b]:
                    memset(&hprev[r, 0], 0, H * sizeof(floating))
                elif cell_rec and s == 0:
                    memcpy(&hprev[r, 0], &c0[b, 0], H * sizeof(floating))
                elif cell_rec:
                    memcpy(&hprev[r, 0], &cs[tp * B + b, 0], H * sizeof(floating))
                elif s == 0:
                    memcpy(&hprev[r, 0], &h0[b, 0], H * sizeof(floating))
                else:
                    memcpy(&hprev[r, 0], &y[tp * B + b, yoff], H * sizeof(floating))
            if cell_rec:
                # gates[t][:, i f] += c_{t-1} @ w_ch[:2H].T
                # gates[t][:, o] += c_{t-1} @ w_ch[2H:].T
                matmul_wt_add(<int>B, <int>(2 * H), <int>H, &hprev[t * B, 0], <int>H,
                              &w_hh[0, 0], <int>H, &gates[t * B, 0], <int>G4, scratch)
                matmul_wt_add(<int>B, <int>H, <int>H, &hprev[t * B, 0], <int>H,
                              &w_hh[2 * H, 0], <int>H, &gates[t * B, 3 * H], <int>G4, scratch)
            else:
                # gates[t] += hprev[t] @ w_hh.T
                matmul_wt_add(<int>B, <int>G4, <int>H, &hprev[t * B, 0], <int>H, &w_hh[0, 0],
                              <int>H, &gates[t * B, 0], <int>G4, scratch)
            for b in range(B):
                r = t * B + b
                if has_resets and resets[t, b]:
                    cprev = NULL
                elif s == 0:
                    cprev = &c0[b, 0]
                else:
                    cprev = &cs[tp * B + b, 0]
                _lstm_cell_fwd(&gates[r, 0], cprev, &cs[r, 0], &y[r, yoff], peep_p,
                               peephole, identity, H)
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


def lstm_backward(const floating[:, ::1] x, const floating[:, ::1] w_ih,
                  const floating[:, ::1] w_hh, const floating[::1] peep,
                  const floating[:, ::1] c0,
                  const unsigned char[:, ::1] resets, bint has_resets, bint reverse,
                  bint peephole, bint identity,
                  const floating[:, ::1] gates, const floating[:, ::1] cs,
                  const floating[:, ::1] hprev,
                  const floating[:, ::1] dy, Py_ssize_t dyoff,
                  floating[:, ::1] dgates,
                  floating[:, ::1] dx, floating beta_dx,
                  floating[:, ::1] dw_ih, floating[:, ::1] dw_hh,
                  floating[::1] db_ih, floating[::1] db_hh, floating[::1] dpeep,
                  floating[:, ::1] dh, floating[:, ::1] dc, bint cell_rec=False):
    """LSTM backward over a whole sequence for one layer and direction.

    On entry dh, dc hold the gradient on the final state; on exit, on the initial state.
    Per step: the fused cell backward, then dh = dgates[t] @ w_hh. After the sweep:
    dx = dgates @ w_ih (+ beta_dx * dx), dw_ih += dgates.T @ x, dw_hh += dgates.T @ hprev,
    db_ih += colsum(dgates), db_hh += colsum(dgates): three big GEMMs (oneDNN's merged form).
    """
    cdef Py_ssize_t B = c0.shape[0], H = c0.shape[1], D = x.shape[1]
    cdef Py_ssize_t TB = x.shape[0], T = TB // B if B > 0 else 0
    cdef Py_ssize_t G4 = 4 * H
    cdef Py_ssize_t s, t, tc, b, r, j
    cdef bint reset
    cdef const floating* cprev
    cdef const floating* peep_p
    # One zero buffer per call (never per step) stands in for c_{t-1} after a reset and for the
    # peepholes of the vanilla LSTM, so the cell loop has no branches.
    cdef floating* zeros
    if TB == 0 or H == 0:
        return
    zeros = <floating*>calloc(3 * H, sizeof(floating))
    if zeros == NULL:
        raise MemoryError()
    peep_p = &peep[0] if peephole else zeros
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
                               &dc[b, 0], &dgates[r, 0], peep_p, identity, H)
                if peephole:
                    _peephole_grad(&dgates[r, 0], &cs[r, 0], cprev, &dpeep[0], H)
                if reset:
                    memset(&dc[b, 0], 0, H * sizeof(floating))
            if cell_rec:
                # dc += dgates[t][:, i f] @ w_ch[:2H] + dgates[t][:, o] @ w_ch[2H:];  dh = 0
                gemm_rm(False, False, <int>B, <int>H, <int>(2 * H), <floating>1.0,
                        &dgates[t * B, 0], <int>G4, &w_hh[0, 0], <int>H, <floating>1.0,
                        &dc[0, 0], <int>H)
                gemm_rm(False, False, <int>B, <int>H, <int>H, <floating>1.0,
                        &dgates[t * B, 3 * H], <int>G4, &w_hh[2 * H, 0], <int>H,
                        <floating>1.0, &dc[0, 0], <int>H)
                memset(&dh[0, 0], 0, B * H * sizeof(floating))
            else:
                # dh = dgates[t] @ w_hh   (the gradient on h_{t-1})
                gemm_rm(False, False, <int>B, <int>H, <int>G4, <floating>1.0,
                        &dgates[t * B, 0], <int>G4, &w_hh[0, 0], <int>H, <floating>0.0,
                        &dh[0, 0], <int>H)
            if has_resets:
                for b in range(B):
                    if resets[t, b]:
                        memset(&dh[b, 0], 0, H * sizeof(floating))
                        memset(&dc[b, 0], 0, H * sizeof(floating))
        # dx = dgates @ w_ih (+ beta_dx * dx)
        if D > 0:
            gemm_rm(False, False, <int>TB, <int>D, <int>G4, <floating>1.0, &dgates[0, 0],
                    <int>G4, &w_ih[0, 0], <int>D, beta_dx, &dx[0, 0], <int>D)
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
        # db += dgates.sum(axis=0)
        _colsum_add(&dgates[0, 0], TB, G4, &db_ih[0])
        _colsum_add(&dgates[0, 0], TB, G4, &db_hh[0])
    free(zeros)
