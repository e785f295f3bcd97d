# ---------------------------------------------------------------------------------- optimizers
from libc.math cimport sqrt, sqrtf
from libc.float cimport DBL_MIN, FLT_MIN


def adam_update(floating[::1] p, const floating[::1] g, floating[::1] m, floating[::1] v,
                double step, double beta1, double beta2, double eps, double inv_sqrt_bias2,
                double decay):
    """One fused Adam pass: ``m, v`` moments, then
    ``p = p * decay - step * m / (sqrt(v) * inv_sqrt_bias2 + eps)`` (``step = lr / bias1``,
    ``decay = 1 - lr * weight_decay``), in the parameters' precision. One read of each array
    instead of NumPy's dozen temporaries.

    Moments below the smallest normal number are stored as zero. A moment whose gradient stays
    zero (a dead ReLU feature's weights) decays through the subnormal range, where each
    operation on it costs the CPU a microcode assist of about a hundred cycles: with a conv
    encoder, 4% of the moments were subnormal and Adam took 8% of PPO's time. What the flush
    drops from ``p`` is below 1e-30 of a step."""
    cdef Py_ssize_t i, n = p.shape[0]
    cdef floating b1 = <floating>beta1, b2 = <floating>beta2
    cdef floating c1 = <floating>(1.0 - beta1), c2 = <floating>(1.0 - beta2)
    cdef floating st = <floating>step, ep = <floating>eps, ib2 = <floating>inv_sqrt_bias2
    cdef floating dec = <floating>decay, gi, mi, vi
    cdef floating tiny = FLT_MIN if floating is float else DBL_MIN
    with nogil:
        for i in range(n):
            gi = g[i]
            mi = b1 * m[i] + c1 * gi
            vi = b2 * v[i] + c2 * gi * gi
            if -tiny < mi < tiny:
                mi = 0
            if vi < tiny:
                vi = 0
            m[i] = mi
            v[i] = vi
            if floating is float:
                p[i] = p[i] * dec - st * mi / (sqrtf(vi) * ib2 + ep)
            else:
                p[i] = p[i] * dec - st * mi / (sqrt(vi) * ib2 + ep)
