"""Pure-NumPy reference for ``LSTM(variant="peephole_cell")``: forward and backward.

The gates read the previous cell state through full matrices instead of ``h_{t-1}``, and the
cell input has no recurrent term. Parameters (per layer k and direction, ``_reverse`` suffix)::

    weight_ih_l{k}  (4H, D_k)   W = [W_i, W_f, W_g, W_o]
    weight_ch_l{k}  (3H, H)     U = [U_i, U_f, U_o]   (cell-to-gate matrices)
    bias_ih_l{k}, bias_hh_l{k}  (4H,)                 (summed, as in PyTorch)

One step (``act`` is tanh or identity)::

    z = W x_t + b_ih + b_hh
    i = sigmoid(z_i + U_i c_{t-1});  f = sigmoid(z_f + U_f c_{t-1});  g = tanh(z_g)
    c_t = f * c_{t-1} + i * g;       o = sigmoid(z_o + U_o c_{t-1});  h_t = o * act(c_t)

``h_{t-1}`` feeds nothing, so the gradient on ``h_0`` is zero. Resets, directions and stacking
follow ``rlstm.reference.lstm``.
"""
from __future__ import annotations

import numpy as np

from .gru import _keep
from .lstm import _suffix as _sfx
from .lstm import sigmoid

__all__ = ["forward", "backward"]


def _structure(params):
    L = 0
    while f"weight_ih_l{L}" in params:
        L += 1
    return L, params["weight_ch_l0"].shape[1], "weight_ih_l0_reverse" in params


def forward(params, x, state=None, resets=None, cell_activation: str = "tanh"):
    """Returns ``y``, ``(h_n, c_n)`` and a cache for :func:`backward`."""
    L, H, bi = _structure(params)
    nd = 2 if bi else 1
    x = np.asarray(x)
    T, B, _ = x.shape
    if state is None:
        state = (np.zeros((L * nd, B, H), x.dtype),) * 2
    h0, c0 = (np.asarray(s, x.dtype) for s in state)
    resets = None if resets is None else np.asarray(resets, bool)
    identity = cell_activation == "identity"
    hn, cn = h0.copy(), c0.copy()
    cache = {"params": params, "identity": identity, "inputs": [], "tapes": []}
    inp = x
    for layer in range(L):
        outs = []
        for d in range(nd):
            k, s = layer * nd + d, _sfx(layer, d)
            W, U = params["weight_ih" + s], params["weight_ch" + s]
            b = params["bias_ih" + s] + params["bias_hh" + s]
            c, y, tape = c0[k].copy(), np.zeros((T, B, H), x.dtype), []
            for t in (range(T) if d == 0 else range(T - 1, -1, -1)):
                keep = _keep(resets, t, d, T, B)
                cp = c * keep
                z = inp[t] @ W.T + b
                u = cp @ U.T
                i = sigmoid(z[:, :H] + u[:, :H])
                f = sigmoid(z[:, H:2 * H] + u[:, H:2 * H])
                g = np.tanh(z[:, 2 * H:3 * H])
                o = sigmoid(z[:, 3 * H:] + u[:, 2 * H:])
                c = f * cp + i * g
                a = c if identity else np.tanh(c)
                y[t] = o * a
                tape.append(dict(t=t, keep=keep, cp=cp, i=i, f=f, g=g, o=o, a=a))
            if T:
                hn[k], cn[k] = y[tape[-1]["t"]], c
            outs.append(y)
            cache["tapes"].append(tape)
        cache["inputs"].append(inp)
        inp = np.concatenate(outs, axis=2)
    return inp, (hn, cn), cache


def backward(dy, cache, dstate=None):
    """Returns ``dx``, ``(dh0, dc0)`` and the parameter gradients by name."""
    params, identity = cache["params"], cache["identity"]
    L, H, bi = _structure(params)
    nd = 2 if bi else 1
    dy = np.asarray(dy)
    B = dy.shape[1]
    shape = (L * nd, B, H)
    if dstate is None:
        dstate = (np.zeros(shape, dy.dtype),) * 2
    dh_n, dc_n = (np.asarray(s, dy.dtype) for s in dstate)
    dh0, dc0, grads, dout = np.zeros(shape, dy.dtype), np.zeros(shape, dy.dtype), {}, dy
    for layer in range(L - 1, -1, -1):
        inp = cache["inputs"][layer]
        dinp = np.zeros_like(inp)
        for d in range(nd):
            k, s = layer * nd + d, _sfx(layer, d)
            W, U = params["weight_ih" + s], params["weight_ch" + s]
            gW, gU, gb = np.zeros_like(W), np.zeros_like(U), np.zeros(4 * H, dy.dtype)
            dh, dc = dh_n[k].copy(), dc_n[k].copy()
            tape = cache["tapes"][k]
            for n, st in enumerate(reversed(tape)):
                t = st["t"]
                dh = dh + dout[t][:, d * H:(d + 1) * H]
                dz_o = dh * st["a"] * st["o"] * (1 - st["o"])
                dc = dc + dh * st["o"] * (1 if identity else 1 - st["a"] ** 2)
                dz_i = dc * st["g"] * st["i"] * (1 - st["i"])
                dz_f = dc * st["cp"] * st["f"] * (1 - st["f"])
                dz_g = dc * st["i"] * (1 - st["g"] ** 2)
                dz = np.concatenate([dz_i, dz_f, dz_g, dz_o], axis=1)
                du = np.concatenate([dz_i, dz_f, dz_o], axis=1)
                dinp[t] += dz @ W
                gW += dz.T @ inp[t]
                gU += du.T @ st["cp"]
                gb += dz.sum(0)
                dc = (dc * st["f"] + du @ U) * st["keep"]
                dh = np.zeros_like(dh)  # h_{t-1} feeds nothing
            dh0[k], dc0[k] = dh, dc
            grads.update({"weight_ih" + s: gW, "weight_ch" + s: gU, "bias_ih" + s: gb,
                          "bias_hh" + s: gb.copy()})
        dout = dinp
    return dout, (dh0, dc0), grads
