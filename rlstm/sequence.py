"""``SequenceModel``: a recurrent core with a linear readout at every step, and
:func:`chrono_init` for long lags. Trained by :func:`rlstm.fit`."""
from __future__ import annotations

import numpy as np

from . import registry
from .cores import CORES, core_class, core_name
from .layers import Linear, adopt, param_spec
from .lstm import LSTM
from .module import Module
from .validation import as_float_array, as_lengths, check_int, check_value

__all__ = ["SequenceModel", "chrono_init"]


class SequenceModel(Module):
    """A recurrent core with a linear readout at every step: ``(T, B, D) -> (T, B, O)``.

    Parameters: ``core.<layer names>`` (e.g. ``core.weight_ih_l0``) then ``readout.weight``
    ``(O, H * directions)`` and ``readout.bias`` ``(O,)``, all views into ``flat_params``.
    ``core`` is ``"lstm"``, ``"gru"`` or an rlstm recurrent layer class; ``core_kwargs`` go to
    it (e.g. ``{"variant": "peephole"}``, ``{"bias": False}``, ``{"dropout": 0.2}``; not
    ``batch_first``: a SequenceModel is time-major).

    ``lengths`` ``(B,)`` (``forward``, ``__call__``, ``predict``): right-padded sequences. The
    core masks the padding (see :class:`rlstm.LSTM`), outputs at padded steps are zero, and
    ``backward`` ignores ``dout`` there.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 num_layers: int = 1, *, core="lstm", bidirectional: bool = False,
                 core_kwargs: dict | None = None, dtype=np.float32, seed=None):
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.bidirectional = check_value("SequenceModel.bidirectional", bidirectional, bool)
        self.core_kwargs = dict(core_kwargs or {})
        if self.core_kwargs.get("batch_first"):
            raise ValueError("a SequenceModel and rlstm.fit are time-major (T, N, features): "
                             "leave batch_first out of core_kwargs and pass x.transpose(1, 0, "
                             "2) instead")
        cls = core_class(core)
        self.core_type = core_name(cls)
        rng = np.random.default_rng(seed)
        s1, s2 = rng.integers(2 ** 63, size=2)
        self.core = cls(self.input_size, self.hidden_size, self.num_layers,
                        bidirectional=self.bidirectional, dtype=dtype, seed=s1,
                        **self.core_kwargs)
        width = self.hidden_size * (2 if self.bidirectional else 1)
        self.readout = Linear(width, self.output_size, dtype=dtype, seed=s2)
        self.submodules = [("core.", self.core), ("readout.", self.readout)]
        self._allocate(param_spec(self.core, "core.") + param_spec(self.readout, "readout."),
                       dtype)
        for prefix, child in self.submodules:
            adopt(self, child, prefix)

    def config(self) -> dict:
        """Constructor arguments (JSON-able): what ``rlstm.save`` stores."""
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "output_size": self.output_size, "num_layers": self.num_layers,
                "core": self.core_type, "bidirectional": self.bidirectional,
                "core_kwargs": self.core_kwargs, "dtype": self.dtype.name}

    def initial_state(self, batch_size: int):
        return self.core.initial_state(batch_size)

    def _core_run(self, x, state, resets, lengths, keep: bool):
        """The core's output ``h`` and state (and cache), and the ``(T, B)`` mask of padded
        steps (None without lengths)."""
        pad = None
        kw = {}
        if lengths is not None or not (isinstance(x, np.ndarray) and x.ndim == 3):
            x = as_float_array(x, self.dtype, "x", ndim=3)  # the core also takes 2-D x
        if lengths is not None:
            T, B = x.shape[:2]
            kw["lengths"] = lengths = as_lengths(lengths, T, B)
            pad = np.arange(T)[:, None] >= lengths[None, :]
        if keep:
            return self.core.forward(x, state, resets, **kw), pad
        return self.core(x, state, resets, **kw), pad

    def forward(self, x, state=None, resets=None, *, lengths=None):
        """``out (T, B, O)``, final state, cache (for :meth:`backward`)."""
        (h, state, core_cache), pad = self._core_run(x, state, resets, lengths, True)
        T, B, W = h.shape
        hf = h.reshape(T * B, W)
        out = self.readout._forward(hf).reshape(T, B, self.output_size)
        if pad is not None:
            out[pad] = 0
        return out, state, (core_cache, hf, T, B, pad)

    def backward(self, dout, cache, dstate=None):
        """Add parameter gradients for ``dout`` (T, B, O); returns ``dx, dstate0``."""
        core_cache, hf, T, B, pad = cache
        dout = as_float_array(dout, self.dtype, "dout", ndim=3)
        if dout.shape != (T, B, self.output_size):
            raise ValueError(f"dout must have shape {(T, B, self.output_size)}, got {dout.shape}")
        if pad is not None:  # padded outputs are constant zeros: no gradient from them
            dout = np.where(pad[..., None], 0, dout).astype(self.dtype, copy=False)
        dh = self.readout.backward(dout.reshape(T * B, -1), hf)
        return self.core.backward(dh.reshape(T, B, -1), core_cache, dstate)

    def __call__(self, x, state=None, resets=None, *, lengths=None):
        """Inference: ``out, state`` (no cache kept)."""
        (h, state), pad = self._core_run(x, state, resets, lengths, False)
        T, B, W = h.shape
        out = self.readout._forward(h.reshape(T * B, W)).reshape(T, B, -1)
        if pad is not None:
            out[pad] = 0
        return out, state

    def step(self, x_t, state=None):
        """One time step: ``x_t`` ``(B, D)`` -> output ``(B, O)`` and the next state."""
        h, state = self.core.step(x_t, state)
        return self.readout._forward(h), state

    def predict(self, x, state=None, batch_size: int = 256, *, lengths=None) -> np.ndarray:
        """Outputs for ``x`` ``(T, N, D)``, in batches of ``batch_size`` sequences;
        ``lengths`` ``(N,)`` for right-padded sequences (zero outputs past each one's end)."""
        x = as_float_array(x, self.dtype, "x", ndim=3)
        batch_size = check_int("batch_size", batch_size, 1)
        lengths = as_lengths(lengths, x.shape[0], x.shape[1])

        def rows(i):  # the state of sequences [i, i + batch_size): (h, c) or one array
            if state is None:
                return None
            if isinstance(state, np.ndarray):
                return state[:, i:i + batch_size]
            return tuple(np.asarray(s)[:, i:i + batch_size] for s in state)
        outs = [self(x[:, i:i + batch_size], rows(i),
                     lengths=None if lengths is None else lengths[i:i + batch_size])[0]
                for i in range(0, x.shape[1], batch_size)]
        return np.concatenate(outs, axis=1)


def chrono_init(lstm, max_lag: int, seed=None) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018) of an ``rlstm.LSTM``'s gate biases.

    Forget-gate biases ``log(U(1, max_lag - 1))`` and input-gate biases their negatives, so the
    memory starts with time constants up to ``max_lag`` steps: long lags are learned much
    sooner. Works in place on every layer and direction (``bias_hh`` gate parts are zeroed).
    ``lstm`` is an ``rlstm.LSTM`` or a model whose ``core`` is one (a ``SequenceModel``).
    """
    if isinstance(getattr(lstm, "core", None), LSTM):
        lstm = lstm.core
    if not isinstance(lstm, LSTM):
        raise TypeError(f"chrono_init sets an LSTM's forget and input gates; got "
                        f"{type(lstm).__name__} (a GRU's gates mean something else)")
    max_lag = check_int("max_lag", max_lag, 3)
    rng = np.random.default_rng(seed)
    H = lstm.hidden_size
    for name, b in lstm.params.items():
        if name.startswith("bias_ih"):
            bf = np.log(rng.uniform(1, max_lag - 1, H))
            b[H:2 * H] = bf
            b[:H] = -bf
        elif name.startswith("bias_hh"):
            b[:2 * H] = 0


# ---------------------------------------------------------------------------- rlstm.save/load
def _config(m: SequenceModel) -> dict:
    if m.core_type not in CORES:
        raise TypeError(f"a SequenceModel on a custom core ({m.core_type}) cannot be saved: "
                        f"rlstm.load could not rebuild its core; keep model.state_dict() "
                        f"instead, or use core='lstm' or 'gru'")
    return m.config()


def _build(c: dict, size: int) -> SequenceModel:
    registry.need_recurrent(c, int(c["input_size"]), size)
    width = int(c["hidden_size"]) * (2 if c.get("bidirectional") else 1)
    registry.need(int(c["output_size"]) * width <= size, "readout too large")
    return SequenceModel(**c)


registry.register("SequenceModel", _config, _build)
