"""Pure-NumPy reference LSTM: forward and backward, written as plain loops over time.

This is the specification the Cython kernels are tested against. It is slow on purpose and
shares no code with ``rlstm.lstm``. Parameters are the same dict of names as ``LSTM.params``
(PyTorch's names, gate order i, f, g, o)::

    weight_ih_l{k}[_reverse]  (4H, D_k)    weight_hh_l{k}[_reverse]  (4H, H)
    bias_ih_l{k}[_reverse]    (4H,)        bias_hh_l{k}[_reverse]    (4H,)
    peephole_l{k}[_reverse]   (3H,)        only for variant="peephole": p_i, p_f, p_o

One step of one layer and direction, for every row b (``act`` is tanh or identity)::

    z   = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh              z = [z_i, z_f, z_g, z_o]
    i   = sigmoid(z_i + p_i * c_{t-1})                        (p = 0 without peepholes)
    f   = sigmoid(z_f + p_f * c_{t-1})
    g   = tanh(z_g)
    c_t = f * c_{t-1} + i * g
    o   = sigmoid(z_o + p_o * c_t)
    h_t = o * act(c_t)

Resets: where ``resets[t, b]`` is set, row b's (h, c) is zeroed before step t. The reverse
direction runs t = T-1 .. 0 and zeroes the state before step t when ``resets[t + 1, b]`` is set
(an episode boundary lies between t and t + 1). Layer k > 0 reads the concatenation
``[h_forward, h_reverse]`` of layer k - 1. The state has shape ``(num_layers * num_dirs, B, H)``,
entry ``k * num_dirs + d``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["forward", "backward", "structure"]


def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow


def structure(params) -> tuple[int, int, bool, bool]:
    """``(num_layers, hidden_size, bidirectional, peephole)`` read from the parameter names."""
    num_layers = 0
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    hidden_size = params["weight_hh_l0"].shape[1]
    return (num_layers, hidden_size, "weight_ih_l0_reverse" in params,
            "peephole_l0" in params)


def _suffix(layer: int, d: int) -> str:
    return f"_l{layer}" + ("_reverse" if d == 1 else "")


def _reset_before(resets, t: int, d: int, T: int, B: int):
    """Boolean (B,): rows whose state is zeroed before step t of direction d."""
    if resets is None:
        return np.zeros(B, dtype=bool)
    if d == 0:
        return resets[t]
    return resets[t + 1] if t + 1 < T else np.zeros(B, dtype=bool)


def _direction_forward(x, h0, c0, p, resets, d, identity):
    """One layer, one direction. Returns y (T, B, H), h_T, c_T and the tape for backward."""
    T, B, _ = x.shape
    H = h0.shape[1]
    w_ih, w_hh, b = p["w_ih"], p["w_hh"], p["b_ih"] + p["b_hh"]
    p_i, p_f, p_o = (p["peep"][:H], p["peep"][H:2 * H], p["peep"][2 * H:]) \
        if p["peep"] is not None else (0.0, 0.0, 0.0)
    y = np.zeros((T, B, H), dtype=x.dtype)
    tape = []
    h, c = h0.copy(), c0.copy()
    order = range(T) if d == 0 else range(T - 1, -1, -1)
    for t in order:
        keep = ~_reset_before(resets, t, d, T, B)[:, None]
        h_prev, c_prev = h * keep, c * keep
        z = x[t] @ w_ih.T + h_prev @ w_hh.T + b
        i = sigmoid(z[:, :H] + p_i * c_prev)
        f = sigmoid(z[:, H:2 * H] + p_f * c_prev)
        g = np.tanh(z[:, 2 * H:3 * H])
        c = f * c_prev + i * g
        o = sigmoid(z[:, 3 * H:] + p_o * c)
        a = c if identity else np.tanh(c)
        h = o * a
        y[t] = h
        tape.append(dict(t=t, keep=keep, h_prev=h_prev, c_prev=c_prev, i=i, f=f, g=g, o=o,
                         c=c, a=a))
    return y, h, c, tape


def _direction_backward(dy, dh, dc, x, p, tape, identity):
    """Backward through one direction. ``dh``/``dc``: gradient on the final state.

    Returns dx, dh0, dc0 and the parameter gradients (same keys as ``p``).
    """
    H = dh.shape[1]
    w_ih, w_hh = p["w_ih"], p["w_hh"]
    peep = p["peep"]
    p_i, p_f, p_o = (peep[:H], peep[H:2 * H], peep[2 * H:]) if peep is not None \
        else (0.0, 0.0, 0.0)
    dx = np.zeros_like(x)
    grads = {"w_ih": np.zeros_like(w_ih), "w_hh": np.zeros_like(w_hh),
             "b": np.zeros(4 * H, dtype=x.dtype),
             "peep": None if peep is None else np.zeros_like(peep)}
    dh, dc = dh.copy(), dc.copy()
    for s in reversed(tape):  # the steps in the opposite order to how they ran
        t = s["t"]
        dh = dh + dy[t]                                          # h_t feeds y_t and step t+1
        do = dh * s["a"]
        da = dh * s["o"]
        dz_o = do * s["o"] * (1 - s["o"])
        dc = dc + (da if identity else da * (1 - s["a"] ** 2)) + dz_o * p_o
        di, df, dg = dc * s["g"], dc * s["c_prev"], dc * s["i"]
        dz_i = di * s["i"] * (1 - s["i"])
        dz_f = df * s["f"] * (1 - s["f"])
        dz_g = dg * (1 - s["g"] ** 2)
        dz = np.concatenate([dz_i, dz_f, dz_g, dz_o], axis=1)
        dc_prev = dc * s["f"] + dz_i * p_i + dz_f * p_f
        dh_prev = dz @ w_hh
        dx[t] = dz @ w_ih
        grads["w_ih"] += dz.T @ x[t]
        grads["w_hh"] += dz.T @ s["h_prev"]
        grads["b"] += dz.sum(axis=0)
        if peep is not None:
            grads["peep"] += np.concatenate([(dz_i * s["c_prev"]).sum(0),
                                             (dz_f * s["c_prev"]).sum(0),
                                             (dz_o * s["c"]).sum(0)])
        dh, dc = dh_prev * s["keep"], dc_prev * s["keep"]  # a reset cuts the path back
    return dx, dh, dc, grads


def _layer_params(params, layer, d):
    sfx = _suffix(layer, d)
    return {"w_ih": params[f"weight_ih{sfx}"], "w_hh": params[f"weight_hh{sfx}"],
            "b_ih": params[f"bias_ih{sfx}"], "b_hh": params[f"bias_hh{sfx}"],
            "peep": params.get(f"peephole{sfx}")}


def forward(params, x, state=None, resets=None, cell_activation: str = "tanh"):
    """Reference forward. Returns ``y (T, B, H * dirs)``, ``(h_n, c_n)`` and a cache.

    Computes in ``x``'s dtype (use float64 for a reference).
    """
    if cell_activation not in ("tanh", "identity"):
        raise ValueError(f"cell_activation must be 'tanh' or 'identity', got {cell_activation!r}")
    num_layers, H, bidirectional, _ = structure(params)
    nd = 2 if bidirectional else 1
    x = np.asarray(x)
    T, B, _ = x.shape
    if state is None:
        state = (np.zeros((num_layers * nd, B, H), x.dtype),) * 2
    h0, c0 = (np.asarray(s, dtype=x.dtype) for s in state)
    resets = None if resets is None else np.asarray(resets, dtype=bool)
    identity = cell_activation == "identity"
    hn, cn = np.zeros_like(h0), np.zeros_like(c0)
    cache = {"params": params, "identity": identity, "inputs": [], "tapes": []}
    inp = x
    for layer in range(num_layers):
        outs = []
        for d in range(nd):
            k = layer * nd + d
            y, hn[k], cn[k], tape = _direction_forward(inp, h0[k], c0[k],
                                                       _layer_params(params, layer, d),
                                                       resets, d, identity)
            outs.append(y)
            cache["tapes"].append(tape)
        cache["inputs"].append(inp)
        inp = np.concatenate(outs, axis=2)
    return inp, (hn, cn), cache


def backward(dy, cache, dstate=None):
    """Reference backward. Returns ``dx``, ``(dh0, dc0)`` and a dict of parameter gradients
    with the same names as the parameters."""
    params, identity = cache["params"], cache["identity"]
    num_layers, H, bidirectional, _ = structure(params)
    nd = 2 if bidirectional else 1
    dy = np.asarray(dy)
    B = dy.shape[1]
    shape = (num_layers * nd, B, H)
    if dstate is None:
        dstate = (np.zeros(shape, dy.dtype),) * 2
    dh_n, dc_n = (np.asarray(s, dtype=dy.dtype) for s in dstate)
    dh0, dc0 = np.zeros(shape, dy.dtype), np.zeros(shape, dy.dtype)
    grads = {}
    dout = dy
    for layer in range(num_layers - 1, -1, -1):
        inp = cache["inputs"][layer]
        dinp = np.zeros_like(inp)
        for d in range(nd):
            k = layer * nd + d
            p = _layer_params(params, layer, d)
            dx, dh0[k], dc0[k], g = _direction_backward(dout[:, :, d * H:(d + 1) * H],
                                                        dh_n[k], dc_n[k], inp, p,
                                                        cache["tapes"][k], identity)
            dinp += dx
            sfx = _suffix(layer, d)
            grads[f"weight_ih{sfx}"] = g["w_ih"]
            grads[f"weight_hh{sfx}"] = g["w_hh"]
            grads[f"bias_ih{sfx}"] = g["b"]
            grads[f"bias_hh{sfx}"] = g["b"].copy()
            if g["peep"] is not None:
                grads[f"peephole{sfx}"] = g["peep"]
        dout = dinp
    return dout, (dh0, dc0), grads
