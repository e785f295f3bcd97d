# Connectionist temporal classification (Graves et al. 2006): loss and gradient with respect
# to the logits, in log space. Included by _kernels.pyx after _blas.pxi.
#
# For each sequence b, with l' the target with blanks around and between its labels
# (length 2S+1) and lp = log_softmax(logits[:T_b, b]):
#   alpha[t, s] = lp[t, l'_s] + lse(alpha[t-1, s], alpha[t-1, s-1], alpha[t-1, s-2] if skip)
#   beta[t, s]  = lp[t, l'_s] + lse(beta[t+1, s], beta[t+1, s+1], beta[t+1, s+2] if skip)
# where the skip s-2 -> s is allowed only when l'_s is a label different from l'_{s-2}.
#   loss = -lse(alpha[T-1, 2S], alpha[T-1, 2S-1])
#   dloss/dlogits[t, c] = softmax[t, c] - exp(lse_{s: l'_s = c}(alpha[t,s] + beta[t,s]) + loss - lp[t,c])
# lse is max-subtracted; a -inf maximum gives -inf (no exp(-inf - -inf) = NaN).

from libc.stdint cimport int64_t



cdef inline floating _lse2(floating a, floating b) noexcept nogil:
    """log(exp(a) + exp(b)), -inf safe."""
    cdef floating m = a if a > b else b
    if m == -INFINITY:
        return m
    return m + log_(exp_(a - m) + exp_(b - m))


cdef inline floating _lse3(floating a, floating b, floating c) noexcept nogil:
    """log(exp(a) + exp(b) + exp(c)), -inf safe."""
    cdef floating m = a if a > b else b
    m = m if m > c else c
    if m == -INFINITY:
        return m
    return m + log_(exp_(a - m) + exp_(b - m) + exp_(c - m))


cdef void _log_softmax_rows(const floating* x, floating* out, Py_ssize_t rows,
                            Py_ssize_t stride, Py_ssize_t C) noexcept nogil:
    """out[r] = x[r] - max - log(sum(exp(x[r] - max))) for rows at the given stride."""
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
        s = m + log_(s)
        for c in range(C):
            o[c] = xr[c] - s


cdef floating _ctc_one(floating* lp, Py_ssize_t stride, Py_ssize_t T, Py_ssize_t C,
                       const int64_t* tgt, Py_ssize_t S, int64_t blank, bint zero_infinity,
                       floating* alpha, floating* beta, int64_t* ext, unsigned char* skip,
                       floating* lcab) noexcept nogil:
    """Loss of one sequence; lp (T rows at ``stride``) holds log-probs and gets the gradient."""
    cdef Py_ssize_t L = 2 * S + 1, t, s, c
    cdef floating loss, v, m
    cdef floating* ap
    cdef floating* ac
    cdef floating* row
    for s in range(L):
        ext[s] = tgt[(s - 1) // 2] if s % 2 == 1 else blank
        skip[s] = s >= 2 and s % 2 == 1 and ext[s] != ext[s - 2]
    if T == 0:
        return 0 if S == 0 else (0 if zero_infinity else INFINITY)
    # alpha
    for s in range(L):
        alpha[s] = -INFINITY
    alpha[0] = lp[blank]
    if L > 1:
        alpha[1] = lp[ext[1]]
    for t in range(1, T):
        ap = alpha + (t - 1) * L
        ac = alpha + t * L
        row = lp + t * stride
        ac[0] = ap[0] + row[blank]
        for s in range(1, L):
            if skip[s]:
                v = _lse3(ap[s], ap[s - 1], ap[s - 2])
            else:
                v = _lse2(ap[s], ap[s - 1])
            ac[s] = v + row[ext[s]]
    ac = alpha + (T - 1) * L
    loss = -(_lse2(ac[L - 1], ac[L - 2]) if L > 1 else ac[0])
    if loss == INFINITY:
        for t in range(T):
            memset(lp + t * stride, 0, C * sizeof(floating))
        return 0 if zero_infinity else loss
    # beta
    ac = beta + (T - 1) * L
    for s in range(L):
        ac[s] = -INFINITY
    ac[L - 1] = lp[(T - 1) * stride + blank]
    if L > 1:
        ac[L - 2] = lp[(T - 1) * stride + ext[L - 2]]
    for t in range(T - 2, -1, -1):
        ap = beta + (t + 1) * L
        ac = beta + t * L
        row = lp + t * stride
        ac[L - 1] = ap[L - 1] + row[blank]
        for s in range(L - 1):
            if s + 2 < L and skip[s + 2]:
                v = _lse3(ap[s], ap[s + 1], ap[s + 2])
            else:
                v = _lse2(ap[s], ap[s + 1])
            ac[s] = v + row[ext[s]]
    # gradient with respect to the logits
    for t in range(T):
        row = lp + t * stride
        for c in range(C):
            lcab[c] = -INFINITY
        ap = alpha + t * L
        ac = beta + t * L
        for s in range(L):
            lcab[ext[s]] = _lse2(lcab[ext[s]], ap[s] + ac[s])
        for c in range(C):
            row[c] = fexp(row[c]) - fexp(lcab[c] + loss - row[c])
    return loss


def ctc_forward_backward(const floating[:, :, ::1] logits, const int64_t[::1] targets,
                         const int64_t[::1] offsets, const int64_t[::1] input_lengths,
                         const int64_t[::1] target_lengths, int64_t blank, bint zero_infinity,
                         floating[::1] losses, floating[:, :, ::1] dlogits):
    """CTC negative log-likelihood per sequence and d(sum of losses)/d(logits).

    Sequence b reads targets[offsets[b] : offsets[b] + target_lengths[b]] and the first
    input_lengths[b] steps; dlogits is zero beyond them (and for infinite losses).
    """
    cdef Py_ssize_t T = logits.shape[0], B = logits.shape[1], C = logits.shape[2]
    cdef Py_ssize_t b, t, Smax = 0, Tb, L
    cdef floating* alpha
    cdef floating* beta
    cdef floating* lcab
    cdef int64_t* ext
    cdef unsigned char* skip
    if T == 0 or B == 0:
        for b in range(B):
            losses[b] = 0 if (target_lengths[b] == 0 or zero_infinity) else INFINITY
        return
    for b in range(B):
        Smax = max(Smax, target_lengths[b])
    L = 2 * Smax + 1
    alpha = <floating*>malloc((2 * T * L + C) * sizeof(floating))
    ext = <int64_t*>malloc(L * sizeof(int64_t))
    skip = <unsigned char*>malloc(L)
    if alpha == NULL or ext == NULL or skip == NULL:
        free(alpha)
        free(ext)
        free(skip)
        raise MemoryError()
    beta = alpha + T * L
    lcab = beta + T * L
    with nogil:
        # dlogits = log_softmax(logits) first; each sequence then turns its rows into gradients
        _log_softmax_rows(&logits[0, 0, 0], &dlogits[0, 0, 0], T * B, C, C)
        for b in range(B):
            Tb = input_lengths[b]
            losses[b] = _ctc_one(&dlogits[0, b, 0], B * C, Tb, C, &targets[offsets[b]],
                                 target_lengths[b], blank, zero_infinity, alpha, beta, ext,
                                 skip, lcab)
            for t in range(Tb, T):
                memset(&dlogits[t, b, 0], 0, C * sizeof(floating))
    free(alpha)
    free(ext)
    free(skip)
