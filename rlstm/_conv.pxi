# Conv2d (no padding, square kernel, stride s) as im2col + BLAS GEMMs over channel-last
# batches, with the bias and ReLU fused into one pass over the output. Included by _kernels.pyx.
#
# Rows are output positions, row r = (n * Ho + i) * Wo + j; columns of the im2col matrix are
# (a, b, c): kernel row, kernel column, input channel, so that for channel-last input the k * C
# values of one kernel row are one contiguous run (a memcpy).
#   x      input images read through strides (s_n, s_y, s_x, s_c): channel-last or NCHW
#   w      (O, k*k*C)        weights in (a, b, c) column order (the layer permutes once per call)
#   y      (N*Ho*Wo, O)      out: relu(im2col(x) @ w.T + bias): channel-last output
#
# The im2col matrix of an Atari batch is 13 MB, four times the images: materialised whole, the
# layer would run at memory speed. So it is built and consumed one block of rows at a time
# (a block stays in L2), forward and backward alike; backward rebuilds it from x.


cdef inline Py_ssize_t _conv_ld(Py_ssize_t K) noexcept nogil:
    """Row stride of an im2col block: k*k*C rounded up to 16 elements, so that the GEMMs whose
    N is k*k*C (dW, dx) run on whole vectors (the extra columns stay zero)."""
    return (K + 15) // 16 * 16


cdef inline Py_ssize_t _conv_block_rows(Py_ssize_t K, Py_ssize_t itemsize) noexcept nogil:
    """Rows of an im2col block: about 128 KiB, a multiple of 64 (the micro-kernel's panel)."""
    return min(1024, max(64, 131072 // max(1, K * itemsize) // 64 * 64))


cdef void _conv_im2col_rows(const floating* x, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C,
                            Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t k, Py_ssize_t s,
                            Py_ssize_t s_n, Py_ssize_t s_y, Py_ssize_t s_x, Py_ssize_t s_c,
                            floating* cols, Py_ssize_t ld) noexcept nogil:
    """cols[r - r0, (a*k + b)*C + c] = x[n, s*i + a, s*j + b, c] for rows r0 <= r < r1 (rows
    ld apart; columns past k*k*C are left alone)."""
    cdef Py_ssize_t r, n, i, j, a, b, c, q, run = k * C
    cdef const floating* src
    cdef floating* out = cols
    cdef floating* o
    for r in range(r0, r1):
        n = r // (Ho * Wo)
        i = (r // Wo) % Ho
        j = r % Wo
        for a in range(k):
            src = x + n * s_n + (s * i + a) * s_y + s * j * s_x
            if s_c == 1 and s_x == C:       # channel-last: one run of k*C values
                o = out + a * run
                for q in range(run):        # (a loop: memcpy calls cost more for short runs)
                    o[q] = src[q]
            else:
                for b in range(k):
                    for c in range(C):
                        out[(a * k + b) * C + c] = src[b * s_x + c * s_c]
        out += ld


cdef void _conv_col2im_rows(const floating* cols, Py_ssize_t r0, Py_ssize_t r1, Py_ssize_t C,
                            Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t k, Py_ssize_t s,
                            Py_ssize_t Hh, Py_ssize_t Ww, floating* dx,
                            Py_ssize_t ld) noexcept nogil:
    """The adjoint of _conv_im2col_rows for a channel-last dx (N, Hh, Ww, C): dx += ..."""
    cdef Py_ssize_t r, n, i, j, a, q, run = k * C
    cdef const floating* inp = cols
    cdef floating* dst
    for r in range(r0, r1):
        n = r // (Ho * Wo)
        i = (r // Wo) % Ho
        j = r % Wo
        for a in range(k):
            dst = dx + ((n * Hh + s * i + a) * Ww + s * j) * C
            for q in range(run):
                dst[q] += inp[a * run + q]
        inp += ld


cdef inline void _conv_strides(bint channel_last, Py_ssize_t H, Py_ssize_t W, Py_ssize_t C,
                               Py_ssize_t* st) noexcept nogil:
    st[0] = H * W * C
    if channel_last:
        st[1], st[2], st[3] = W * C, C, 1
    else:
        st[1], st[2], st[3] = W, 1, H * W


def conv2d_forward(*, const floating[::1] x, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W,
                   Py_ssize_t C, bint channel_last, Py_ssize_t k, Py_ssize_t stride,
                   const floating[:, ::1] w, const floating[::1] bias, bint relu,
                   floating[:, ::1] y):
    """y = act(im2col(x) @ w.T + bias), act = ReLU when ``relu``.

    ``x`` is N images of H x W x C, channel-last (``channel_last``) or NCHW; y is channel-last
    (N*Ho*Wo, O). Per block of rows: im2col, y = cols @ w.T on the kernel library's
    micro-kernel (BLAS runs a product with 16 or 32 output columns at a third of its peak),
    then one pass for the bias and the ReLU.
    """
    cdef Py_ssize_t Ho = (H - k) // stride + 1, Wo = (W - k) // stride + 1
    cdef Py_ssize_t R = N * Ho * Wo, K = k * k * C, O = w.shape[0], r, o, r0, r1, Kp
    cdef Py_ssize_t RB = _conv_block_rows(K, sizeof(floating))
    cdef Py_ssize_t st[4]
    cdef floating v
    cdef floating* cols
    cdef floating* wT
    cdef int rc = 0
    if R == 0 or O == 0:
        return
    _conv_strides(channel_last, H, W, C, st)
    Kp = _conv_ld(K)
    cols = <floating*>calloc(RB * Kp + K * O, sizeof(floating))
    if cols == NULL:
        raise MemoryError()
    wT = cols + RB * Kp
    with nogil:
        for o in range(O):
            for r in range(K):
                wT[r * O + o] = w[o, r]
        r0 = 0
        while r0 < R and rc == 0:
            r1 = min(R, r0 + RB)
            _conv_im2col_rows(&x[0], r0, r1, C, Ho, Wo, k, stride, st[0], st[1], st[2], st[3],
                              cols, Kp)
            # y[r0:r1] = cols @ w.T   (on the micro-kernel: O columns are one or two vectors)
            rc = _small_gemm(floating is double, r1 - r0, O, K, cols, Kp, wT, O, &y[r0, 0], O,
                             False)
            for r in range(r0, r1):
                for o in range(O):
                    v = y[r, o] + bias[o]
                    y[r, o] = v if (v > 0 or not relu) else 0
            r0 = r1
    free(cols)
    if rc != 0:
        raise MemoryError()


def conv2d_backward(*, const floating[::1] x, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W,
                    Py_ssize_t C, bint channel_last, Py_ssize_t k, Py_ssize_t stride,
                    const floating[:, ::1] w, const floating[:, ::1] y, bint relu,
                    floating[:, ::1] dy, floating[:, ::1] dw, floating[::1] db,
                    floating[::1] dx=None):
    """Backward of conv2d_forward. ``dy`` (R, O) is overwritten by the gradient on the
    pre-activation (dy * (y > 0) with ``relu``); per block of rows: dw += dy.T @ im2col(x),
    db += colsum(dy) and, with ``dx`` (channel-last (N, H, W, C), overwritten),
    dx += col2im(dy @ w). The products run on the micro-kernel."""
    cdef Py_ssize_t Ho = (H - k) // stride + 1, Wo = (W - k) // stride + 1
    cdef Py_ssize_t R = N * Ho * Wo, K = k * k * C, O = w.shape[0], r, o, r0, r1
    cdef Py_ssize_t RB = _conv_block_rows(K, sizeof(floating)), Kp = _conv_ld(K)
    cdef Py_ssize_t st[4]
    cdef bint want_dx = dx is not None
    cdef floating* cols
    cdef floating* dyT
    cdef floating* wp
    cdef floating* dwp
    cdef int rc = 0
    if R == 0 or O == 0:
        return
    _conv_strides(channel_last, H, W, C, st)
    # cols (RB, Kp) | dyT (O, RB) | w and dw with rows Kp wide (zero past K)
    cols = <floating*>calloc(RB * Kp + O * RB + 2 * O * Kp, sizeof(floating))
    if cols == NULL:
        raise MemoryError()
    dyT = cols + RB * Kp
    wp = dyT + O * RB
    dwp = wp + O * Kp
    with nogil:
        for o in range(O):
            memcpy(wp + o * Kp, &w[o, 0], K * sizeof(floating))
        if want_dx:
            memset(&dx[0], 0, N * H * W * C * sizeof(floating))
        r0 = 0
        while r0 < R and rc == 0:
            r1 = min(R, r0 + RB)
            for r in range(r0, r1):
                for o in range(O):
                    if relu and not y[r, o] > 0:
                        dy[r, o] = 0
                    dyT[o * RB + r - r0] = dy[r, o]
            _colsum_add(&dy[r0, 0], r1 - r0, O, &db[0])
            _conv_im2col_rows(&x[0], r0, r1, C, Ho, Wo, k, stride, st[0], st[1], st[2], st[3],
                              cols, Kp)
            # dw += dyT @ cols   (Kp columns: whole vectors)
            rc = _small_gemm(floating is double, O, Kp, r1 - r0, dyT, RB, cols, Kp, dwp, Kp,
                             True)
            if want_dx and rc == 0:
                # cols = dy[r0:r1] @ w;  dx += col2im(cols)   (columns past K come out zero)
                rc = _small_gemm(floating is double, r1 - r0, Kp, O, &dy[r0, 0], O, wp, Kp,
                                 cols, Kp, False)
                _conv_col2im_rows(cols, r0, r1, C, Ho, Wo, k, stride, H, W, &dx[0], Kp)
            r0 = r1
        for o in range(O):
            for r in range(K):
                dw[o, r] += dwp[o * Kp + r]
    free(cols)
    if rc != 0:
        raise MemoryError()
