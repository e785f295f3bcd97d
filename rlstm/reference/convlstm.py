"""Pure-NumPy reference ConvLSTM with Hadamard peepholes: forward and backward, loops over time.

The specification ``rlstm.ConvLSTM``'s kernels are tested against. Convolutions are written as
sums over kernel offsets of a zero-padded input (no im2col), so they share nothing with the
kernels. Parameters are ``ConvLSTM.params``; one step of layer k for images ``x_t``::

    z   = conv(x_t, W_ih) + conv(h_{t-1}, W_hh) + b          z = [z_i, z_f, z_g, z_o]
    i   = sigmoid(z_i + V_i * c_{t-1});  f = sigmoid(z_f + V_f * c_{t-1});  g = tanh(z_g)
    c_t = f * c_{t-1} + i * g;           o = sigmoid(z_o + V_o * c_t);      h_t = o * tanh(c_t)

``conv`` is a same-padded cross-correlation (PyTorch's ``conv2d`` with ``padding=k // 2``).
Resets zero row b's (h, c) before step t where ``resets[t, b]`` is set.
"""
from __future__ import annotations

import numpy as np

from .lstm import sigmoid

__all__ = ["forward", "backward", "conv2d_same"]


def conv2d_same(x, w):
    """x (B, C, H, W), w (O, C, kh, kw) -> (B, O, H, W), zero padding that keeps the size."""
    B, C, H, W = x.shape
    kh, kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    out = np.zeros((B, w.shape[0], H, W), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            out += np.einsum("bchw,oc->bohw", xp[:, :, i:i + H, j:j + W], w[:, :, i, j])
    return out


def _conv2d_same_backward(dout, x, w):
    """Gradients of conv2d_same with respect to x and w."""
    B, C, H, W = x.shape
    kh, kw = w.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + H, j:j + W] += np.einsum("bohw,oc->bchw", dout, w[:, :, i, j])
            dw[:, :, i, j] = np.einsum("bohw,bchw->oc", dout, xp[:, :, i:i + H, j:j + W])
    return dxp[:, :, kh // 2:kh // 2 + H, kw // 2:kw // 2 + W], dw


def _num_layers(params):
    n = 0
    while f"weight_ih_l{n}" in params:
        n += 1
    return n


def _peepholes(params, k):
    if f"peephole_i_l{k}" not in params:
        return 0.0, 0.0, 0.0
    return tuple(params[f"peephole_{g}_l{k}"] for g in "ifo")


def forward(params, x, state=None, resets=None):
    """Returns ``y (T, B, F, H, W)``, ``(h_n, c_n)`` and a cache for :func:`backward`."""
    L = _num_layers(params)
    x = np.asarray(x)
    T, B, _, H, W = x.shape
    F = params["weight_hh_l0"].shape[1]
    if state is None:
        state = (np.zeros((L, B, F, H, W), x.dtype),) * 2
    h0, c0 = (np.asarray(s, x.dtype) for s in state)
    hn, cn = np.zeros_like(h0), np.zeros_like(c0)
    cache = {"params": params, "inputs": [], "tapes": []}
    inp = x
    for k in range(L):
        w_ih, w_hh, b = params[f"weight_ih_l{k}"], params[f"weight_hh_l{k}"], params[f"bias_l{k}"]
        v_i, v_f, v_o = _peepholes(params, k)
        h, c, y, tape = h0[k].copy(), c0[k].copy(), np.zeros((T, B, F, H, W), x.dtype), []
        for t in range(T):
            keep = np.ones((B, 1, 1, 1), bool) if resets is None else \
                ~np.asarray(resets, bool)[t][:, None, None, None]
            hp, cp = h * keep, c * keep
            z = conv2d_same(inp[t], w_ih) + conv2d_same(hp, w_hh) + b[None, :, None, None]
            i = sigmoid(z[:, :F] + v_i * cp)
            f = sigmoid(z[:, F:2 * F] + v_f * cp)
            g = np.tanh(z[:, 2 * F:3 * F])
            c = f * cp + i * g
            o = sigmoid(z[:, 3 * F:] + v_o * c)
            h = o * np.tanh(c)
            y[t] = h
            tape.append(dict(keep=keep, hp=hp, cp=cp, i=i, f=f, g=g, o=o, c=c))
        hn[k], cn[k] = h, c
        cache["inputs"].append(inp)
        cache["tapes"].append(tape)
        inp = y
    return inp, (hn, cn), cache


def backward(dy, cache, dstate=None):
    """Returns ``dx``, ``(dh0, dc0)`` and a dict of parameter gradients named like the params."""
    params = cache["params"]
    L = _num_layers(params)
    dy = np.asarray(dy)
    T, B, F, H, W = dy.shape
    if dstate is None:
        dstate = (np.zeros((L, B, F, H, W), dy.dtype),) * 2
    dh_n, dc_n = (np.asarray(s, dy.dtype) for s in dstate)
    dh0, dc0, grads, dout = np.zeros_like(dh_n), np.zeros_like(dc_n), {}, dy
    for k in range(L - 1, -1, -1):
        inp = cache["inputs"][k]
        w_ih, w_hh = params[f"weight_ih_l{k}"], params[f"weight_hh_l{k}"]
        v_i, v_f, v_o = _peepholes(params, k)
        gw_ih, gw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
        gb = np.zeros(4 * F, dy.dtype)
        gv = [np.zeros((B, F, H, W), dy.dtype) for _ in range(3)]
        dinp = np.zeros_like(inp)
        dh, dc = dh_n[k].copy(), dc_n[k].copy()
        for t in range(T - 1, -1, -1):
            s = cache["tapes"][k][t]
            dh = dh + dout[t]
            a = np.tanh(s["c"])
            dz_o = dh * a * s["o"] * (1 - s["o"])
            dc = dc + dh * s["o"] * (1 - a ** 2) + dz_o * v_o
            dz_i = dc * s["g"] * s["i"] * (1 - s["i"])
            dz_f = dc * s["cp"] * s["f"] * (1 - s["f"])
            dz_g = dc * s["i"] * (1 - s["g"] ** 2)
            dz = np.concatenate([dz_i, dz_f, dz_g, dz_o], axis=1)
            gv[0] += dz_i * s["cp"]
            gv[1] += dz_f * s["cp"]
            gv[2] += dz_o * s["c"]
            dc_prev = dc * s["f"] + dz_i * v_i + dz_f * v_f
            dx_t, dw = _conv2d_same_backward(dz, inp[t], w_ih)
            dinp[t] += dx_t
            gw_ih += dw
            dh_prev, dw = _conv2d_same_backward(dz, s["hp"], w_hh)
            gw_hh += dw
            gb += dz.sum(axis=(0, 2, 3))
            dh, dc = dh_prev * s["keep"], dc_prev * s["keep"]
        dh0[k], dc0[k] = dh, dc
        grads.update({f"weight_ih_l{k}": gw_ih, f"weight_hh_l{k}": gw_hh, f"bias_l{k}": gb})
        if f"peephole_i_l{k}" in params:
            for gate, gvj in zip("ifo", gv):
                shape = params[f"peephole_{gate}_l{k}"].shape
                red = gvj.sum(axis=0)
                grads[f"peephole_{gate}_l{k}"] = red if shape == red.shape else \
                    red.sum(axis=(1, 2), keepdims=True)
        dout = dinp
    return dout, (dh0, dc0), grads
