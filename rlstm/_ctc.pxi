# Connectionist temporal classification (Graves et al. 2006): loss and gradient with respect
# to the logits, in log space. Included by _kernels.pyx after _blas.pxi.
#
# For each sequence b, with l' the target with blanks around and between its labels
# (length 2S+1) and lp = log_softmax(logits[:T_b, b]):
#   alpha[t, s] = lp[t, l'_s] + lse(alpha[t-1, s], alpha[t-1, s-1], alpha[t-1, s-2] if skip)
#   beta[t, s]  = lp[t, l'_s] + lse(beta[t+1, s], beta[t+1, s+1], beta[t+1, s+2] if skip)
# where the skip s-2 -> s is allowed only when l'_s is a label different from l'_{s-2}.
#   loss = -lse(alpha[T-1, 2S], alpha[T-1, 2S-1])
#   dloss/dlogits[t, c] = softmax[t, c]
#                         - exp(lse_{s: l'_s = c}(alpha[t,s] + beta[t,s]) + loss - lp[t,c])
# lse is max-subtracted; a -inf maximum gives -inf (no exp(-inf - -inf) = NaN).

from libc.stdint cimport int64_t



cdef extern from *:
    """
    /* Branch-free natural log for finite x > 0 (CTC's log-sum-exp takes it of a sum in
     * [1, 3]); vectorisable. x = m 2^e with m in [sqrt(1/2), sqrt(2)), then
     * log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, as an odd series in s. */
    #include <stdint.h>
    #include <string.h>
    static inline double rl_ctc_log(double x) {
        int64_t bits; memcpy(&bits, &x, sizeof bits);
        int64_t e = ((bits >> 52) & 0x7ff) - 1023;
        bits = (bits & INT64_C(0x000fffffffffffff)) | INT64_C(0x3ff0000000000000);
        double m; memcpy(&m, &bits, sizeof m);
        int big = m > 1.4142135623730951;
        m = big ? 0.5 * m : m;
        double ed = (double)(e + big);
        double s = (m - 1.0) / (m + 1.0), z = s * s;
        double p = 1.0 / 23.0;
        p = p * z + 1.0 / 21.0; p = p * z + 1.0 / 19.0; p = p * z + 1.0 / 17.0;
        p = p * z + 1.0 / 15.0; p = p * z + 1.0 / 13.0; p = p * z + 1.0 / 11.0;
        p = p * z + 1.0 / 9.0;  p = p * z + 1.0 / 7.0;  p = p * z + 1.0 / 5.0;
        p = p * z + 1.0 / 3.0;
        return ed * 6.93147180369123816490e-01 + (2.0 * s + 2.0 * s * z * p
                                                  + ed * 1.90821492927058770002e-10);
    }
    static inline float rl_ctc_logf(float x) {
        int32_t bits; memcpy(&bits, &x, sizeof bits);
        int32_t e = ((bits >> 23) & 0xff) - 127;
        bits = (bits & 0x007fffff) | 0x3f800000;
        float m; memcpy(&m, &bits, sizeof m);
        int big = m > 1.41421356f;
        m = big ? 0.5f * m : m;
        float ed = (float)(e + big);
        float s = (m - 1.0f) / (m + 1.0f), z = s * s;
        float p = ((1.0f / 11.0f * z + 1.0f / 9.0f) * z + 1.0f / 7.0f) * z + 1.0f / 5.0f;
        p = p * z + 1.0f / 3.0f;
        return ed * 0.693359375f + (2.0f * s + 2.0f * s * z * p + ed * -2.12194440e-4f);
    }
    """
    double rl_ctc_log(double x) nogil
    float rl_ctc_logf(float x) nogil


cdef inline floating flog(floating x) noexcept nogil:
    """log(x) for finite x > 0, vectorisable (1-2 ulp)."""
    if floating is float:
        return rl_ctc_logf(x)
    else:
        return rl_ctc_log(x)


cdef inline floating _lse2(floating a, floating b) noexcept nogil:
    """log(exp(a) + exp(b)), -inf safe."""
    cdef floating m = a if a > b else b
    if m == -INFINITY:
        return m
    return m + flog(fexp(a - m) + fexp(b - m))


cdef inline floating _lse3v(floating a, floating b, floating c) noexcept nogil:
    """log(exp(a) + exp(b) + exp(c)), -inf safe and branch-free (selects) so loops vectorise.

    With every argument -inf the result is -inf; fexp clamps exp(-inf) to a tiny positive
    number, so no NaN is formed on the way.
    """
    cdef floating m = a if a > b else b
    m = m if m > c else c
    cdef floating ms = 0 if m == -INFINITY else m
    cdef floating v = ms + flog(fexp(a - ms) + fexp(b - ms) + fexp(c - ms))
    return -INFINITY if m == -INFINITY else v


cdef void _log_softmax_rows(const floating* x, floating* out, Py_ssize_t rows,
                            Py_ssize_t stride, Py_ssize_t C) noexcept nogil:
    """out[r] = (x[r] - max) - log(sum(exp(x[r] - max))) for rows at the given stride.

    The row maximum is subtracted before the log-sum is: ``x - (max + log s)`` would round
    ``max + log s`` to ``max`` once |max| dwarfs ``log s`` (1e8 in float32), giving
    log-probabilities of 0 and a negative loss."""
    cdef Py_ssize_t r, c
    cdef floating m, s
    cdef const floating* xr
    cdef floating* o
    for r in range(rows):
        xr = x + r * stride
        o = out + r * stride
        m = xr[0]
        for c in range(1, C):
            m = xr[c] if xr[c] > m else m
        s = 0
        for c in range(C):
            s = s + fexp(xr[c] - m)
        s = log_(s)
        for c in range(C):
            o[c] = (xr[c] - m) - s


cdef floating _ctc_one(floating* lp, Py_ssize_t stride, Py_ssize_t T, Py_ssize_t C,
                       const int64_t* tgt, Py_ssize_t S, int64_t blank, bint zero_infinity,
                       floating* alpha, floating* beta, Py_ssize_t W, int64_t* ext,
                       floating* skipa, floating* skipb, floating* em,
                       floating* lcab, floating* lin) noexcept nogil:
    """Loss of one sequence; lp (T rows at ``stride``) holds log-probs and gets the gradient.

    alpha and beta rows are W = L + 4 wide with two -inf entries on each side, so the
    recursions read s-2 .. s+2 without branches. skipa[s] (skipb[s]) is 0 where the skip into
    (out of) s is allowed and -inf where not. At step t only the states that can lie on a
    complete path, lo(t) <= s < hi(t), are computed; the others stay -inf.
    """
    cdef Py_ssize_t L = 2 * S + 1, t, s, c, lo, hi
    cdef floating loss
    cdef floating* ap
    cdef floating* ac
    cdef floating* row
    for s in range(L):
        ext[s] = tgt[(s - 1) // 2] if s % 2 == 1 else blank
    for s in range(L):
        skipa[s] = 0 if (s >= 2 and s % 2 == 1 and ext[s] != ext[s - 2]) else -INFINITY
    for s in range(L):
        skipb[s] = skipa[s + 2] if s + 2 < L else -INFINITY
    if T == 0:
        return 0 if (S == 0 or zero_infinity) else INFINITY
    for s in range(T * W):
        alpha[s] = -INFINITY
        beta[s] = -INFINITY
    # alpha (rows offset by 2: ac[-2], ac[-1] are -inf)
    ac = alpha + 2
    ac[0] = lp[blank]
    if L > 1:
        ac[1] = lp[ext[1]]
    for t in range(1, T):
        ap = alpha + (t - 1) * W + 2
        ac = alpha + t * W + 2
        row = lp + t * stride
        lo = max(0, L - 2 * (T - t))
        hi = min(L, 2 * t + 2)
        for s in range(lo, hi):
            em[s] = row[ext[s]]
        for s in range(lo, hi):
            ac[s] = _lse3v(ap[s], ap[s - 1], ap[s - 2] + skipa[s]) + em[s]
    ac = alpha + (T - 1) * W + 2
    loss = -_lse2(ac[L - 1], ac[L - 2])
    if loss == INFINITY:
        for t in range(T):
            memset(lp + t * stride, 0, C * sizeof(floating))
        return 0 if zero_infinity else loss
    # beta
    ac = beta + (T - 1) * W + 2
    ac[L - 1] = lp[(T - 1) * stride + blank]
    if L > 1:
        ac[L - 2] = lp[(T - 1) * stride + ext[L - 2]]
    for t in range(T - 2, -1, -1):
        ap = beta + (t + 1) * W + 2
        ac = beta + t * W + 2
        row = lp + t * stride
        lo = max(0, L - 2 * (T - t))
        hi = min(L, 2 * t + 2)
        for s in range(lo, hi):
            em[s] = row[ext[s]]
        for s in range(lo, hi):
            ac[s] = _lse3v(ap[s], ap[s + 1], ap[s + 2] + skipb[s]) + em[s]
    # gradient with respect to the logits
    for t in range(T):
        row = lp + t * stride
        # lcab[c] = log sum_{s: l'_s = c} alpha[t, s] beta[t, s], with a max per class
        for c in range(C):
            lcab[c] = -INFINITY
            lin[c] = 0
        ap = alpha + t * W + 2
        ac = beta + t * W + 2
        lo = max(0, L - 2 * (T - t))
        hi = min(L, 2 * t + 2)
        for s in range(lo, hi):
            em[s] = ap[s] + ac[s]
        for s in range(lo, hi):
            lcab[ext[s]] = em[s] if em[s] > lcab[ext[s]] else lcab[ext[s]]
        for s in range(lo, hi):
            if em[s] != -INFINITY:
                lin[ext[s]] += exp_(em[s] - lcab[ext[s]])
        for c in range(C):
            if lin[c] > 0:
                lcab[c] = lcab[c] + log_(lin[c])
        for c in range(C):
            row[c] = fexp(row[c]) - fexp(lcab[c] + loss - row[c])
    return loss


def ctc_forward_backward(const floating[:, :, ::1] logits, const int64_t[::1] targets,
                         const int64_t[::1] offsets, const int64_t[::1] input_lengths,
                         const int64_t[::1] target_lengths, int64_t blank, bint zero_infinity,
                         floating[::1] losses, floating[:, :, ::1] dlogits,
                         Py_ssize_t b0=0, Py_ssize_t b1=-1):
    """CTC negative log-likelihood per sequence and d(sum of losses)/d(logits).

    Sequence b reads targets[offsets[b] : offsets[b] + target_lengths[b]] and the first
    input_lengths[b] steps; dlogits is zero beyond them (and for infinite losses). Only the
    sequences b0 <= b < b1 (b1 = -1: to the end) are computed, so that threads can share a
    batch; each call has its own workspace and releases the GIL.
    """
    cdef Py_ssize_t T = logits.shape[0], B = logits.shape[1], C = logits.shape[2]
    cdef Py_ssize_t b, t, Smax = 0, Tb, L, W
    cdef floating* alpha
    cdef floating* beta
    cdef floating* lcab
    cdef floating* skipa
    cdef floating* skipb
    cdef floating* em
    cdef floating* lin
    cdef int64_t* ext
    if b1 < 0:
        b1 = B
    if T == 0 or B == 0:
        for b in range(b0, b1):
            losses[b] = 0 if (target_lengths[b] == 0 or zero_infinity) else INFINITY
        return
    if b0 >= b1:
        return
    for b in range(b0, b1):
        Smax = max(Smax, target_lengths[b])
    L = 2 * Smax + 1
    W = L + 4
    alpha = <floating*>malloc((2 * T * W + 2 * C + 3 * L) * sizeof(floating))
    ext = <int64_t*>malloc(L * sizeof(int64_t))
    if alpha == NULL or ext == NULL:
        free(alpha)
        free(ext)
        raise MemoryError()
    beta = alpha + T * W
    lcab = beta + T * W
    skipa = lcab + C
    skipb = skipa + L
    em = skipb + L
    lin = em + L
    with nogil:
        for b in range(b0, b1):
            # dlogits = log_softmax(logits) first; _ctc_one turns the rows into gradients
            _log_softmax_rows(&logits[0, b, 0], &dlogits[0, b, 0], T, B * C, C)
            Tb = input_lengths[b]
            losses[b] = _ctc_one(&dlogits[0, b, 0], B * C, Tb, C, &targets[offsets[b]],
                                 target_lengths[b], blank, zero_infinity, alpha, beta, W,
                                 ext, skipa, skipb, em, lcab, lin)
            for t in range(Tb, T):
                memset(&dlogits[t, b, 0], 0, C * sizeof(floating))
    free(alpha)
    free(ext)
