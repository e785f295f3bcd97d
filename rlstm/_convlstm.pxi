# Convolutional LSTM with Hadamard peepholes (Shi et al. 2015): one layer, a whole sequence
# per call, im2col + GEMM for both convolutions. Included by _kernels.pyx after _lstm.pxi,
# whose cell loops it reuses: a ConvLSTM is an LSTM over the B*P pixel rows (P = height*width)
# whose input and recurrent products are convolutions.
#
# Internal layout is channel-last: row r = (t * B + b) * P + y * width + x, columns are
# channels. Shapes (F = hidden channels, K_in = C_in*kh*kw, K_h = F*kh*kw):
#   x       input images, read through strides (NCHW frames, or the channel-last rows of the
#           layer below)
#   xcols   (T*B*P, K_in)   out: im2col of x (kept for backward's dW_ih)
#   w_ih    (4F, K_in), w_hh (4F, K_h), bias (4F,), gate order i, f, g, o
#   peep    (Pv, 3F)        peepholes V_i, V_f, V_o per pixel (Pv = P) or shared (Pv = 1)
#   gates   (T*B*P, 4F), cs, hprev, y (T*B*P, F)
#   resets  (T, B) uint8    state zeroed before step t where set


cdef void _im2col(const floating* src, Py_ssize_t nimg, Py_ssize_t C, Py_ssize_t Hh,
                  Py_ssize_t Ww, Py_ssize_t s_img, Py_ssize_t s_c, Py_ssize_t s_y,
                  Py_ssize_t s_x, Py_ssize_t kh, Py_ssize_t kw, floating* cols) noexcept nogil:
    """cols[img*P + y*Ww + x, (c*kh + i)*kw + j] = src[img, c, y + i - kh//2, x + j - kw//2]
    (zero outside the image: same padding). One output row at a time, written in order."""
    cdef Py_ssize_t K = C * kh * kw, img, c, i, j, y, xx, yy, n, j_lo, j_hi
    cdef floating* out = cols
    cdef const floating* s
    for img in range(nimg):
        for y in range(Hh):
            for xx in range(Ww):
                j_lo = max(0, kw // 2 - xx)
                j_hi = min(kw, Ww - xx + kw // 2)
                n = 0
                for c in range(C):
                    for i in range(kh):
                        yy = y + i - kh // 2
                        if yy < 0 or yy >= Hh:
                            for j in range(kw):
                                out[n + j] = 0
                        else:
                            # columns j in [j_lo, j_hi) fall inside the image
                            s = src + img * s_img + c * s_c + yy * s_y + (xx - kw // 2) * s_x
                            for j in range(j_lo):
                                out[n + j] = 0
                            for j in range(j_lo, j_hi):
                                out[n + j] = s[j * s_x]
                            for j in range(j_hi, kw):
                                out[n + j] = 0
                        n += kw
                out += K


cdef void _col2im_add(const floating* cols, Py_ssize_t nimg, Py_ssize_t C, Py_ssize_t Hh,
                      Py_ssize_t Ww, Py_ssize_t s_img, Py_ssize_t s_c, Py_ssize_t s_y,
                      Py_ssize_t s_x, Py_ssize_t kh, Py_ssize_t kw,
                      floating* dst) noexcept nogil:
    """The adjoint of _im2col: dst[img, c, y + i - kh//2, x + j - kw//2] += cols[...]."""
    cdef Py_ssize_t K = C * kh * kw, img, c, i, j, y, xx, yy, n, j_lo, j_hi
    cdef const floating* inp = cols
    cdef floating* d
    for img in range(nimg):
        for y in range(Hh):
            for xx in range(Ww):
                j_lo = max(0, kw // 2 - xx)
                j_hi = min(kw, Ww - xx + kw // 2)
                n = 0
                for c in range(C):
                    for i in range(kh):
                        yy = y + i - kh // 2
                        if 0 <= yy < Hh:
                            d = dst + img * s_img + c * s_c + yy * s_y + (xx - kw // 2) * s_x
                            for j in range(j_lo, j_hi):
                                d[j * s_x] += inp[n + j]
                        n += kw
                inp += K


cdef inline void _image_strides(bint channel_last, Py_ssize_t C, Py_ssize_t Hh, Py_ssize_t Ww,
                                Py_ssize_t* st) noexcept nogil:
    """Strides (image, channel, row, column) of NCHW frames or of channel-last rows."""
    if channel_last:
        st[0] = Hh * Ww * C
        st[1] = 1
        st[2] = Ww * C
        st[3] = C
    else:
        st[0] = C * Hh * Ww
        st[1] = Hh * Ww
        st[2] = Ww
        st[3] = 1


def convlstm_forward(const floating[::1] x, Py_ssize_t T, Py_ssize_t B, Py_ssize_t C_in,
                     bint x_channel_last, Py_ssize_t Hh, Py_ssize_t Ww, Py_ssize_t kh,
                     Py_ssize_t kw, const floating[:, ::1] w_ih, const floating[:, ::1] w_hh,
                     const floating[::1] bias, const floating[:, ::1] peep, bint peephole,
                     const floating[:, ::1] h0, const floating[:, ::1] c0,
                     const unsigned char[:, ::1] resets, bint has_resets,
                     floating[:, ::1] xcols, floating[:, ::1] gates, floating[:, ::1] cs,
                     floating[:, ::1] hprev, floating[:, ::1] y,
                     floating[:, ::1] h_n, floating[:, ::1] c_n):
    """ConvLSTM forward over a sequence: gates = im2col(x) @ w_ih.T + bias (one GEMM over all
    T*B*P rows), then per step gates[t] += im2col(h_{t-1}) @ w_hh.T and the fused cell with
    Hadamard peepholes (i, f read V * c_{t-1}; o reads V * c_t)."""
    cdef Py_ssize_t P = Hh * Ww, F = h0.shape[1], G4 = 4 * F
    cdef Py_ssize_t K_in = C_in * kh * kw, K_h = F * kh * kw, BP = B * P, N = T * B * P
    cdef Py_ssize_t s, t, b, p, r, q, Pv = peep.shape[0]
    cdef Py_ssize_t st[4]
    cdef Py_ssize_t sh[4]
    cdef floating* hcols
    cdef bint reset
    if N == 0 or F == 0:
        return
    cdef rl_cell_rows cr
    cdef int rc = 0
    hcols = <floating*>malloc(BP * K_h * sizeof(floating))   # once per call, not per step
    if hcols == NULL:
        raise MemoryError()
    memset(&cr, 0, sizeof(cr))
    cr.dbl, cr.B, cr.H, cr.ldg, cr.identity = floating is double, P, F, G4, False
    cr.peep = &peep[0, 0] if peephole else NULL
    cr.peep_ld = 3 * F if Pv > 1 else 0
    with nogil:
        _image_strides(x_channel_last, C_in, Hh, Ww, st)
        _image_strides(True, F, Hh, Ww, sh)
        # gates = im2col(x) @ w_ih.T + bias
        for r in range(G4):
            gates[0, r] = bias[r]
        for q in range(1, N):
            memcpy(&gates[q, 0], &gates[0, 0], G4 * sizeof(floating))
        if K_in > 0:
            _im2col(&x[0], T * B, C_in, Hh, Ww, st[0], st[1], st[2], st[3], kh, kw,
                    &xcols[0, 0])
            gemm_rm(False, True, <int>N, <int>G4, <int>K_in, <floating>1.0, &xcols[0, 0],
                    <int>K_in, &w_ih[0, 0], <int>K_in, <floating>1.0, &gates[0, 0], <int>G4)
        for t in range(T):
            for b in range(B):
                r = (t * B + b) * P
                if has_resets and resets[t, b]:
                    memset(&hprev[r, 0], 0, P * F * sizeof(floating))
                elif t == 0:
                    memcpy(&hprev[r, 0], &h0[b * P, 0], P * F * sizeof(floating))
                else:
                    memcpy(&hprev[r, 0], &y[r - BP, 0], P * F * sizeof(floating))
            # gates[t] += im2col(hprev[t]) @ w_hh.T
            _im2col(&hprev[t * BP, 0], B, F, Hh, Ww, sh[0], sh[1], sh[2], sh[3], kh, kw, hcols)
            gemm_rm(False, True, <int>BP, <int>G4, <int>K_h, <floating>1.0, hcols, <int>K_h,
                    &w_hh[0, 0], <int>K_h, <floating>1.0, &gates[t * BP, 0], <int>G4)
            # the cell of every pixel row of each image, at the selected SIMD level
            for b in range(B):
                r = (t * B + b) * P
                if has_resets and resets[t, b]:
                    cr.cprev = NULL
                elif t == 0:
                    cr.cprev = &c0[b * P, 0]
                else:
                    cr.cprev = &cs[r - BP, 0]
                cr.gates, cr.c_out, cr.h_out = &gates[r, 0], &cs[r, 0], &y[r, 0]
                rc |= rl_lstm_cell_rows(&cr)
        memcpy(&h_n[0, 0], &y[(T - 1) * BP, 0], BP * F * sizeof(floating))
        memcpy(&c_n[0, 0], &cs[(T - 1) * BP, 0], BP * F * sizeof(floating))
    free(hcols)
    if rc != 0:
        raise MemoryError()


def convlstm_backward(Py_ssize_t T, Py_ssize_t B, Py_ssize_t C_in, bint x_channel_last,
                      Py_ssize_t Hh, Py_ssize_t Ww, Py_ssize_t kh, Py_ssize_t kw,
                      const floating[:, ::1] xcols, const floating[:, ::1] w_ih,
                      const floating[:, ::1] w_hh, const floating[:, ::1] peep,
                      bint peephole, const floating[:, ::1] c0,
                      const unsigned char[:, ::1] resets, bint has_resets,
                      const floating[:, ::1] gates, const floating[:, ::1] cs,
                      const floating[:, ::1] hprev, const floating[:, ::1] dy,
                      floating[:, ::1] dgates, floating[::1] dx,
                      floating[:, ::1] dw_ih, floating[:, ::1] dw_hh, floating[::1] dbias,
                      floating[:, ::1] dpeep, floating[:, ::1] dh, floating[:, ::1] dc):
    """ConvLSTM backward over a sequence (dh, dc: gradient on the final state in, on the
    initial state out). Per step: the LSTM cell backward on every pixel row, then
    dh = col2im(dgates[t] @ w_hh). After the sweep: dx = col2im(dgates @ w_ih) (dx is
    overwritten), dw_ih += dgates.T @ xcols, dw_hh += dgates.T @ im2col(hprev); the bias and
    peephole gradients are summed by the cell backward."""
    cdef Py_ssize_t P = Hh * Ww, F = c0.shape[1], G4 = 4 * F
    cdef Py_ssize_t K_in = C_in * kh * kw, K_h = F * kh * kw, BP = B * P, N = T * B * P
    cdef Py_ssize_t s, t, b, p, r, q, Pv = peep.shape[0], nbuf
    cdef Py_ssize_t st[4]
    cdef Py_ssize_t sh[4]
    cdef floating* buf
    cdef bint reset
    cdef rl_cell_bwd_rows cb
    cdef int rc = 0
    if N == 0 or F == 0:
        return
    nbuf = max(N * K_h, N * K_in)    # im2col of hprev / dcols of x after the sweep
    nbuf = max(nbuf, BP * K_h)       # dcols of h during the sweep
    buf = <floating*>malloc(nbuf * sizeof(floating))
    if buf == NULL:
        raise MemoryError()
    memset(&cb, 0, sizeof(cb))
    cb.dbl, cb.identity, cb.B, cb.H, cb.ldg = floating is double, False, P, F, G4
    cb.peep = &peep[0, 0] if peephole else NULL
    cb.peep_ld = 3 * F if Pv > 1 else 0
    cb.dbias = &dbias[0]
    cb.dpeep = &dpeep[0, 0] if peephole else NULL
    cb.dpeep_ld = cb.peep_ld
    with nogil:
        _image_strides(x_channel_last, C_in, Hh, Ww, st)
        _image_strides(True, F, Hh, Ww, sh)
        for s in range(T - 1, -1, -1):
            t = s
            # the cell backward of every pixel row of each image (dbias, dpeep accumulate)
            for b in range(B):
                reset = has_resets and resets[t, b]
                r = (t * B + b) * P
                q = b * P
                if reset:
                    cb.cprev = NULL
                elif t == 0:
                    cb.cprev = &c0[q, 0]
                else:
                    cb.cprev = &cs[r - BP, 0]
                cb.a, cb.c, cb.dy = &gates[r, 0], &cs[r, 0], &dy[r, 0]
                cb.dh, cb.dc, cb.dg = &dh[q, 0], &dc[q, 0], &dgates[r, 0]
                rc |= rl_lstm_cell_bwd_rows(&cb)
                if reset:
                    memset(&dc[b * P, 0], 0, P * F * sizeof(floating))
            # dh = col2im(dgates[t] @ w_hh)   (the gradient on h_{t-1})
            gemm_rm(False, False, <int>BP, <int>K_h, <int>G4, <floating>1.0,
                    &dgates[t * BP, 0], <int>G4, &w_hh[0, 0], <int>K_h, <floating>0.0, buf,
                    <int>K_h)
            memset(&dh[0, 0], 0, BP * F * sizeof(floating))
            _col2im_add(buf, B, F, Hh, Ww, sh[0], sh[1], sh[2], sh[3], kh, kw, &dh[0, 0])
            if has_resets:
                for b in range(B):
                    if resets[t, b]:
                        memset(&dh[b * P, 0], 0, P * F * sizeof(floating))
        # dw_hh += dgates.T @ im2col(hprev)
        _im2col(&hprev[0, 0], T * B, F, Hh, Ww, sh[0], sh[1], sh[2], sh[3], kh, kw, buf)
        gemm_rm(True, False, <int>G4, <int>K_h, <int>N, <floating>1.0, &dgates[0, 0], <int>G4,
                buf, <int>K_h, <floating>1.0, &dw_hh[0, 0], <int>K_h)
        if K_in > 0:
            # dw_ih += dgates.T @ xcols;  dx = col2im(dgates @ w_ih)
            gemm_rm(True, False, <int>G4, <int>K_in, <int>N, <floating>1.0, &dgates[0, 0],
                    <int>G4, &xcols[0, 0], <int>K_in, <floating>1.0, &dw_ih[0, 0], <int>K_in)
            gemm_rm(False, False, <int>N, <int>K_in, <int>G4, <floating>1.0, &dgates[0, 0],
                    <int>G4, &w_ih[0, 0], <int>K_in, <floating>0.0, buf, <int>K_in)
            memset(&dx[0], 0, N * C_in * sizeof(floating))
            _col2im_add(buf, T * B, C_in, Hh, Ww, st[0], st[1], st[2], st[3], kh, kw, &dx[0])
    free(buf)
    if rc != 0:
        raise MemoryError()
