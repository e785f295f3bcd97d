"""Pure-NumPy reference CTC (Graves et al. 2006): loss and gradient, and a brute-force check.

``loss_and_grad`` follows the textbook alpha-beta recursions in log space with
``np.logaddexp`` (loops over time and states, one sequence at a time). ``brute_force_loss``
enumerates every alignment of a tiny problem: the definition itself, with no recursion.

Extended target l' = [blank, l_1, blank, l_2, ..., l_S, blank]. A path of length T maps to a
label sequence by merging repeats and then removing blanks; the loss is
-log sum over the paths that map to the target of prod_t softmax(logits[t])[path_t].
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = ["loss_and_grad", "brute_force_loss", "log_softmax"]


def log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def loss_and_grad(logits, target, blank=0):
    """One sequence: logits (T, C), target (S,) -> loss, d loss / d logits (T, C)."""
    logits = np.asarray(logits, dtype=np.float64)
    T, C = logits.shape
    lp = log_softmax(logits)
    ext = [blank]
    for label in target:
        ext += [int(label), blank]
    L = len(ext)
    if T == 0:
        return (0.0 if len(target) == 0 else np.inf), np.zeros((0, C))
    alpha = np.full((T, L), -np.inf)
    beta = np.full((T, L), -np.inf)
    alpha[0, 0] = lp[0, blank]
    if L > 1:
        alpha[0, 1] = lp[0, ext[1]]
    for t in range(1, T):
        for s in range(L):
            v = alpha[t - 1, s]
            if s >= 1:
                v = np.logaddexp(v, alpha[t - 1, s - 1])
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                v = np.logaddexp(v, alpha[t - 1, s - 2])
            alpha[t, s] = v + lp[t, ext[s]]
    loglik = alpha[T - 1, L - 1] if L == 1 else np.logaddexp(alpha[T - 1, L - 1],
                                                             alpha[T - 1, L - 2])
    if loglik == -np.inf:
        return np.inf, np.zeros((T, C))
    beta[T - 1, L - 1] = lp[T - 1, blank]
    if L > 1:
        beta[T - 1, L - 2] = lp[T - 1, ext[L - 2]]
    for t in range(T - 2, -1, -1):
        for s in range(L):
            v = beta[t + 1, s]
            if s + 1 < L:
                v = np.logaddexp(v, beta[t + 1, s + 1])
            if s + 2 < L and ext[s + 2] != blank and ext[s + 2] != ext[s]:
                v = np.logaddexp(v, beta[t + 1, s + 2])
            beta[t, s] = v + lp[t, ext[s]]
    # gamma[t, c]: posterior probability of emitting c at t; alpha * beta counts lp twice
    gamma = np.zeros((T, C))
    for s in range(L):
        gamma[:, ext[s]] += np.exp(alpha[:, s] + beta[:, s] - lp[:, ext[s]] - loglik)
    return -loglik, np.exp(lp) - gamma


def brute_force_loss(logits, target, blank=0):
    """-log p(target | logits) by enumerating all C**T paths (tiny problems only)."""
    logits = np.asarray(logits, dtype=np.float64)
    T, C = logits.shape
    lp = log_softmax(logits)
    total = -np.inf
    for path in itertools.product(range(C), repeat=T):
        merged = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
        if [c for c in merged if c != blank] == list(target):
            total = np.logaddexp(total, sum(lp[t, c] for t, c in enumerate(path)))
    return -total
