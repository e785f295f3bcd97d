"""Supervised sequence training: backpropagation through time, as the LSTM was first trained.

``SequenceModel`` is a recurrent core (``rlstm.LSTM`` by default) with a linear readout at every
step; :func:`fit` trains it with MSE, cross-entropy or CTC, minibatches, Adam or SGD, gradient
clipping, truncated BPTT (state carried across chunks) and a tqdm progress bar::

    model = rlstm.SequenceModel(input_size=2, hidden_size=64, output_size=1, seed=0)
    history = rlstm.fit(model, x, y, loss="mse", epochs=20, batch_size=32)

Data are time-major: ``x`` is ``(T, N, input_size)`` for ``N`` sequences. Targets:

- ``loss="mse"``: ``(T, N, output_size)`` per step, or ``(N, output_size)`` for the last step only;
- ``loss="cross_entropy"``: integer classes ``(T, N)`` per step (``-1`` = no target at that
  step), or ``(N,)`` for the last step only;
- ``loss="ctc"``: padded labels ``(N, S)`` with ``target_lengths`` ``(N,)`` (and optionally
  ``input_lengths``); needs ``rlstm.ctc_loss``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ._validation import as_float_array, check_choice, check_int
from .layers import Linear, adopt, param_spec
from .module import Module
from .optim import SGD, Adam, clip_grad_norm

LOSSES = ("mse", "cross_entropy", "ctc")
OPTIMIZERS = ("adam", "sgd")

__all__ = ["SequenceModel", "fit", "mse_loss", "cross_entropy_loss", "TrainConfig",
           "chrono_init", "evaluate_loss"]


# ---------------------------------------------------------------------------- losses
def mse_loss(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements, and its gradient with respect to ``pred``."""
    diff = pred - target
    n = max(diff.size, 1)
    return float(np.sum(diff * diff) / n), (2.0 / n) * diff


def cross_entropy_loss(logits: np.ndarray, labels: np.ndarray, ignore_index: int = -1
                       ) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy over the rows whose label is not ``ignore_index``.

    ``logits`` ``(..., C)``, ``labels`` ``(...)`` integers; returns the loss and d loss/d logits.
    """
    C = logits.shape[-1]
    z = logits.reshape(-1, C)
    lab = labels.reshape(-1)
    valid = lab != ignore_index
    n = max(int(valid.sum()), 1)
    zm = z - z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(zm).sum(axis=1, keepdims=True))
    logp = zm - lse
    safe = np.where(valid, lab, 0)
    rows = np.arange(z.shape[0])
    loss = -float(np.sum(np.where(valid, logp[rows, safe], 0.0))) / n
    grad = np.exp(logp)
    grad[rows, safe] -= 1
    grad *= (valid / n)[:, None]
    return loss, grad.reshape(logits.shape).astype(logits.dtype, copy=False)


def _ctc():
    import rlstm
    fn = getattr(rlstm, "ctc_loss", None)
    if fn is None:
        raise ValueError("loss='ctc' needs rlstm.ctc_loss, which this version of rlstm does not "
                         "have yet; use loss='mse' or 'cross_entropy'")
    return fn


# ---------------------------------------------------------------------------- model
class SequenceModel(Module):
    """A recurrent core with a linear readout at every step: ``(T, B, D) -> (T, B, O)``.

    Parameters: ``core.<layer names>`` (e.g. ``core.weight_ih_l0``) then ``readout.weight``
    ``(O, H * directions)`` and ``readout.bias`` ``(O,)``, all views into ``flat_params``.
    ``core`` is ``"lstm"``, ``"gru"`` or an rlstm recurrent layer class; ``core_kwargs`` go to
    it (e.g. ``{"variant": "peephole"}``).
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 num_layers: int = 1, *, core="lstm", bidirectional: bool = False,
                 core_kwargs: dict | None = None, dtype=np.float32, seed=None):
        from .policy.policy import core_class, core_name
        self.input_size = check_int("input_size", input_size, 1)
        self.hidden_size = check_int("hidden_size", hidden_size, 1)
        self.output_size = check_int("output_size", output_size, 1)
        self.num_layers = check_int("num_layers", num_layers, 1)
        self.bidirectional = bool(bidirectional)
        self.core_kwargs = dict(core_kwargs or {})
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

    def forward(self, x, state=None, resets=None):
        """``out (T, B, O)``, final state, cache (for :meth:`backward`)."""
        h, state, core_cache = self.core.forward(x, state, resets)
        T, B, W = h.shape
        hf = h.reshape(T * B, W)
        out = self.readout._forward(hf).reshape(T, B, self.output_size)
        return out, state, (core_cache, hf, T, B)

    def backward(self, dout, cache, dstate=None):
        """Add parameter gradients for ``dout`` (T, B, O); returns ``dx, dstate0``."""
        core_cache, hf, T, B = cache
        dout = as_float_array(dout, self.dtype, "dout", ndim=3)
        if dout.shape != (T, B, self.output_size):
            raise ValueError(f"dout must have shape {(T, B, self.output_size)}, got {dout.shape}")
        dh = self.readout.backward(dout.reshape(T * B, -1), hf)
        return self.core.backward(dh.reshape(T, B, -1), core_cache, dstate)

    def __call__(self, x, state=None, resets=None):
        """Inference: ``out, state`` (no cache kept)."""
        h, state = self.core(x, state, resets)
        T, B, W = h.shape
        return self.readout._forward(h.reshape(T * B, W)).reshape(T, B, -1), state

    def step(self, x_t, state=None):
        """One time step: ``x_t`` ``(B, D)`` -> output ``(B, O)`` and the next state."""
        h, state = self.core.step(x_t, state)
        return self.readout._forward(h), state

    def predict(self, x, state=None, batch_size: int = 256) -> np.ndarray:
        """Outputs for ``x`` ``(T, N, D)``, in batches of ``batch_size`` sequences."""
        x = as_float_array(x, self.dtype, "x", ndim=3)
        outs = [self(x[:, i:i + batch_size], state if state is None else
                     tuple(s[:, i:i + batch_size] for s in state))[0]
                for i in range(0, x.shape[1], batch_size)]
        return np.concatenate(outs, axis=1)


def chrono_init(lstm, max_lag: int, seed=None) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018) of an ``rlstm.LSTM``'s gate biases.

    Forget-gate biases ``log(U(1, max_lag - 1))`` and input-gate biases their negatives, so the
    memory starts with time constants up to ``max_lag`` steps: long lags are learned much
    sooner. Works in place on every layer and direction (``bias_hh`` gate parts are zeroed).
    """
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


# ---------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    """Settings of :func:`fit` (every keyword of ``fit`` is a field here)."""
    loss: str = "mse"
    """``"mse"``, ``"cross_entropy"`` or ``"ctc"``."""
    epochs: int = 10
    """Passes over the training sequences."""
    batch_size: int = 32
    """Sequences per minibatch (the B axis)."""
    lr: float = 1e-3
    """Learning rate."""
    optimizer: str = "adam"
    """``"adam"`` or ``"sgd"`` (with ``momentum``)."""
    momentum: float = 0.9
    """SGD momentum (ignored by Adam)."""
    weight_decay: float = 0.0
    """Decoupled weight decay."""
    clip_norm: float | None = 1.0
    """Clip the global gradient L2 norm to this (``None``: no clipping)."""
    tbptt: int | None = None
    """Truncated BPTT: chunk length in steps, state carried (not differentiated) across
    chunks, one update per chunk. ``None``: full BPTT. Needs per-step targets."""
    shuffle: bool = True
    """Shuffle the sequences every epoch."""
    seed: int | None = None
    """Seed of the shuffling."""
    progress_bar: bool = False
    """Show a tqdm bar over the updates."""
    blank: int = 0
    """CTC blank class."""
    threads: int | None = None
    """BLAS threads during training (``None``: leave as is). On a small or shared machine,
    1 is often fastest for the small matrices of one step."""

    def validate(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        if self.tbptt is not None:
            check_int("tbptt", self.tbptt, 1)
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm!r}")
        if self.tbptt is not None and self.loss == "ctc":
            raise ValueError("tbptt cannot be used with loss='ctc' (the CTC alignment spans the "
                             "whole sequence); set tbptt=None")


@dataclass
class _Data:
    x: np.ndarray
    y: np.ndarray
    last_only: bool
    input_lengths: np.ndarray | None = None
    target_lengths: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _check_data(model: SequenceModel, x, y, cfg: TrainConfig, input_lengths,
                target_lengths, name: str) -> _Data:
    x = as_float_array(x, model.dtype, f"{name} x", ndim=3)
    T, N, D = x.shape
    if D != model.input_size:
        raise ValueError(f"{name} x must have shape (T, N, input_size={model.input_size}), "
                         f"got {x.shape}")
    if T == 0 or N == 0:
        raise ValueError(f"{name} x must hold at least one step of one sequence")
    O = model.output_size
    if cfg.loss == "mse":
        yy = as_float_array(y, model.dtype, f"{name} y")
        if yy.shape == (T, N, O):
            return _Data(x, yy, False)
        if yy.shape == (N, O):
            if cfg.tbptt is not None:
                raise ValueError("tbptt needs per-step targets (T, N, output_size)")
            return _Data(x, yy, True)
        raise ValueError(f"{name} y for loss='mse' must have shape (T, N, O) = {(T, N, O)} or "
                         f"(N, O) = {(N, O)} for last-step targets, got {yy.shape}")
    yy = np.asarray(y)
    if yy.dtype.kind not in "iu":
        raise TypeError(f"{name} y for loss={cfg.loss!r} must hold integer class labels, got "
                        f"dtype {yy.dtype}")
    if cfg.loss == "cross_entropy":
        if yy.shape not in ((T, N), (N,)):
            raise ValueError(f"{name} y for loss='cross_entropy' must have shape (T, N) = "
                             f"{(T, N)} or (N,) for last-step targets, got {yy.shape}")
        if yy.size and (yy.max() >= O or yy.min() < -1):
            raise ValueError(f"{name} y labels must be in [0, {O}) or -1 (ignored)")
        if yy.shape == (N,) and cfg.tbptt is not None:
            raise ValueError("tbptt needs per-step targets (T, N)")
        return _Data(x, yy.astype(np.int64), yy.shape == (N,))
    # ctc
    _ctc()
    if yy.ndim != 2 or yy.shape[0] != N:
        raise ValueError(f"{name} y for loss='ctc' must be padded labels (N, S) with N={N}, "
                         f"got {yy.shape}")
    if target_lengths is None:
        raise ValueError("loss='ctc' needs target_lengths (N,)")
    tl = np.asarray(target_lengths)
    il = np.full(N, T, np.int64) if input_lengths is None else np.asarray(input_lengths)
    if tl.shape != (N,) or il.shape != (N,) or tl.dtype.kind not in "iu" or \
            il.dtype.kind not in "iu":
        raise ValueError(f"target_lengths and input_lengths must be integer arrays of shape "
                         f"({N},)")
    return _Data(x, yy.astype(np.int64), False, il.astype(np.int64), tl.astype(np.int64))


def _loss_and_grad(model, out, data: _Data, idx, t0, t1, cfg) -> tuple[float, np.ndarray]:
    """Loss of the chunk ``[t0, t1)`` for sequences ``idx`` and d loss / d out."""
    if cfg.loss == "ctc":
        losses, dlogits = _ctc()(out, data.y[idx], data.input_lengths[idx],
                                 data.target_lengths[idx], blank=cfg.blank)
        B = len(idx)
        return float(np.sum(losses)) / B, np.asarray(dlogits, dtype=out.dtype) / B
    if data.last_only:
        dout = np.zeros_like(out)
        if cfg.loss == "mse":
            loss, dout[-1] = mse_loss(out[-1], data.y[idx])
        else:
            loss, dout[-1] = cross_entropy_loss(out[-1], data.y[idx])
        return loss, dout
    if cfg.loss == "mse":
        return mse_loss(out, data.y[t0:t1, idx])
    return cross_entropy_loss(out, data.y[t0:t1, idx])


def evaluate_loss(model: SequenceModel, x, y, loss: str = "mse", *, input_lengths=None,
                  target_lengths=None, blank: int = 0, batch_size: int = 256) -> float:
    """The mean loss of ``model`` on ``(x, y)`` (no gradients, whole sequences)."""
    cfg = TrainConfig(loss=loss, blank=blank)
    cfg.validate()
    data = _check_data(model, x, y, cfg, input_lengths, target_lengths, "evaluation")
    N = data.x.shape[1]
    total = 0.0
    for i in range(0, N, batch_size):
        idx = np.arange(i, min(i + batch_size, N))
        out, _ = model(data.x[:, idx])
        total += _loss_and_grad(model, out, data, idx, 0, data.x.shape[0], cfg)[0] * len(idx)
    return total / N


def fit(model: SequenceModel, x, y, *, validation: tuple | None = None, input_lengths=None,
        target_lengths=None, callback: Callable[[int, dict], bool | None] | None = None,
        **kwargs) -> dict:
    """Train ``model`` on sequences ``x`` ``(T, N, D)`` with targets ``y`` (see module doc).

    Keyword arguments are the fields of :class:`TrainConfig` (``loss``, ``epochs``,
    ``batch_size``, ``lr``, ``optimizer``, ``clip_norm``, ``tbptt``, ``progress_bar``, ...).
    ``validation=(x_val, y_val)`` (for CTC ``(x_val, y_val, input_lengths, target_lengths)``)
    adds ``val_loss`` per epoch. ``callback(epoch, history)``
    runs after each epoch; returning ``True`` stops training. Returns the history: ``loss``
    (mean training loss per epoch), ``val_loss``, ``grad_norm`` (mean per epoch).
    """
    if not isinstance(model, SequenceModel):
        raise TypeError(f"fit trains an rlstm.SequenceModel, got {type(model).__name__}")
    unknown = set(kwargs) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown fit() arguments {sorted(unknown)}; valid ones are "
                        f"{sorted(TrainConfig.__dataclass_fields__)}")
    cfg = TrainConfig(**kwargs)
    cfg.validate()
    if cfg.threads is not None:
        check_int("threads", cfg.threads, 1)
        with threadpool_limits(limits=cfg.threads):
            return _fit(model, x, y, cfg, validation, input_lengths, target_lengths, callback)
    return _fit(model, x, y, cfg, validation, input_lengths, target_lengths, callback)


def _fit(model, x, y, cfg, validation, input_lengths, target_lengths, callback) -> dict:
    data = _check_data(model, x, y, cfg, input_lengths, target_lengths, "training")
    val = None
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) not in (2, 4):
            raise TypeError("validation must be a tuple (x_val, y_val), or for CTC (x_val, "
                            "y_val, input_lengths, target_lengths)")
        val = tuple(validation) + (None, None) * (len(validation) == 2)
    if cfg.optimizer == "adam":
        opt = Adam(model, lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = SGD(model, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    T, N, _ = data.x.shape
    chunk = cfg.tbptt or T
    n_batches = -(-N // cfg.batch_size)
    n_chunks = -(-T // chunk)
    rng = np.random.default_rng(cfg.seed)
    history = {"loss": [], "val_loss": [], "grad_norm": []}
    bar = tqdm(total=cfg.epochs * n_batches * n_chunks, disable=not cfg.progress_bar,
               desc="fit", unit="update")
    for epoch in range(cfg.epochs):
        order = rng.permutation(N) if cfg.shuffle else np.arange(N)
        losses, norms = [], []
        for b in range(n_batches):
            idx = np.sort(order[b * cfg.batch_size:(b + 1) * cfg.batch_size])
            state = None
            for t0 in range(0, T, chunk):
                t1 = min(t0 + chunk, T)
                model.zero_grad()
                out, state, cache = model.forward(data.x[t0:t1, idx], state)
                loss, dout = _loss_and_grad(model, out, data, idx, t0, t1, cfg)
                model.backward(dout, cache)
                if not np.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss} at epoch {epoch}; lower lr "
                                             f"or set clip_norm")
                norms.append(clip_grad_norm(model.flat_grads, cfg.clip_norm)
                             if cfg.clip_norm else float(np.linalg.norm(model.flat_grads)))
                opt.step()
                losses.append(loss)
                bar.update(1)
        history["loss"].append(float(np.mean(losses)))
        history["grad_norm"].append(float(np.mean(norms)))
        if val is not None:
            history["val_loss"].append(evaluate_loss(
                model, val[0], val[1], cfg.loss, input_lengths=val[2], target_lengths=val[3],
                blank=cfg.blank))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4g}")
        if callback is not None and callback(epoch, history):
            break
    bar.close()
    return history
