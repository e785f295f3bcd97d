"""``rlstm.ConvLSTM``: the peephole convolutional LSTM (Shi et al. 2015) with im2col + GEMM.

For every layer, with ``*`` a same-padded 2-D convolution and ``∘`` the Hadamard product::

    i = sigmoid(W_xi * x_t + W_hi * h_{t-1} + V_i ∘ c_{t-1} + b_i)
    f = sigmoid(W_xf * x_t + W_hf * h_{t-1} + V_f ∘ c_{t-1} + b_f)
    g = tanh(W_xg * x_t + W_hg * h_{t-1} + b_g)
    c_t = f ∘ c_{t-1} + i ∘ g
    o = sigmoid(W_xo * x_t + W_ho * h_{t-1} + V_o ∘ c_t + b_o)
    h_t = o ∘ tanh(c_t)
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _kernels, registry
from .validation import (as_float_array, as_lengths, as_resets, as_state_pair, check_dtype,
                         check_int, check_shape)
from .lstm import _PASS_GATES, RecurrentCache
from .module import Module
from .padding import padding

_NO_RESETS = np.zeros((1, 1), dtype=np.uint8)


def _pair(name: str, value, minimum: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return check_int(f"{name}[0]", value[0], minimum), check_int(f"{name}[1]", value[1],
                                                                     minimum)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        v = check_int(name, value, minimum)
        return v, v
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


class ConvLSTM(Module):
    """Convolutional LSTM layer(s) over ``(T, B, C, height, width)``; padding keeps the size.

    Parameters (per layer k; F = hidden_channels, gate order i, f, g, o)::

        weight_ih_l{k}   (4F, C_k, kh, kw)   input convolution (C_0 = in_channels, else F)
        weight_hh_l{k}   (4F, F, kh, kw)     recurrent convolution
        bias_l{k}        (4F,)
        peephole_i_l{k}, peephole_f_l{k}, peephole_o_l{k}   with ``peephole=True``:
                         (F, height, width) when ``spatial_shape=(height, width)`` is given
                         (one weight per position), else (F, 1, 1) (shared by all positions)

    Convolution weights and biases start U(-1/sqrt(F*kh*kw), 1/sqrt(F*kh*kw)); peepholes at 0.
    The state is ``(h, c)``, each ``(num_layers, B, F, height, width)``. ``lengths`` ``(B,)``
    on ``forward``/``__call__``: right-padded sequences, as for :class:`rlstm.LSTM` (zero
    outputs at padded steps, each sequence's final state at its own last step, no gradient
    through the padding).
    """

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size, *,
                 peephole: bool = True, spatial_shape=None, num_layers: int = 1,
                 dtype=np.float32, seed=None):
        self.in_channels = check_int("in_channels", in_channels, 0)
        self.hidden_channels = check_int("hidden_channels", hidden_channels, 1)
        self.kernel_size = _pair("kernel_size", kernel_size, 1)
        if self.kernel_size[0] % 2 == 0 or self.kernel_size[1] % 2 == 0:
            raise ValueError(f"kernel_size must be odd so that same padding keeps the size, "
                             f"got {self.kernel_size}")
        self.num_layers = check_int("num_layers", num_layers, 1)
        if not isinstance(peephole, (bool, np.bool_)):
            raise TypeError(f"peephole must be a bool, got {peephole!r}")
        self.peephole = bool(peephole)
        self.spatial_shape = None if spatial_shape is None else _pair("spatial_shape",
                                                                      spatial_shape, 1)
        F, (kh, kw) = self.hidden_channels, self.kernel_size
        pshape = (F,) + (self.spatial_shape or (1, 1))
        spec = []
        for k in range(self.num_layers):
            c_in = self.in_channels if k == 0 else F
            spec += [(f"weight_ih_l{k}", (4 * F, c_in, kh, kw)),
                     (f"weight_hh_l{k}", (4 * F, F, kh, kw)), (f"bias_l{k}", (4 * F,))]
            if self.peephole:
                spec += [(f"peephole_{g}_l{k}", pshape) for g in "ifo"]
        self._allocate(spec, check_dtype(dtype))
        self.reset_parameters(seed)

    def extra_repr(self) -> str:
        parts = [f"{self.in_channels}, {self.hidden_channels}",
                 f"kernel_size={self.kernel_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if not self.peephole:
            parts.append("peephole=False")
        if self.spatial_shape is not None:
            parts.append(f"spatial_shape={self.spatial_shape}")
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return ", ".join(parts)

    def reset_parameters(self, seed=None) -> None:
        """Convolutions and biases U(-1/sqrt(F*kh*kw), +); peepholes zero."""
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(self.hidden_channels * self.kernel_size[0] * self.kernel_size[1])
        for name, p in self.params.items():
            p[...] = 0 if name.startswith("peephole") else rng.uniform(-bound, bound, p.shape)

    # ------------------------------------------------------------------ validation
    def _check_x(self, x, name: str = "x", ndim: int = 5) -> np.ndarray:
        x = as_float_array(x, self.dtype, name, ndim=ndim)
        lead = "(T, B, " if ndim == 5 else "(B, "
        if x.shape[-3] != self.in_channels:
            raise ValueError(f"{name} must have shape {lead}in_channels={self.in_channels}, "
                             f"height, width), got {x.shape}")
        if self.spatial_shape is not None and x.shape[-2:] != self.spatial_shape:
            raise ValueError(f"{name} must have height, width = spatial_shape="
                             f"{self.spatial_shape} (the per-position peepholes' shape), got "
                             f"{x.shape}")
        return x

    def _state_shape(self, B: int, hw) -> tuple:
        return (self.num_layers, B, self.hidden_channels) + tuple(hw)

    def _check_state(self, state, B: int, hw, name: str = "state"):
        shape = self._state_shape(B, hw)
        return as_state_pair(state, shape, self.dtype, name)

    def initial_state(self, batch_size: int, spatial_shape=None):
        """Zero ``(h, c)``; ``spatial_shape`` defaults to the constructor's."""
        hw = _pair("spatial_shape", spatial_shape or self.spatial_shape, 1) \
            if (spatial_shape or self.spatial_shape) else None
        if hw is None:
            raise ValueError("initial_state needs spatial_shape=(height, width) when the layer "
                             "was built without one")
        shape = self._state_shape(check_int("batch_size", batch_size, 1), hw)
        return np.zeros(shape, dtype=self.dtype), np.zeros(shape, dtype=self.dtype)

    @staticmethod
    def _to_rows(a: np.ndarray) -> np.ndarray:
        """(..., F, H, W) -> channel-last rows (prod(...) * H * W, F), contiguous."""
        F = a.shape[-3]
        return np.ascontiguousarray(np.moveaxis(a, -3, -1)).reshape(-1, F)

    def _peep(self, k: int, P: int):
        """Peepholes of layer k in the kernel's (Pv, 3F) layout (Pv = P or 1)."""
        if not self.peephole:
            return np.zeros((1, 3 * self.hidden_channels), dtype=self.dtype)
        v = np.stack([self.params[f"peephole_{g}_l{k}"] for g in "ifo"])  # (3, F, h, w)
        return np.ascontiguousarray(v.reshape(3 * self.hidden_channels, -1).T)

    # ------------------------------------------------------------------ passes
    def forward(self, x, state=None, resets=None, *, lengths=None):
        """Run the sequence and keep what :meth:`backward` needs: ``y, (h, c), cache``."""
        return self._forward(x, state, resets, keep=True, lengths=lengths)

    def __call__(self, x, state=None, resets=None, *, lengths=None):
        """Inference: ``y, (h, c)``; nothing is kept for backward."""
        y, state, _ = self._forward(x, state, resets, keep=False, lengths=lengths)
        return y, state

    def _forward(self, x, state, resets, keep: bool, lengths=None):
        x = self._check_x(x)
        T, B, C, Hh, Ww = x.shape
        h0, c0 = self._check_state(state, B, (Hh, Ww))
        rs = as_resets(resets, T, B)
        F, (kh, kw), dt, P = self.hidden_channels, self.kernel_size, self.dtype, Hh * Ww
        pad = padding(as_lengths(lengths, T, B), T, B)
        if pad is not None:
            rs = pad.resets(rs)
            # pixel rows ((t * B + b) * P + p) of the padded steps and of each last step
            pad_px = (pad.pad_rows[:, None] * P + np.arange(P)).reshape(-1)
            last_px = (pad.last_rows[:, None] * P + np.arange(P)).reshape(-1)
        if T == 0 or B == 0:
            y = np.zeros((T, B, F, Hh, Ww), dtype=dt)
            return y, (h0.copy(), c0.copy()), (RecurrentCache(self, T, B) if keep else None)
        # copies (never views of the caller's arrays: the cache keeps c0)
        h0r = np.array(self._to_rows(h0).reshape(self.num_layers, B * P, F))
        c0r = np.array(self._to_rows(c0).reshape(self.num_layers, B * P, F))
        hn = np.empty((self.num_layers, B * P, F), dtype=dt)
        cn = np.empty_like(hn)
        cache = RecurrentCache(self, T, B, resets=rs, padding=pad)
        cache.shape = (Hh, Ww)
        inp, c_in, channel_last = x.reshape(-1), C, False
        for k in range(self.num_layers):
            N = T * B * P
            xcols = np.empty((N, c_in * kh * kw), dtype=dt)
            gates = np.empty((N, 4 * F), dtype=dt)
            cs, hprev, y = (np.empty((N, F), dtype=dt) for _ in range(3))
            peep = self._peep(k, P)
            p = self.params
            _kernels.convlstm_forward(
                inp, T, B, c_in, channel_last, Hh, Ww, kh, kw,
                p[f"weight_ih_l{k}"].reshape(4 * F, -1), p[f"weight_hh_l{k}"].reshape(4 * F, -1),
                p[f"bias_l{k}"], peep, self.peephole, h0r[k], c0r[k],
                _NO_RESETS if rs is None else rs, rs is not None,
                xcols, gates, cs, hprev, y, hn[k], cn[k])
            if pad is not None:  # as LSTM._end_at_lengths, over every pixel row
                hn[k], cn[k] = y[last_px], cs[last_px]
                y[pad_px] = 0
                if keep:
                    gates.reshape(-1, 4, F)[pad_px] = _PASS_GATES
                    cs[pad_px] = 0
            if keep:
                cache.layers.append((xcols, gates, cs, hprev, c0r[k], peep, c_in, channel_last))
            inp, c_in, channel_last = y.reshape(-1), F, True
        back = (lambda a, lead: np.ascontiguousarray(
            np.moveaxis(a.reshape(lead + (Hh, Ww, F)), -1, -3)))
        return (back(inp, (T, B)), (back(hn, (self.num_layers, B)),
                                    back(cn, (self.num_layers, B))),
                cache if keep else None)

    def backward(self, dy, cache: RecurrentCache, dstate=None):
        """Backpropagate ``dy`` (and ``dstate`` on the final ``(h, c)``) through a forward pass.

        Adds parameter gradients into :attr:`grads`; returns ``dx`` and ``(dh0, dc0)``.
        """
        if not isinstance(cache, RecurrentCache) or cache.owner is not self:
            raise ValueError("cache must be the cache returned by this layer's forward()")
        T, B = cache.T, cache.B
        F, (kh, kw), dt, L = self.hidden_channels, self.kernel_size, self.dtype, self.num_layers
        if not cache.layers:  # T == 0 or B == 0
            hw = dy.shape[-2:] if np.ndim(dy) == 5 else (0, 0)
            dh, dc = self._check_state(dstate, B, hw, "dstate")
            return np.zeros((T, B, self.in_channels) + tuple(hw), dtype=dt), (dh.copy(),
                                                                             dc.copy())
        Hh, Ww = cache.shape
        P = Hh * Ww
        dy = as_float_array(dy, dt, "dy", ndim=5)
        check_shape(dy, (T, B, F, Hh, Ww), "dy")
        dh_n, dc_n = self._check_state(dstate, B, (Hh, Ww), "dstate")
        dh = self._to_rows(dh_n).reshape(L, B * P, F).copy()
        dc = self._to_rows(dc_n).reshape(L, B * P, F).copy()
        dout = self._to_rows(dy)
        rs, pad = cache.resets, cache.padding
        if pad is not None:
            dout = dout.copy()
            dout[(pad.pad_rows[:, None] * P + np.arange(P)).reshape(-1)] = 0
            last_px = (pad.last_rows[:, None] * P + np.arange(P)).reshape(-1)
        for k in range(L - 1, -1, -1):
            xcols, gates, cs, hprev, c0, peep, c_in, channel_last = cache.layers[k]
            N = T * B * P
            if pad is not None:  # the gradient on h_n enters at each sequence's last step
                dout[last_px] += dh[k]
                dh[k] = 0
            dgates = np.empty((N, 4 * F), dtype=dt)
            dinp = np.empty(N * c_in, dtype=dt)
            dpeep = np.zeros_like(peep)
            p, g = self.params, self.grads
            _kernels.convlstm_backward(
                T, B, c_in, channel_last, Hh, Ww, kh, kw, xcols,
                p[f"weight_ih_l{k}"].reshape(4 * F, -1), p[f"weight_hh_l{k}"].reshape(4 * F, -1),
                peep, self.peephole, c0, _NO_RESETS if rs is None else rs, rs is not None,
                gates, cs, hprev, dout, dgates, dinp,
                g[f"weight_ih_l{k}"].reshape(4 * F, -1), g[f"weight_hh_l{k}"].reshape(4 * F, -1),
                g[f"bias_l{k}"], dpeep, dh[k], dc[k])
            if self.peephole:
                dv = dpeep.T.reshape((3,) + g[f"peephole_i_l{k}"].shape)
                for j, gate in enumerate("ifo"):
                    g[f"peephole_{gate}_l{k}"] += dv[j]
            dout = dinp.reshape(N, c_in)
        back = (lambda a: np.ascontiguousarray(
            np.moveaxis(a.reshape((L, B, Hh, Ww, F)), -1, -3)))
        return dout.reshape(T, B, self.in_channels, Hh, Ww), (back(dh), back(dc))

    def step(self, x_t, state=None):
        """One time step: ``x_t`` ``(B, C, height, width)`` -> ``h_t, (h, c)``."""
        x = self._check_x(x_t, "x_t", ndim=4)
        y, state, _ = self._forward(x[None], state, None, keep=False)
        return y[0], state


# ---------------------------------------------------------------------------- rlstm.save/load
def _config(m: ConvLSTM) -> dict:
    return {"in_channels": m.in_channels, "hidden_channels": m.hidden_channels,
            "kernel_size": list(m.kernel_size), "peephole": m.peephole,
            "spatial_shape": None if m.spatial_shape is None else list(m.spatial_shape),
            "num_layers": m.num_layers, "dtype": m.dtype.name}


def _build(c: dict, size: int) -> ConvLSTM:
    """Rebuild from a header, refusing sizes that do not match the saved vector first."""
    try:
        C, F, L = int(c["in_channels"]), int(c["hidden_channels"]), int(c["num_layers"])
        kh, kw = (int(k) for k in c["kernel_size"])
        hw = c["spatial_shape"]
        P = 1 if hw is None else int(hw[0]) * int(hw[1])
        peephole = bool(c["peephole"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"not a ConvLSTM header: {e}") from e
    count = sum(4 * F * ((C if k == 0 else F) + F) * kh * kw + 4 * F
                + (3 * F * P if peephole else 0) for k in range(max(L, 0)))
    if min(C + 1, F, L, kh, kw, P) < 1 or count != size:
        raise ValueError("sizes in the header do not fit the saved parameters (ConvLSTM)")
    return ConvLSTM(C, F, (kh, kw), peephole=peephole,
                    spatial_shape=None if hw is None else tuple(int(v) for v in hw),
                    num_layers=L, dtype=c["dtype"])


registry.register("ConvLSTM", _config, _build)
