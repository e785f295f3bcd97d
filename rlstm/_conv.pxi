# Conv2d (no padding, square kernel, stride s) as blocked im2col + GEMM over channel-last
# batches, bias and ReLU fused: the loops are in the kernel library (_rlk_body.h, at the
# selected SIMD level); this file fills its argument struct. Included by _kernels.pyx.
#
# Rows are output positions, row r = (n * Ho + i) * Wo + j; im2col columns are (a, b, c):
# kernel row, kernel column, input channel (one contiguous run of k*C values per kernel row for
# channel-last input).
#   x      N images of H x W x C: channel-last, or NCHW (channel_last=False)
#   w      (O, k*k*C)        weights in (a, b, c) column order (the layer permutes once per call)
#   y      (N*Ho*Wo, O)      out: relu(im2col(x) @ w.T + bias), channel-last

cdef extern from "_rlk.h" nogil:
    ctypedef struct rl_conv:
        int dbl
        long N, H, W, C, k, stride, O
        int channel_last, relu
        const void* x
        const void* w
        const void* bias
        void* y
        void* dy
        void* dw
        void* db
        void* dx
    int rl_conv_forward(const rl_conv* a)
    int rl_conv_backward(const rl_conv* a)


def conv2d_forward(*, const floating[::1] x, Py_ssize_t N, Py_ssize_t H, Py_ssize_t W,
                   Py_ssize_t C, bint channel_last, Py_ssize_t k, Py_ssize_t stride,
                   const floating[:, ::1] w, const floating[::1] bias, bint relu,
                   floating[:, ::1] y):
    """y = act(im2col(x) @ w.T + bias), act = ReLU when ``relu``.

    Per block of rows (kept in L2): im2col, y = cols @ w.T on the kernel library's micro-kernel
    (BLAS runs a product with 16 or 32 output columns at a third of its peak), then one pass for
    the bias and the ReLU.
    """
    cdef rl_conv a
    cdef int rc
    if y.shape[0] == 0 or y.shape[1] == 0:
        return
    memset(&a, 0, sizeof(a))
    a.dbl = floating is double
    a.N, a.H, a.W, a.C, a.k, a.stride, a.O = N, H, W, C, k, stride, w.shape[0]
    a.channel_last, a.relu = channel_last, relu
    a.x, a.w, a.bias, a.y = &x[0], &w[0, 0], &bias[0], &y[0, 0]
    with nogil:
        rc = rl_conv_forward(&a)
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
    dx += col2im(dy @ w)."""
    cdef rl_conv a
    cdef int rc
    if dy.shape[0] == 0 or dy.shape[1] == 0:
        return
    memset(&a, 0, sizeof(a))
    a.dbl = floating is double
    a.N, a.H, a.W, a.C, a.k, a.stride, a.O = N, H, W, C, k, stride, w.shape[0]
    a.channel_last, a.relu = channel_last, relu
    a.x, a.w, a.y = &x[0], &w[0, 0], <void*>&y[0, 0]
    a.dy, a.dw, a.db = &dy[0, 0], &dw[0, 0], &db[0]
    a.dx = &dx[0] if dx is not None else NULL
    with nogil:
        rc = rl_conv_backward(&a)
    if rc != 0:
        raise MemoryError()
