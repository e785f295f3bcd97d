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
  ``input_lengths``), through :func:`rlstm.ctc_loss`.

Variable-length sequences: right-pad them to ``T`` steps and pass ``lengths`` ``(N,)``. The
core then masks the padding (a reverse direction starts at each sequence's own end), per-step
targets at padded steps are left out of the loss, and last-step targets are compared with
each sequence's own last step (not step ``T - 1``, which would read the padding).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Callable, Literal

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .ctc import ctc_loss
from .errors import TrainingDiverged
from .losses import cross_entropy_loss, mse_loss
from .optim import SGD, Adam, clip_grad_norm
from .sequence import SequenceModel, chrono_init
from .validation import Range, as_float_array, as_lengths, check_config, unknown_keys_error

_AtLeast1 = Annotated[int, Range(1)]
_Positive = Annotated[float, Range(0, low_open=True)]

__all__ = ["fit", "TrainConfig", "evaluate_loss",
           # defined in rlstm.sequence and rlstm.losses, kept here by their old names
           "SequenceModel", "chrono_init", "mse_loss", "cross_entropy_loss"]


# ---------------------------------------------------------------------------- training
@dataclass
class TrainConfig:
    """Settings of :func:`fit` (every keyword of ``fit`` is a field here)."""
    loss: Literal["mse", "cross_entropy", "ctc"] = "mse"
    """``"mse"``, ``"cross_entropy"`` or ``"ctc"``."""
    epochs: _AtLeast1 = 10
    """Passes over the training sequences."""
    batch_size: _AtLeast1 = 32
    """Sequences per minibatch (the B axis)."""
    lr: _Positive = 1e-3
    """Learning rate."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """``"adam"`` or ``"sgd"`` (with ``momentum``)."""
    momentum: Annotated[float, Range(0, 1, high_open=True)] = 0.9
    """SGD momentum (ignored by Adam)."""
    weight_decay: Annotated[float, Range(0)] = 0.0
    """Decoupled weight decay."""
    clip_norm: _Positive | None = 1.0
    """Clip the global gradient L2 norm to this (``None``: no clipping)."""
    tbptt: _AtLeast1 | None = None
    """Truncated BPTT: chunk length in steps, state carried (not differentiated) across
    chunks, one update per chunk. ``None``: full BPTT. Needs per-step targets."""
    shuffle: bool = True
    """Shuffle the sequences every epoch."""
    seed: Annotated[int, Range(0)] | None = None
    """Seed of the shuffling."""
    progress_bar: bool = False
    """Show a tqdm bar over the updates."""
    blank: Annotated[int, Range(0)] = 0
    """CTC blank class."""
    threads: _AtLeast1 | None = None
    """BLAS threads during training (``None``: leave as is). On a small or shared machine,
    1 is often fastest for the small matrices of one step."""

    def validate(self) -> None:
        """Check every field against its annotation, then the rules between fields."""
        check_config(self)
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
    lengths: np.ndarray | None = None  # (N,) valid steps of right-padded sequences


def _check_data(model: SequenceModel, x, y, cfg: TrainConfig, input_lengths,
                target_lengths, name: str, lengths=None) -> _Data:
    x = as_float_array(x, model.dtype, f"{name} x", ndim=3)
    T, N, D = x.shape
    if D != model.input_size:
        raise ValueError(f"{name} x must have shape (T, N, input_size={model.input_size}), "
                         f"got {x.shape}")
    if T == 0 or N == 0:
        raise ValueError(f"{name} x must hold at least one step of one sequence")
    data = _check_targets(model, x, y, cfg, input_lengths, target_lengths, name,
                          as_lengths(lengths, T, N, "lengths" if name == "training" else
                                     f"{name} lengths"))
    return data


def _check_targets(model, x, y, cfg, input_lengths, target_lengths, name, lengths) -> _Data:
    T, N, _ = x.shape
    O = model.output_size
    if cfg.loss == "mse":
        yy = as_float_array(y, model.dtype, f"{name} y")
        if yy.shape == (T, N, O):
            return _Data(x, yy, False, lengths=lengths)
        if yy.shape == (N, O):
            if cfg.tbptt is not None:
                raise ValueError("tbptt needs per-step targets (T, N, output_size)")
            return _Data(x, yy, True, lengths=lengths)
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
        return _Data(x, yy.astype(np.int64), yy.shape == (N,), lengths=lengths)
    # ctc
    if yy.ndim != 2 or yy.shape[0] != N:
        raise ValueError(f"{name} y for loss='ctc' must be padded labels (N, S) with N={N}, "
                         f"got {yy.shape}")
    if target_lengths is None:
        raise ValueError("loss='ctc' needs target_lengths (N,)")
    tl = np.asarray(target_lengths)
    if input_lengths is None:  # each sequence's own length, else all of it
        input_lengths = np.full(N, T, np.int64) if lengths is None else lengths
    il = np.asarray(input_lengths)
    if tl.shape != (N,) or il.shape != (N,) or tl.dtype.kind not in "iu" or \
            il.dtype.kind not in "iu":
        raise ValueError(f"target_lengths and input_lengths must be integer arrays of shape "
                         f"({N},)")
    return _Data(x, yy.astype(np.int64), False, il.astype(np.int64), tl.astype(np.int64),
                 lengths=lengths)


def _chunk_lengths(data: _Data, idx, t0: int, t1: int):
    """The core's ``lengths`` for steps ``[t0, t1)`` of sequences ``idx``: each sequence's
    valid steps in the chunk, at least 1 (a sequence that has already ended runs one step whose
    output the loss ignores; its state is never read again)."""
    if data.lengths is None:
        return None
    return np.clip(data.lengths[idx] - t0, 1, t1 - t0)


def _masked_mse(pred: np.ndarray, target: np.ndarray, valid: np.ndarray):
    """MSE over the valid ``(T, B)`` steps' outputs only, and its gradient (zero elsewhere)."""
    diff = (pred - target) * valid[..., None]
    n = max(int(valid.sum()) * pred.shape[-1], 1)
    return float(np.sum(diff * diff) / n), ((2.0 / n) * diff).astype(pred.dtype, copy=False)


def _loss_and_grad(model, out, data: _Data, idx, t0, t1, cfg) -> tuple[float, np.ndarray]:
    """Loss of the chunk ``[t0, t1)`` for sequences ``idx`` and d loss / d out."""
    if cfg.loss == "ctc":
        losses, dlogits = ctc_loss(out, data.y[idx], data.input_lengths[idx],
                                 data.target_lengths[idx], blank=cfg.blank)
        B = len(idx)
        return float(np.sum(losses)) / B, np.asarray(dlogits, dtype=out.dtype) / B
    if data.last_only:
        dout = np.zeros_like(out)
        # each sequence's own last step (step T - 1 without lengths)
        t = -1 if data.lengths is None else data.lengths[idx] - 1
        rows = slice(None) if data.lengths is None else np.arange(len(idx))
        if cfg.loss == "mse":
            loss, dout[t, rows] = mse_loss(out[t, rows], data.y[idx])
        else:
            loss, dout[t, rows] = cross_entropy_loss(out[t, rows], data.y[idx])
        return loss, dout
    if data.lengths is not None:  # padded steps are left out of the loss
        valid = np.arange(t0, t1)[:, None] < data.lengths[idx][None, :]
        if cfg.loss == "mse":
            return _masked_mse(out, data.y[t0:t1, idx], valid)
        return cross_entropy_loss(out, np.where(valid, data.y[t0:t1, idx], -1))
    if cfg.loss == "mse":
        return mse_loss(out, data.y[t0:t1, idx])
    return cross_entropy_loss(out, data.y[t0:t1, idx])


def evaluate_loss(model: SequenceModel, x, y, loss: str = "mse", *, lengths=None,
                  input_lengths=None, target_lengths=None, blank: int = 0,
                  batch_size: int = 256) -> float:
    """The mean loss of ``model`` on ``(x, y)`` (no gradients, whole sequences, no dropout);
    ``lengths`` ``(N,)`` for right-padded sequences, as in :func:`fit`."""
    cfg = TrainConfig(loss=loss, blank=blank)
    cfg.validate()
    data = _check_data(model, x, y, cfg, input_lengths, target_lengths, "evaluation", lengths)
    return _evaluate(model, data, cfg, batch_size)


def _evaluate(model, data: _Data, cfg: TrainConfig, batch_size: int = 256) -> float:
    N, T = data.x.shape[1], data.x.shape[0]
    # each batch's mean, weighted by its sequences (by its valid steps for per-step targets
    # with lengths, so that the result is the mean over every valid step)
    per_step = data.lengths is not None and not data.last_only and cfg.loss != "ctc"
    total = count = 0.0
    for i in range(0, N, batch_size):
        idx = np.arange(i, min(i + batch_size, N))
        out, _ = model(data.x[:, idx], lengths=_chunk_lengths(data, idx, 0, T))
        w = float(data.lengths[idx].sum()) if per_step else len(idx)
        total += _loss_and_grad(model, out, data, idx, 0, T, cfg)[0] * w
        count += w
    return total / count


def fit(model: SequenceModel, x, y, *, lengths=None, validation: tuple | None = None,
        input_lengths=None, target_lengths=None,
        callback: Callable[[int, dict], bool | None] | None = None, **kwargs) -> dict:
    """Train ``model`` on sequences ``x`` ``(T, N, D)`` with targets ``y`` (see module doc).

    ``lengths`` ``(N,)``: right-padded sequences (padded steps are out of the loss, last-step
    targets meet each sequence's own last step). Keyword arguments are the fields of
    :class:`TrainConfig` (``loss``, ``epochs``, ``batch_size``, ``lr``, ``optimizer``,
    ``clip_norm``, ``tbptt``, ``progress_bar``, ...). ``validation=(x_val, y_val)``, or
    ``(x_val, y_val, lengths_val)``, or for CTC ``(x_val, y_val, input_lengths,
    target_lengths)`` (whose ``input_lengths`` are also the core's lengths when ``lengths`` is
    given) adds ``val_loss`` per epoch. The model trains in training mode (dropout on) and is
    left in the mode it had. ``callback(epoch, history)`` runs after each epoch; returning
    ``True`` stops training. Returns the history: ``loss`` (mean training loss per epoch),
    ``val_loss``, ``grad_norm`` (mean per epoch).
    """
    if not isinstance(model, SequenceModel):
        raise TypeError(f"fit trains an rlstm.SequenceModel, got {type(model).__name__}")
    unknown = set(kwargs) - set(TrainConfig.__dataclass_fields__)
    if unknown:
        raise unknown_keys_error("fit()", unknown, TrainConfig.__dataclass_fields__)
    cfg = TrainConfig(**kwargs)
    cfg.validate()
    was_training = model.training
    model.train()
    try:
        if cfg.threads is not None:
            with threadpool_limits(limits=cfg.threads):
                return _fit(model, x, y, cfg, validation, input_lengths, target_lengths,
                            callback, lengths)
        return _fit(model, x, y, cfg, validation, input_lengths, target_lengths, callback,
                    lengths)
    finally:
        model.train(was_training)


def _fit(model, x, y, cfg, validation, input_lengths, target_lengths, callback,
         lengths) -> dict:
    data = _check_data(model, x, y, cfg, input_lengths, target_lengths, "training", lengths)
    val = None
    if validation is not None:
        n = len(validation) if isinstance(validation, (tuple, list)) else 0
        if n not in (2, 3, 4) or (n == 3 and cfg.loss == "ctc"):
            raise TypeError("validation must be a tuple (x_val, y_val) or (x_val, y_val, "
                            "lengths_val), or for CTC (x_val, y_val, input_lengths, "
                            "target_lengths)")
        v = tuple(validation)
        # (x, y, lengths, input_lengths, target_lengths)
        v = (v[0], v[1], v[2] if n == 3 else None, None, None) if n < 4 else \
            (v[0], v[1], v[2] if data.lengths is not None else None, v[2], v[3])
        val_cfg = TrainConfig(loss=cfg.loss, blank=cfg.blank)
        val = _check_data(model, v[0], v[1], val_cfg, v[3], v[4], "validation", v[2])
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
                out, state, cache = model.forward(data.x[t0:t1, idx], state,
                                                  lengths=_chunk_lengths(data, idx, t0, t1))
                loss, dout = _loss_and_grad(model, out, data, idx, t0, t1, cfg)
                if not (np.isfinite(loss) and np.isfinite(dout).all()):
                    _diverged(f"the loss became {loss}", epoch)
                model.backward(dout, cache)
                norm = (clip_grad_norm(model.flat_grads, cfg.clip_norm) if cfg.clip_norm
                        else float(np.linalg.norm(model.flat_grads)))
                if not np.isfinite(norm):
                    _diverged("the gradient became NaN or inf", epoch)
                before = model.flat_params.copy()
                opt.step()
                if not np.isfinite(model.flat_params).all():
                    model.flat_params[...] = before
                    _diverged("a parameter became NaN or inf", epoch)
                norms.append(norm)
                losses.append(loss)
                bar.update(1)
        history["loss"].append(float(np.mean(losses)))
        history["grad_norm"].append(float(np.mean(norms)))
        if val is not None:
            history["val_loss"].append(_evaluate(model, val, val_cfg))
        bar.set_postfix(loss=f"{history['loss'][-1]:.4g}")
        if callback is not None and callback(epoch, history):
            break
    bar.close()
    return history


def _diverged(what: str, epoch: int):
    raise TrainingDiverged(f"fit diverged at epoch {epoch}: {what}. The model keeps its last "
                           f"finite parameters; lower lr, or set clip_norm.")
