"""``rlstm.LSTM``: a multi-layer, optionally bidirectional LSTM with Cython/BLAS kernels."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import _kernels, registry
from .validation import (as_float_array, as_resets, as_state_pair, check_choice, check_dtype,
                          check_int, check_shape)
from .module import Module

VARIANTS = ("vanilla", "peephole", "peephole_cell")
CELL_ACTIVATIONS = ("tanh", "identity")


def reverse_resets(resets: np.ndarray) -> np.ndarray:
    """Resets for the reverse direction, indexed by the step they precede in reverse order.

    Going backwards in time, the state must be zeroed before step t when an episode starts at
    t + 1 (the boundary lies between t and t + 1). The last step starts from the given state.
    """
    rev = np.zeros_like(resets)
    rev[:-1] = resets[1:]
    return rev


@dataclass
class RecurrentCache:
    """What a forward pass keeps for backward. Opaque to users; checked by ``backward``."""
    owner: object
    T: int
    B: int
    layers: list = field(default_factory=list)
    resets: np.ndarray | None = None
    resets_rev: np.ndarray | None = None


class RecurrentLayer:
    """What LSTM and GRU share around their kernels: the forward/backward prologues, inference
    and ``step()`` through the layer's compiled plan (``self._plan``)."""

    def _init_sizes(self, input_size, hidden_size, num_layers, bidirectional) -> None:
        """Validate and set the sizes every recurrent layer has."""
        self.input_size = check_int("input_size", input_size, 0)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(f"bidirectional must be a bool, got {bidirectional!r}")
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1

    def _suffixes(self, layer: int) -> list[str]:
        base = f"_l{layer}"
        return [base, base + "_reverse"][:self.num_directions]

    def _state_shape(self, B: int) -> tuple[int, int, int]:
        return (self.num_layers * self.num_directions, B, self.hidden_size)

    def _check_x(self, x) -> np.ndarray:
        x = as_float_array(x, self.dtype, "x", ndim=3)
        if x.shape[2] != self.input_size:
            raise ValueError(f"x must have shape (T, B, input_size={self.input_size}), "
                             f"got {x.shape}")
        return x

    def _plan_offsets(self, names) -> list[int]:
        """Element offsets within ``flat_params`` of each layer's ``names`` (layer-major), for
        the compiled step plan; a name the layer lacks gives 0 (the kernel ignores it)."""
        base = self.flat_params.__array_interface__["data"][0]
        item = self.flat_params.itemsize
        return [(self.params.get(f"{name}_l{layer}", self.flat_params)
                 .__array_interface__["data"][0] - base) // item
                for layer in range(self.num_layers) for name in names]

    def reset_parameters(self, seed=None) -> None:
        """PyTorch's initialisation: every parameter U(-1/sqrt(H), 1/sqrt(H))."""
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(self.hidden_size)
        self.flat_params[...] = rng.uniform(-k, k, size=self.flat_params.size)

    def forward(self, x, state=None, resets=None):
        """Run the sequence and keep what :meth:`backward` needs.

        Returns ``y`` ``(T, B, H * num_directions)``, the final state (``(h, c)`` for an LSTM,
        ``h`` for a GRU) and a cache.
        """
        return self._forward(x, state, resets, keep=True)

    def __call__(self, x, state=None, resets=None):
        """Inference: ``y, state``; nothing is kept for backward."""
        y, state, _ = self._forward(x, state, resets, keep=False)
        return y, state

    def _begin_forward(self, x, resets, keep: bool):
        """Validated ``x`` (copied when a cache keeps it), ``T``, ``B`` and an empty cache
        holding the resets of both directions."""
        x_in = x
        x = self._check_x(x)
        if keep and x is x_in:  # the cache must not see later in-place changes to the input
            x = x.copy()
        T, B, _ = x.shape
        rs = as_resets(resets, T, B)
        rs_rev = reverse_resets(rs) if (rs is not None and self.bidirectional) else None
        return x, T, B, RecurrentCache(self, T, B, resets=rs, resets_rev=rs_rev)

    def _begin_backward(self, dy, cache):
        """The checked cache's ``T``, ``B`` and ``dy`` as ``(T * B, H * num_directions)``."""
        if not isinstance(cache, RecurrentCache) or cache.owner is not self:
            raise ValueError("cache must be the cache returned by this layer's forward()")
        T, B, width = cache.T, cache.B, self.hidden_size * self.num_directions
        dy = as_float_array(dy, self.dtype, "dy", ndim=3)
        check_shape(dy, (T, B, width), "dy")
        return T, B, dy.reshape(T * B, width)

    def step(self, x_t, state=None):
        """One time step for a batch: ``x_t`` ``(B, input_size)`` -> ``h_t, state``.

        The rollout path: one compiled call for all layers. ``state=None`` means zeros; the
        state is ``(h, c)`` for an LSTM and ``h`` for a GRU. Unidirectional layers only (a
        reverse direction needs the future).
        """
        if self._plan is None:
            raise ValueError(f"step() needs a unidirectional {type(self).__name__}: the reverse "
                             f"direction of a bidirectional one reads future inputs; use "
                             f"forward() instead")
        return self._plan.step(x_t, state)

    def _step_inputs(self, x_t, state):
        """The validating path of step(): converted ``x`` and state arrays, or a clear error."""
        x = as_float_array(x_t, self.dtype, "x_t", ndim=2, finite=False)
        if x.shape[1] != self.input_size:
            raise ValueError(f"x_t must have shape (B, input_size={self.input_size}), "
                             f"got {x.shape}")
        st = self._check_state(state, x.shape[0])
        return (x, *st) if isinstance(st, tuple) else (x, st)


class LSTM(RecurrentLayer, Module):
    """Long short-term memory layer(s), time-major ``(T, B, features)``.

    Parameters follow PyTorch's ``nn.LSTM``: names ``weight_ih_l{k}``, ``weight_hh_l{k}``,
    ``bias_ih_l{k}``, ``bias_hh_l{k}`` (``_reverse`` for the second direction), gate order
    i, f, g, o, initialised U(-1/sqrt(H), 1/sqrt(H)). ``variant="peephole"`` adds
    ``peephole_l{k}`` of shape ``(3 * H,)``: the diagonal peepholes p_i, p_f, p_o.
    ``variant="peephole_cell"`` replaces ``weight_hh_l{k}`` by ``weight_ch_l{k}`` of shape
    ``(3 * H, H)``: the full cell-to-gate matrices U_i, U_f, U_o (the gates read ``c_{t-1}``,
    the cell input ``g = tanh(W_g x + b_g)`` has no recurrent term, ``h_0`` is unused).
    ``forget_bias`` is added to the initial forget-gate bias ``bias_ih[H:2H]`` (Gers et al.
    2000; Jozefowicz et al. 2015 recommend 1.0; Keras' ``unit_forget_bias``), so a fresh layer
    starts out remembering; 0.0 (default) is PyTorch's initialisation.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, variant: str = "vanilla",
                 cell_activation: str = "tanh", dtype=np.float32, seed=None,
                 forget_bias: float = 0.0):
        self._init_sizes(input_size, hidden_size, num_layers, bidirectional)
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float, np.number)) \
                or not np.isfinite(forget_bias):
            raise TypeError(f"forget_bias must be a finite number, got {forget_bias!r}")
        self.forget_bias = float(forget_bias)
        self.variant = check_choice("variant", variant, VARIANTS)
        self.cell_activation = check_choice("cell_activation", cell_activation,
                                            CELL_ACTIVATIONS)
        self._peephole = self.variant == "peephole"
        self._identity = self.cell_activation == "identity"
        self._cell_rec = self.variant == "peephole_cell"
        H = self.hidden_size
        spec = []
        for layer in range(self.num_layers):
            d_in = self.input_size if layer == 0 else H * self.num_directions
            for suffix in self._suffixes(layer):
                rec = (f"weight_ch{suffix}", (3 * H, H)) if self._cell_rec else \
                    (f"weight_hh{suffix}", (4 * H, H))
                spec += [(f"weight_ih{suffix}", (4 * H, d_in)), rec,
                         (f"bias_ih{suffix}", (4 * H,)), (f"bias_hh{suffix}", (4 * H,))]
                if self._peephole:
                    spec.append((f"peephole{suffix}", (3 * H,)))
        self._empty = np.zeros(0, dtype=check_dtype(dtype))
        self._allocate(spec, dtype)
        self.reset_parameters(seed)

    def _on_rebind(self) -> None:
        # Offsets (in elements) of each layer's w_ih, w_hh, b_ih, b_hh, peepholes within
        # flat_params, for the fast step() path. Only unidirectional layers step.
        if self.bidirectional:
            self._plan = None
            return
        offsets = self._plan_offsets(("weight_ih", self._rec_name, "bias_ih", "bias_hh",
                                      "peephole"))
        self._plan = _kernels.StepPlan(self, offsets, self.input_size, self.hidden_size,
                                       self._peephole, self._identity, self._cell_rec)

    @property
    def _rec_name(self) -> str:
        """The recurrent matrix: ``weight_hh`` (h_{t-1}), or ``weight_ch`` (c_{t-1})."""
        return "weight_ch" if self._cell_rec else "weight_hh"

    def reset_parameters(self, seed=None) -> None:
        """PyTorch's initialisation (every parameter U(-1/sqrt(H), 1/sqrt(H))), then
        ``forget_bias`` added to each ``bias_ih``'s forget-gate rows."""
        RecurrentLayer.reset_parameters(self, seed)
        if self.forget_bias:
            H = self.hidden_size
            for layer in range(self.num_layers):
                for suffix in self._suffixes(layer):
                    self.params[f"bias_ih{suffix}"][H:2 * H] += self.forget_bias

    def _layer(self, k: int):
        layer, d = divmod(k, self.num_directions)
        suffix = self._suffixes(layer)[d]
        p, g = self.params, self.grads
        peep = p[f"peephole{suffix}"] if self._peephole else self._empty
        dpeep = g[f"peephole{suffix}"] if self._peephole else self._empty
        rec = self._rec_name
        return (p[f"weight_ih{suffix}"], p[f"{rec}{suffix}"], p[f"bias_ih{suffix}"],
                p[f"bias_hh{suffix}"], peep,
                g[f"weight_ih{suffix}"], g[f"{rec}{suffix}"], g[f"bias_ih{suffix}"],
                g[f"bias_hh{suffix}"], dpeep)

    # ------------------------------------------------------------------ validation
    def _check_state(self, state, B: int, name: str = "state"):
        shape = self._state_shape(B)
        return as_state_pair(state, shape, self.dtype, name)

    def initial_state(self, batch_size: int):
        """Zero ``(h, c)`` for ``batch_size`` rows."""
        shape = self._state_shape(check_int("batch_size", batch_size, 1))
        return np.zeros(shape, dtype=self.dtype), np.zeros(shape, dtype=self.dtype)

    # ------------------------------------------------------------------ passes
    def _forward(self, x, state, resets, keep: bool):
        x, T, B, cache = self._begin_forward(x, resets, keep)
        rs, rs_rev = cache.resets, cache.resets_rev
        h0, c0 = self._check_state(state, B)
        H, nd, dt = self.hidden_size, self.num_directions, self.dtype
        hn = np.empty(self._state_shape(B), dtype=dt)
        cn = np.empty(self._state_shape(B), dtype=dt)
        inp = x.reshape(T * B, self.input_size)
        for layer in range(self.num_layers):
            y = np.empty((T * B, H * nd), dtype=dt)
            for d in range(nd):
                k = layer * nd + d
                w_ih, w_hh, b_ih, b_hh, peep = self._layer(k)[:5]
                gates = np.empty((T * B, 4 * H), dtype=dt)
                cs = np.empty((T * B, H), dtype=dt)
                hprev = np.empty((T * B, H), dtype=dt)
                _kernels.lstm_forward(
                    x=inp, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, peep=peep, h0=h0[k],
                    c0=c0[k], resets=rs if d == 0 else rs_rev, reverse=d == 1,
                    peephole=self._peephole, identity=self._identity, cell_rec=self._cell_rec,
                    gates=gates, cs=cs, hprev=hprev, y=y, yoff=d * H, h_n=hn[k], c_n=cn[k])
                if keep:
                    cache.layers.append((inp, gates, cs, hprev, c0[k].copy()))
            inp = y
        if T == 0:  # nothing ran: the final state is the initial state
            hn[...], cn[...] = h0, c0
        return inp.reshape(T, B, H * nd), (hn, cn), (cache if keep else None)

    def backward(self, dy, cache: RecurrentCache, dstate=None, input_grad: bool = True):
        """Backpropagate ``dy`` (and ``dstate`` on the final ``(h, c)``) through a forward pass.

        Adds parameter gradients into :attr:`grads`; returns ``dx`` and ``(dh0, dc0)``.
        ``input_grad=False`` skips ``dx`` (returned as ``None``): for a first layer fed by data
        this saves the ``dgates @ W_ih`` GEMM, 2*T*B*4H*D flops, one sixth of a training step
        when D = H (about 7 ms of 50 at T=64, B=32, D=H=256 on one core).
        """
        T, B, dout = self._begin_backward(dy, cache)
        H, nd, dt = self.hidden_size, self.num_directions, self.dtype
        if dstate is None:
            dh_n = np.zeros(self._state_shape(B), dtype=dt)
            dc_n = dh_n
        else:
            dh_n, dc_n = self._check_state(dstate, B, "dstate")
        dh0 = np.empty(self._state_shape(B), dtype=dt)
        dc0 = np.empty(self._state_shape(B), dtype=dt)
        for layer in range(self.num_layers - 1, -1, -1):
            d_in = self.input_size if layer == 0 else H * nd
            skip_dx = layer == 0 and not input_grad
            dinp = None if skip_dx else np.empty((T * B, d_in), dtype=dt)
            for d in range(nd):
                k = layer * nd + d
                w_ih, w_hh, _, _, peep, dw_ih, dw_hh, db_ih, db_hh, dpeep = self._layer(k)
                inp, gates, cs, hprev, c0 = cache.layers[k]
                dgates = np.empty((T * B, 4 * H), dtype=dt)
                dh0[k] = dh_n[k]
                dc0[k] = dc_n[k]
                _kernels.lstm_backward(
                    x=inp, w_ih=w_ih, w_hh=w_hh, peep=peep, c0=c0,
                    resets=cache.resets if d == 0 else cache.resets_rev, reverse=d == 1,
                    peephole=self._peephole, identity=self._identity, cell_rec=self._cell_rec,
                    gates=gates, cs=cs, hprev=hprev, dy=dout, dyoff=d * H, dgates=dgates,
                    dx=dinp, dx_accumulate=d == 1, dw_ih=dw_ih, dw_hh=dw_hh, db_ih=db_ih,
                    db_hh=db_hh, dpeep=dpeep, dh=dh0[k], dc=dc0[k])
            dout = dinp
        dx = None if dout is None else dout.reshape(T, B, self.input_size)
        return dx, (dh0, dc0)


# ---------------------------------------------------------------------------- rlstm.save/load
def _config(m: LSTM) -> dict:
    return {"input_size": m.input_size, "hidden_size": m.hidden_size,
            "num_layers": m.num_layers, "bidirectional": m.bidirectional,
            "variant": m.variant, "cell_activation": m.cell_activation, "dtype": m.dtype.name,
            "forget_bias": m.forget_bias}


def _build(c: dict, size: int) -> LSTM:
    registry.need_recurrent(c, int(c["input_size"]), size)
    return LSTM(c["input_size"], c["hidden_size"], c["num_layers"],
                bidirectional=c["bidirectional"], variant=c["variant"],
                cell_activation=c["cell_activation"], dtype=c["dtype"],
                forget_bias=c.get("forget_bias", 0.0))


registry.register("LSTM", _config, _build)
