"""``rlstm.LSTM``: a multi-layer, optionally bidirectional LSTM with Cython/BLAS kernels."""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np

from . import _kernels, registry
from .module import Module
from .padding import Padding, padding
from .validation import (Range, as_float_array, as_lengths, as_resets, as_state_pair,
                         check_choice, check_dtype, check_int, check_shape, check_value)

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
    padding: Padding | None = None
    masks: list = field(default_factory=list)   # dropout masks on each layer's output but the last
    batch_first: bool = False
    unbatched: bool = False


def _spawn_rng(seed) -> np.random.Generator:
    """The dropout generator: a stream of its own from ``seed`` (the weights use ``seed``)."""
    if isinstance(seed, np.random.Generator):
        return seed
    try:
        return np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    except TypeError:  # a BitGenerator, or another seed default_rng takes
        return np.random.default_rng(seed)


_DROPOUT = Annotated[float, Range(0, 1, high_open=True)]


_SCRATCH = threading.local()
_SCRATCH_MIN_BYTES = 1 << 20
_SCRATCH_MAX_BYTES = 1 << 26


def work_array(shape: tuple, dtype, slot: int, keep: bool = False) -> np.ndarray:
    """An uninitialised array for a kernel's buffers. One that a cache keeps (``keep``) is new,
    and so is a small one (under 1 MB: malloc serves it from the heap, and a reused one would
    cost more in Python than it saves). Otherwise it is this thread's reusable buffer number
    ``slot`` (up to 64 MB), so that inference and backward do not page-fault fresh memory at
    every call: a fresh 32 MB gate buffer cost 5% of a forward at T=32 B=64 H=1024. The caller
    must be done with it before it asks for the same slot again. The slots in use: 0, 1, 2 a
    sweep's gates, cells (GRU: ``ghn``) and previous hidden states; 3 and 4 backward's gate
    gradients."""
    dtype = np.dtype(dtype)
    n = dtype.itemsize
    for d in shape:
        n *= d
    if keep or n < _SCRATCH_MIN_BYTES or n > _SCRATCH_MAX_BYTES:
        return np.empty(shape, dtype)
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    buf = bufs.get(slot)
    if buf is None or buf.nbytes < n:
        buf = bufs[slot] = np.empty(n, np.uint8)
    return buf[:n].view(dtype).reshape(shape)


class RecurrentLayer:
    """What LSTM and GRU share around their kernels: input layouts (time-major, ``batch_first``,
    unbatched), variable lengths, dropout between layers, the layer/direction loops of forward
    and backward, inference and ``step()`` through the layer's compiled plan (``self._plan``).

    A subclass provides ``_n_gates``, ``_check_state`` and the per-direction kernel calls
    ``_sweep`` / ``_sweep_backward`` / ``_end_at_lengths``.
    """

    _n_gates: int

    def _init_sizes(self, input_size, hidden_size, num_layers, bidirectional) -> None:
        """Validate and set the sizes every recurrent layer has."""
        self.input_size = check_int("input_size", input_size, 0)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError(f"bidirectional must be a bool, got {bidirectional!r}")
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1

    def _init_options(self, bias, batch_first, dropout, seed) -> None:
        """Validate and set PyTorch's options: ``bias``, ``batch_first``, ``dropout``."""
        self.bias = check_value("bias", bias, bool)
        self.batch_first = check_value("batch_first", batch_first, bool)
        self.dropout = check_value("dropout", dropout, _DROPOUT)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn(f"dropout={self.dropout} acts between stacked layers, after all but "
                          f"the last; with num_layers=1 it does nothing", UserWarning,
                          stacklevel=3)
        self.dropout_rng = _spawn_rng(seed)

    def _init_bias_stand_ins(self) -> None:
        """With ``bias=False`` the kernels read zero biases and write bias gradients nowhere."""
        n = self._n_gates * self.hidden_size
        self._zero_bias = np.zeros(n, dtype=self.dtype)
        self._bias_sink = np.zeros(n, dtype=self.dtype)

    def _bias_spec(self, suffix: str) -> list:
        n = self._n_gates * self.hidden_size
        return [(f"bias_ih{suffix}", (n,)), (f"bias_hh{suffix}", (n,))] if self.bias else []

    def _suffixes(self, layer: int) -> list[str]:
        base = f"_l{layer}"
        return [base, base + "_reverse"][:self.num_directions]

    def _state_shape(self, B: int) -> tuple[int, int, int]:
        return (self.num_layers * self.num_directions, B, self.hidden_size)

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

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if not self.bias:
            parts.append("bias=False")
        if self.batch_first:
            parts.append("batch_first=True")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        parts += self._extra_options()
        if self.dtype != np.float32:
            parts.append(f"dtype={self.dtype.name}")
        return ", ".join(parts)

    def _extra_options(self) -> list[str]:
        return []

    # ------------------------------------------------------------------ layouts and states
    def _state_tuple(self, state, B: int, name: str, unbatched: bool) -> tuple:
        """The checked state as a tuple of ``(L * D, B, H)`` arrays (``(h, c)`` or ``(h,)``);
        an unbatched state, arrays of ``(L * D, H)``, becomes a batch of one."""
        if unbatched and state is not None:
            state = self._lift_state(state, name)
        st = self._check_state(state, B, name)
        return st if isinstance(st, tuple) else (st,)

    def _lift_state(self, state, name: str):
        shape = (self.num_layers * self.num_directions, self.hidden_size)

        def one(a, what):
            a = as_float_array(a, self.dtype, what)
            if a.shape != shape:
                raise ValueError(f"{what} of an unbatched input must have shape {shape} "
                                 f"(num_layers * num_directions, hidden_size), got {a.shape}")
            return a[:, None, :]
        if self._n_state == 2:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise TypeError(f"{name} must be a tuple (h, c) of arrays of shape {shape}, "
                                f"or None")
            return one(state[0], f"{name}[0] (h)"), one(state[1], f"{name}[1] (c)")
        if isinstance(state, (tuple, list)):
            raise TypeError(f"{name} of a {type(self).__name__} is a single array h of shape "
                            f"{shape} (not a tuple), or None")
        return one(state, name)

    def _state_out(self, st: tuple, unbatched: bool):
        if unbatched:
            st = tuple(s[:, 0] for s in st)
        return st if self._n_state == 2 else st[0]

    def _time_major_resets(self, resets, T: int, B: int, batch_first: bool, unbatched: bool):
        if resets is None:
            return None
        if unbatched:
            arr = np.asarray(resets)
            if arr.shape != (T,):
                raise ValueError(f"resets of an unbatched input must have shape (T,) = ({T},), "
                                 f"got {arr.shape}")
            return as_resets(arr[:, None], T, 1)
        if batch_first:
            arr = np.asarray(resets)
            if arr.shape != (B, T):
                raise ValueError(f"resets must have shape (B, T) = ({B}, {T}) with "
                                 f"batch_first=True, got {arr.shape}")
            return as_resets(arr.T, T, B)
        return as_resets(resets, T, B)

    # ------------------------------------------------------------------ passes
    def forward(self, x, state=None, resets=None, *, lengths=None):
        """Run the sequence and keep what :meth:`backward` needs.

        ``x`` is ``(T, B, input_size)``, ``(B, T, input_size)`` with ``batch_first``, or one
        unbatched sequence ``(T, input_size)``. Returns ``y`` (``(T, B, H * num_directions)``
        in the input's layout), the final state (``(h, c)`` for an LSTM, ``h`` for a GRU; arrays
        of ``(num_layers * num_directions, B, H)``, or ``(num_layers * num_directions, H)``
        unbatched) and a cache. ``lengths`` ``(B,)``: right-padded sequences (see the class
        docstring). In training mode, ``dropout`` drops units between stacked layers.
        """
        return self._forward(x, state, resets, True, lengths)

    def __call__(self, x, state=None, resets=None, *, lengths=None):
        """Inference: ``y, state``; nothing is kept for backward, and nothing is dropped."""
        y, state, _ = self._forward(x, state, resets, False, lengths)
        return y, state

    def _begin_forward(self, x, resets, lengths, keep: bool):
        """Validated time-major ``x`` (a copy when a cache keeps it), ``T``, ``B`` and an empty
        cache holding the layout, the padding and the resets of both directions."""
        x_in = x
        x = as_float_array(x, self.dtype, "x")
        unbatched = x.ndim == 2
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            lead = "(B, T, " if self.batch_first else "(T, B, "
            if x.ndim not in (2, 3):
                raise ValueError(f"x must have 3 dimensions {lead}input_size={self.input_size}"
                                 f"), or 2 for one unbatched sequence (T, input_size), got shape "
                                 f"{x.shape}")
            if unbatched:
                raise ValueError(f"x of one unbatched sequence must have shape (T, input_size="
                                 f"{self.input_size}), got {x.shape}")
            raise ValueError(f"x must have shape {lead}input_size={self.input_size}), got "
                             f"{x.shape}")
        if unbatched:
            if lengths is not None:
                raise ValueError("lengths needs a batch (x of 3 dimensions): an unbatched x "
                                 "(T, input_size) is one whole sequence; slice it instead")
            x = x[:, None, :]
        elif self.batch_first:
            x = np.array(x.transpose(1, 0, 2), order="C")  # always a copy
        elif keep and x is x_in:  # the cache must not see later in-place changes to the input
            x = x.copy()
        T, B, _ = x.shape
        rs = self._time_major_resets(resets, T, B, self.batch_first and not unbatched,
                                     unbatched)
        pad = padding(as_lengths(lengths, T, B), T, B, self.bidirectional)
        if pad is not None:
            rs_rev = pad.reverse_resets(rs) if self.bidirectional else None
            rs = pad.resets(rs)
        else:
            rs_rev = reverse_resets(rs) if (rs is not None and self.bidirectional) else None
        cache = RecurrentCache(self, T, B, resets=rs, resets_rev=rs_rev, padding=pad,
                               batch_first=self.batch_first and not unbatched,
                               unbatched=unbatched)
        return x, T, B, cache

    def _output(self, y: np.ndarray, cache: RecurrentCache) -> np.ndarray:
        """``y`` ``(T, B, W)`` in the caller's layout."""
        if cache.unbatched:
            return y[:, 0]
        if cache.batch_first:
            return np.ascontiguousarray(y.transpose(1, 0, 2))
        return y

    def _dropout_mask(self, rows: int, width: int) -> np.ndarray:
        """Inverted dropout: 0 with probability p, else 1 / (1 - p)."""
        p = self.dropout
        mask = (self.dropout_rng.random((rows, width), dtype=self.dtype) >= p).astype(self.dtype)
        mask *= self.dtype.type(1.0 / (1.0 - p))
        return mask

    def _forward(self, x, state, resets, keep: bool, lengths=None):
        x, T, B, cache = self._begin_forward(x, resets, lengths, keep)
        s0 = self._state_tuple(state, B, "state", cache.unbatched)
        H, nd, dt, L = self.hidden_size, self.num_directions, self.dtype, self.num_layers
        sn = tuple(np.empty(self._state_shape(B), dtype=dt) for _ in s0)
        pad = cache.padding
        drop = keep and self.training and self.dropout > 0
        inp = x.reshape(T * B, self.input_size)
        for layer in range(L):
            y = np.empty((T * B, H * nd), dtype=dt)
            for d in range(nd):
                k = layer * nd + d
                s0k, snk = tuple(s[k] for s in s0), tuple(s[k] for s in sn)
                rs = cache.resets if d == 0 else cache.resets_rev
                if pad is not None and d == 1:
                    # each sequence's valid steps reversed in place: a forward sweep over them
                    # starts at the sequence's own end
                    src = inp[pad.rev_rows]
                    out = np.empty((T * B, H), dtype=dt)
                    entry = self._sweep(k, src, s0k, rs, False, out, 0, snk, keep)
                    self._end_at_lengths(entry, out, 0, snk, pad, keep)
                    y[:, H:] = out[pad.rev_rows]
                else:
                    entry = self._sweep(k, inp, s0k, rs, d == 1, y, d * H, snk, keep)
                    if pad is not None:
                        self._end_at_lengths(entry, y, d * H, snk, pad, keep)
                if keep:
                    cache.layers.append(entry)
            if pad is not None:
                y[pad.pad_rows] = 0
            if drop and layer < L - 1:
                mask = self._dropout_mask(T * B, H * nd)
                cache.masks.append(mask)
                y *= mask
            inp = y
        if T == 0:  # nothing ran: the final state is the initial state
            for a, b in zip(sn, s0):
                a[...] = b
        return (self._output(inp.reshape(T, B, H * nd), cache),
                self._state_out(sn, cache.unbatched), (cache if keep else None))

    def backward(self, dy, cache: RecurrentCache, dstate=None, input_grad: bool = True):
        """Backpropagate ``dy`` (and ``dstate`` on the final state) through a forward pass.

        Adds parameter gradients into :attr:`grads`; returns ``dx`` (in the input's layout) and
        the gradient on the initial state. ``dy`` at padded steps (with ``lengths``) is ignored,
        and ``dx`` there is zero. ``input_grad=False`` skips ``dx`` (returned as ``None``): for a
        first layer fed by data this saves the ``dgates @ W_ih`` GEMM, 2*T*B*G*H*D flops (G = 4
        gates for an LSTM, 3 for a GRU), about one sixth of a training step when D = H (7 ms of
        50 for an LSTM at T=64, B=32, D=H=256 on one core).
        """
        T, B, dout = self._begin_backward(dy, cache)
        H, nd, dt = self.hidden_size, self.num_directions, self.dtype
        dsn = self._state_tuple(dstate, B, "dstate", cache.unbatched)
        ds0 = tuple(np.empty(self._state_shape(B), dtype=dt) for _ in dsn)
        pad = cache.padding
        if pad is not None:  # ours to change: padded steps get no gradient, states are added
            dout = dout.copy()
            dout[pad.pad_rows] = 0
        for layer in range(self.num_layers - 1, -1, -1):
            d_in = self.input_size if layer == 0 else H * nd
            skip_dx = layer == 0 and not input_grad
            dinp = None if skip_dx else np.empty((T * B, d_in), dtype=dt)
            for d in range(nd):
                k = layer * nd + d
                entry = cache.layers[k]
                dsk = tuple(s[k] for s in ds0)
                for a, b in zip(dsk, dsn):
                    a[...] = b[k]
                rs = cache.resets if d == 0 else cache.resets_rev
                if pad is None:
                    self._sweep_backward(k, entry, dout, d * H, dinp, d == 1, rs, d == 1, dsk)
                    continue
                # the gradient on h_n enters at each sequence's last step; the one on c_n (an
                # LSTM's) passes unchanged through the padded steps (see _end_at_lengths)
                # (the reverse direction in its reversed order: the forward pass's gather)
                dyk = np.ascontiguousarray(dout[pad.rev_rows, H:]) if d == 1 else dout
                dyk[pad.last_rows, :H] += dsk[0]
                dsk[0][...] = 0
                if d == 1 and dinp is not None:
                    dxk = np.empty_like(dinp)
                    self._sweep_backward(k, entry, dyk, 0, dxk, False, rs, False, dsk)
                    dinp += dxk[pad.rev_rows]
                else:
                    self._sweep_backward(k, entry, dyk, 0, dinp, False, rs, False, dsk)
            dout = dinp
            if layer > 0 and cache.masks:  # through the dropout on the layer below's output
                dout *= cache.masks[layer - 1]
        if dout is not None:
            dout = self._output(dout.reshape(T, B, self.input_size), cache)
        return dout, self._state_out(ds0, cache.unbatched)

    def _begin_backward(self, dy, cache):
        """The checked cache's ``T``, ``B`` and ``dy`` as ``(T * B, H * num_directions)``,
        time-major."""
        if not isinstance(cache, RecurrentCache) or cache.owner is not self:
            raise ValueError("cache must be the cache returned by this layer's forward()")
        T, B, width = cache.T, cache.B, self.hidden_size * self.num_directions
        if cache.unbatched:
            dy = as_float_array(dy, self.dtype, "dy", ndim=2)
            check_shape(dy, (T, width), "dy")
            return T, B, dy.reshape(T * B, width)
        dy = as_float_array(dy, self.dtype, "dy", ndim=3)
        if cache.batch_first:
            check_shape(dy, (B, T, width), "dy")
            dy = np.ascontiguousarray(dy.transpose(1, 0, 2))
        else:
            check_shape(dy, (T, B, width), "dy")
        return T, B, dy.reshape(T * B, width)

    def step(self, x_t, state=None):
        """One time step for a batch: ``x_t`` ``(B, input_size)`` -> ``h_t, state``.

        The rollout path: one compiled call for all layers. ``state=None`` means zeros; the
        state is ``(h, c)`` for an LSTM and ``h`` for a GRU. Unidirectional layers only (a
        reverse direction needs the future). No dropout.
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
    """Long short-term memory layer(s), time-major ``(T, B, features)`` by default.

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

    PyTorch's options, as ``nn.LSTM`` has them:

    - ``bias=False``: no bias parameters at all (none in ``params``, the state dict or a saved
      file).
    - ``batch_first=True``: ``x``, ``y`` and ``dy`` are ``(B, T, features)`` (and ``resets``
      ``(B, T)``); states stay ``(num_layers * num_directions, B, H)``.
    - ``dropout=p``: inverted dropout on the output of every layer but the last, in
      :meth:`forward` while the layer is in training mode (:meth:`train`, the default; off
      after :meth:`eval`). Inference (``layer(x)``) and :meth:`step` never drop. The masks
      come from ``dropout_rng``, a generator seeded from ``seed`` (a stream of its own).
    - An unbatched ``x`` ``(T, input_size)`` gives ``y`` ``(T, H * num_directions)`` and
      states ``(num_layers * num_directions, H)``.
    - ``lengths`` ``(B,)`` (``forward``, ``__call__``): right-padded sequences, as
      ``pack_padded_sequence(x, lengths, enforce_sorted=False)`` packs them. Outputs at padded
      steps are zero, the final state of each sequence is its state at its own last step, a
      reverse direction starts at each sequence's own end, and padded steps get and give no
      gradient.
    """

    _n_gates = 4
    _n_state = 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, *,
                 bidirectional: bool = False, variant: str = "vanilla",
                 cell_activation: str = "tanh", dtype=np.float32, seed=None,
                 forget_bias: float = 0.0, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0):
        self._init_sizes(input_size, hidden_size, num_layers, bidirectional)
        if isinstance(forget_bias, bool) or not isinstance(forget_bias, (int, float, np.number)) \
                or not np.isfinite(forget_bias):
            raise TypeError(f"forget_bias must be a finite number, got {forget_bias!r}")
        self.forget_bias = float(forget_bias)
        self.variant = check_choice("variant", variant, VARIANTS)
        self.cell_activation = check_choice("cell_activation", cell_activation,
                                            CELL_ACTIVATIONS)
        self._init_options(bias, batch_first, dropout, seed)
        if self.forget_bias and not self.bias:
            raise ValueError(f"forget_bias={self.forget_bias} sets the forget-gate bias, but "
                             f"bias=False leaves the layer without biases")
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
                spec += [(f"weight_ih{suffix}", (4 * H, d_in)), rec] + self._bias_spec(suffix)
                if self._peephole:
                    spec.append((f"peephole{suffix}", (3 * H,)))
        self._empty = np.zeros(0, dtype=check_dtype(dtype))
        self._allocate(spec, dtype)
        self._init_bias_stand_ins()
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
                                       self._peephole, self._identity, self._cell_rec,
                                       None if self.bias else np.zeros(4 * self.hidden_size,
                                                                       self.dtype))

    @property
    def _rec_name(self) -> str:
        """The recurrent matrix: ``weight_hh`` (h_{t-1}), or ``weight_ch`` (c_{t-1})."""
        return "weight_ch" if self._cell_rec else "weight_hh"

    def _extra_options(self) -> list[str]:
        out = []
        if self.variant != "vanilla":
            out.append(f"variant={self.variant!r}")
        if self.cell_activation != "tanh":
            out.append(f"cell_activation={self.cell_activation!r}")
        if self.forget_bias:
            out.append(f"forget_bias={self.forget_bias}")
        return out

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
        zb, sink = self._zero_bias, self._bias_sink
        return (p[f"weight_ih{suffix}"], p[f"{rec}{suffix}"], p.get(f"bias_ih{suffix}", zb),
                p.get(f"bias_hh{suffix}", zb), peep,
                g[f"weight_ih{suffix}"], g[f"{rec}{suffix}"], g.get(f"bias_ih{suffix}", sink),
                g.get(f"bias_hh{suffix}", sink), dpeep)

    # ------------------------------------------------------------------ validation
    def _check_state(self, state, B: int, name: str = "state"):
        shape = self._state_shape(B)
        return as_state_pair(state, shape, self.dtype, name)

    def initial_state(self, batch_size: int):
        """Zero ``(h, c)`` for ``batch_size`` rows."""
        shape = self._state_shape(check_int("batch_size", batch_size, 1))
        return np.zeros(shape, dtype=self.dtype), np.zeros(shape, dtype=self.dtype)

    # ------------------------------------------------------------------ one layer, one direction
    def _sweep(self, k, inp, s0, resets, reverse, y, yoff, sn, keep):
        """The forward kernel of layer/direction ``k`` over ``inp`` ``(T*B, D_k)``; h_t goes to
        ``y[:, yoff:yoff + H]``, the final ``(h, c)`` to ``sn``. Returns the cache entry."""
        TB, H, dt = inp.shape[0], self.hidden_size, self.dtype
        w_ih, w_hh, b_ih, b_hh, peep = self._layer(k)[:5]
        gates = work_array((TB, 4 * H), dt, 0, keep)
        cs = work_array((TB, H), dt, 1, keep)
        hprev = work_array((TB, H), dt, 2, keep)
        _kernels.lstm_forward(
            x=inp, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, peep=peep, h0=s0[0], c0=s0[1],
            resets=resets, reverse=reverse, peephole=self._peephole, identity=self._identity,
            cell_rec=self._cell_rec, gates=gates, cs=cs, hprev=hprev, y=y, yoff=yoff,
            h_n=sn[0], c_n=sn[1])
        return (inp, gates, cs, hprev, s0[1].copy() if keep else None)

    def _end_at_lengths(self, entry, y, yoff, sn, pad: Padding, keep: bool) -> None:
        """Right-padded rows: the final state is read at each sequence's last step. For
        backward, the padded steps' activations are set to i = 0, f = 1, g = 0, o = 0 and c = 0,
        so that the cell backward passes the gradient on c_n unchanged from step T - 1 to the
        sequence's last step and gives every padded step zero gate gradients (the gradient on
        h_n enters at the last step through dy, see ``backward``)."""
        _, gates, cs, _, _ = entry
        H = self.hidden_size
        sn[0][...] = y[pad.last_rows, yoff:yoff + H]
        sn[1][...] = cs[pad.last_rows]
        if keep:
            gates.reshape(-1, 4, H)[pad.pad_rows] = _PASS_GATES
            cs[pad.pad_rows] = 0

    def _sweep_backward(self, k, entry, dy, dyoff, dx, dx_accumulate, resets, reverse, ds):
        """The backward kernel of layer/direction ``k``: ``ds`` = ``(dh, dc)`` holds the
        gradient on the final state on entry and on the initial state on exit."""
        w_ih, w_hh, _, _, peep, dw_ih, dw_hh, db_ih, db_hh, dpeep = self._layer(k)
        inp, gates, cs, hprev, c0 = entry
        dgates = work_array((inp.shape[0], 4 * self.hidden_size), self.dtype, 3)
        _kernels.lstm_backward(
            x=inp, w_ih=w_ih, w_hh=w_hh, peep=peep, c0=c0, resets=resets, reverse=reverse,
            peephole=self._peephole, identity=self._identity, cell_rec=self._cell_rec,
            gates=gates, cs=cs, hprev=hprev, dy=dy, dyoff=dyoff, dgates=dgates, dx=dx,
            dx_accumulate=dx_accumulate, dw_ih=dw_ih, dw_hh=dw_hh, db_ih=db_ih, db_hh=db_hh,
            dpeep=dpeep, dh=ds[0], dc=ds[1])


_PASS_GATES = np.array([[0.0], [1.0], [0.0], [0.0]])   # i, f, g, o of a padded step


# ---------------------------------------------------------------------------- rlstm.save/load
def _config(m: LSTM) -> dict:
    return {"input_size": m.input_size, "hidden_size": m.hidden_size,
            "num_layers": m.num_layers, "bidirectional": m.bidirectional,
            "variant": m.variant, "cell_activation": m.cell_activation, "dtype": m.dtype.name,
            "forget_bias": m.forget_bias, "bias": m.bias, "batch_first": m.batch_first,
            "dropout": m.dropout}


def _build(c: dict, size: int) -> LSTM:
    """Files from before ``bias``, ``batch_first`` and ``dropout`` load with their defaults."""
    registry.need_recurrent(c, int(c["input_size"]), size)
    return LSTM(c["input_size"], c["hidden_size"], c["num_layers"],
                bidirectional=c["bidirectional"], variant=c["variant"],
                cell_activation=c["cell_activation"], dtype=c["dtype"],
                forget_bias=c.get("forget_bias", 0.0), bias=c.get("bias", True),
                batch_first=c.get("batch_first", False), dropout=c.get("dropout", 0.0))


registry.register("LSTM", _config, _build)
