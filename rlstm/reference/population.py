"""NumPy references of the population kernels (``rlstm/_population.pxi``).

``params`` is ``(P, N)``; member ``p`` owns rows ``[p * B, (p + 1) * B)`` of every activation.
"""
from __future__ import annotations

import numpy as np


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def population_lstm_step(params, off_w_ih, off_w_hh, off_b_ih, off_b_hh, off_peep, identity,
                         x, h, c):
    """Returns ``(h_new, c_new)``: for each member, gates = b_ih + b_hh + x W_ih^T + h W_hh^T."""
    P = params.shape[0]
    R, D = x.shape
    H = h.shape[1]
    B = R // P
    h_new, c_new = np.empty_like(h), np.empty_like(c)
    for p in range(P):
        w = params[p]
        W_ih = w[off_w_ih:off_w_ih + 4 * H * D].reshape(4 * H, D)
        W_hh = w[off_w_hh:off_w_hh + 4 * H * H].reshape(4 * H, H)
        b = w[off_b_ih:off_b_ih + 4 * H] + w[off_b_hh:off_b_hh + 4 * H]
        rows = slice(p * B, (p + 1) * B)
        g = x[rows] @ W_ih.T + h[rows] @ W_hh.T + b
        zi, zf, zg, zo = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
        cp = c[rows]
        if off_peep >= 0:
            pi, pf, po = (w[off_peep + k * H:off_peep + (k + 1) * H] for k in range(3))
            zi, zf = zi + pi * cp, zf + pf * cp
        i, f, gg = _sigmoid(zi), _sigmoid(zf), np.tanh(zg)
        cn = f * cp + i * gg
        o = _sigmoid(zo + (po * cn if off_peep >= 0 else 0.0))
        c_new[rows] = cn
        h_new[rows] = o * (cn if identity else np.tanh(cn))
    return h_new, c_new


def population_linear(params, off_w, off_b, x, n_out, activation=0):
    """``act(x_p W_p^T + b_p)`` per member; activation 0 none, 1 tanh, 2 relu."""
    P = params.shape[0]
    R, K = x.shape
    B = R // P
    out = np.empty((R, n_out), dtype=x.dtype)
    for p in range(P):
        w = params[p]
        W = w[off_w:off_w + n_out * K].reshape(n_out, K)
        y = x[p * B:(p + 1) * B] @ W.T
        if off_b >= 0:
            y = y + w[off_b:off_b + n_out]
        out[p * B:(p + 1) * B] = np.tanh(y) if activation == 1 else (
            np.maximum(y, 0) if activation == 2 else y)
    return out
