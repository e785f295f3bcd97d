"""Pure-NumPy reference GRU (PyTorch's convention): forward and backward as loops over time.

The specification the Cython kernels are tested against; it shares no code with ``rlstm.gru``.
Parameters are the dict of ``GRU.params`` (gate order r, z, n)::

    weight_ih_l{k}[_reverse]  (3H, D_k)    weight_hh_l{k}[_reverse]  (3H, H)
    bias_ih_l{k}[_reverse]    (3H,)        bias_hh_l{k}[_reverse]    (3H,)

One step of one layer and direction::

    a = W_ih x_t + b_ih = [a_r, a_z, a_n]        u = W_hh h_{t-1} + b_hh = [u_r, u_z, u_n]
    r = sigmoid(a_r + u_r);  z = sigmoid(a_z + u_z);  n = tanh(a_n + r * u_n)
    h_t = (1 - z) * n + z * h_{t-1}

Resets, directions and stacking follow ``rlstm.reference.lstm``: the reverse direction zeroes
its state before step t when ``resets[t + 1]`` is set; layer k > 0 reads ``[h_fwd, h_rev]``.
"""
from __future__ import annotations

import numpy as np

from .lstm import _reset_before, sigmoid
from .lstm import _suffix as _sfx

__all__ = ["forward", "backward"]


def _structure(params):
    num_layers = 0
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    return num_layers, params["weight_hh_l0"].shape[1], "weight_ih_l0_reverse" in params


def _keep(resets, t, d, T, B):
    """(B, 1) mask: rows whose state survives into step t of direction d."""
    return ~_reset_before(resets, t, d, T, B)[:, None]


def forward(params, x, h0=None, resets=None):
    """Returns ``y (T, B, H * dirs)``, ``h_n`` and a cache for :func:`backward`."""
    L, H, bi = _structure(params)
    nd = 2 if bi else 1
    x = np.asarray(x)
    T, B, _ = x.shape
    h0 = np.zeros((L * nd, B, H), x.dtype) if h0 is None else np.asarray(h0, x.dtype)
    resets = None if resets is None else np.asarray(resets, bool)
    hn = np.zeros_like(h0)
    cache = {"params": params, "inputs": [], "tapes": [], "resets": resets}
    inp = x
    for layer in range(L):
        outs = []
        for d in range(nd):
            k, s = layer * nd + d, _sfx(layer, d)
            w_ih, w_hh = params["weight_ih" + s], params["weight_hh" + s]
            b_ih, b_hh = params["bias_ih" + s], params["bias_hh" + s]
            y, h, tape = np.zeros((T, B, H), x.dtype), h0[k].copy(), []
            for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                keep = _keep(resets, t, d, T, B)
                hp = h * keep
                a = inp[t] @ w_ih.T + b_ih
                u = hp @ w_hh.T + b_hh
                r = sigmoid(a[:, :H] + u[:, :H])
                z = sigmoid(a[:, H:2 * H] + u[:, H:2 * H])
                n = np.tanh(a[:, 2 * H:] + r * u[:, 2 * H:])
                h = (1 - z) * n + z * hp
                y[t] = h
                tape.append(dict(t=t, keep=keep, hp=hp, r=r, z=z, n=n, un=u[:, 2 * H:]))
            hn[k] = h
            outs.append(y)
            cache["tapes"].append(tape)
        cache["inputs"].append(inp)
        inp = np.concatenate(outs, axis=2)
    return inp, hn, cache


def backward(dy, cache, dh_n=None):
    """Returns ``dx``, ``dh0`` and a dict of parameter gradients named like the parameters."""
    params = cache["params"]
    L, H, bi = _structure(params)
    nd = 2 if bi else 1
    dy = np.asarray(dy)
    B = dy.shape[1]
    dh_n = np.zeros((L * nd, B, H), dy.dtype) if dh_n is None else np.asarray(dh_n, dy.dtype)
    dh0, grads, dout = np.zeros_like(dh_n), {}, dy
    for layer in range(L - 1, -1, -1):
        inp = cache["inputs"][layer]
        dinp = np.zeros_like(inp)
        for d in range(nd):
            k, s = layer * nd + d, _sfx(layer, d)
            w_ih, w_hh = params["weight_ih" + s], params["weight_hh" + s]
            g = {n: np.zeros_like(params[n + s]) for n in
                 ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            dh = dh_n[k].copy()
            for st in reversed(cache["tapes"][k]):
                t, r, z, n = st["t"], st["r"], st["z"], st["n"]
                dh = dh + dout[t][:, d * H:(d + 1) * H]
                dn = dh * (1 - z) * (1 - n ** 2)
                dz = dh * (st["hp"] - n) * z * (1 - z)
                dr = dn * st["un"] * r * (1 - r)
                da = np.concatenate([dr, dz, dn], axis=1)
                du = np.concatenate([dr, dz, dn * r], axis=1)
                dinp[t] += da @ w_ih
                g["weight_ih"] += da.T @ inp[t]
                g["weight_hh"] += du.T @ st["hp"]
                g["bias_ih"] += da.sum(0)
                g["bias_hh"] += du.sum(0)
                dh = (dh * z + du @ w_hh) * st["keep"]
            dh0[k] = dh
            grads.update({n + s: v for n, v in g.items()})
        dout = dinp
    return dout, dh0, grads
