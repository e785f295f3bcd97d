"""``rlstm.ctc_loss``: connectionist temporal classification, loss and gradient in one call."""
from __future__ import annotations

import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _kernels
from .validation import as_float_array, check_choice, check_int

__all__ = ["ctc_loss"]

REDUCTIONS = ("none", "sum", "mean")
_WORK_PER_THREAD = 50_000     # alpha-beta cells (T * (2S + 1) summed over sequences)
_pool: ThreadPoolExecutor | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """The shared thread pool; a forked child (whose copy has no threads) makes its own."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                       thread_name_prefix="rlstm-ctc")
            _pool_pid = os.getpid()
        return _pool


def _as_int_vector(name: str, value, B: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers (one per sequence, shape (B,) = ({B},)), "
                        f"got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"{name} must have shape (B,) = ({B},), got {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.int64)


def ctc_loss(logits, targets, input_lengths, target_lengths, blank: int = 0,
             zero_infinity: bool = False, reduction: str = "none", num_threads=None):
    """CTC negative log-likelihood and its gradient with respect to ``logits``.

    Parameters
    ----------
    logits : (T, B, C) unnormalised scores (the log-softmax is taken inside). float32 and
        float64 are kept; other real dtypes are computed in float64.
    targets : concatenated labels ``(sum(target_lengths),)`` or padded ``(B, S)``, as in
        ``torch.nn.functional.ctc_loss``. Labels are in ``[0, C)`` and never ``blank``.
    input_lengths : (B,) ints in ``[0, T]``: the steps of each sequence that are used.
    target_lengths : (B,) ints >= 0 (``<= S`` for padded targets). Zero-length targets are fine.
    blank : index of the blank label.
    zero_infinity : an impossible alignment (target too long for its input) gives loss ``inf``
        and a zero gradient; with ``zero_infinity=True`` the loss is 0 instead. Never NaN.
    reduction : ``"none"`` (per-sequence losses, shape (B,)), ``"sum"``, or ``"mean"`` (each
        loss divided by its target length, then averaged over the batch, as PyTorch does).
    num_threads : threads that share the batch (the kernel releases the GIL). ``None``: up to
        ``os.cpu_count()``, fewer for small problems; pass 1 inside single-threaded workers.

    Returns
    -------
    losses, dlogits : the loss(es) and d(reduced loss)/d(logits), shape (T, B, C), zero beyond
        each sequence's input length.
    """
    x = np.asarray(logits) if not isinstance(logits, np.ndarray) else logits
    dt = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    x = as_float_array(logits, dt, "logits", ndim=3)
    T, B, C = x.shape
    if C < 1:
        raise ValueError(f"logits must have at least one class (the blank), got shape {x.shape}")
    if isinstance(blank, bool) or not isinstance(blank, numbers.Integral):
        raise TypeError(f"blank must be an int, got {type(blank).__name__}")
    if not 0 <= blank < C:
        raise ValueError(f"blank must be a class index in [0, C={C}), got {blank}")
    if not isinstance(zero_infinity, (bool, np.bool_)):
        raise TypeError(f"zero_infinity must be a bool, got {zero_infinity!r}")
    check_choice("reduction", reduction, REDUCTIONS)
    if num_threads is not None:
        num_threads = check_int("num_threads", num_threads, 1)
    in_len = _as_int_vector("input_lengths", input_lengths, B)
    tg_len = _as_int_vector("target_lengths", target_lengths, B)
    if in_len.size and (in_len.min() < 0 or in_len.max() > T):
        raise ValueError(f"input_lengths must be in [0, T={T}], got {in_len.tolist()}")
    if tg_len.size and tg_len.min() < 0:
        raise ValueError(f"target_lengths must be >= 0, got {tg_len.tolist()}")

    tg = np.asarray(targets)
    if tg.dtype.kind not in "iu":
        raise TypeError(f"targets must be integer labels, got dtype {tg.dtype}")
    if tg.ndim == 1:
        if tg.size != tg_len.sum():
            raise ValueError(f"concatenated targets must have sum(target_lengths) = "
                             f"{int(tg_len.sum())} labels, got {tg.size}")
        offsets = np.concatenate([[0], np.cumsum(tg_len)[:-1]]).astype(np.int64)
        used = tg
    elif tg.ndim == 2:
        if tg.shape[0] != B:
            raise ValueError(f"padded targets must have shape (B={B}, S), got {tg.shape}")
        if tg_len.size and tg_len.max() > tg.shape[1]:
            raise ValueError(f"target_lengths must be <= S={tg.shape[1]} for padded targets, "
                             f"got {tg_len.tolist()}")
        offsets = np.arange(B, dtype=np.int64) * tg.shape[1]
        used = tg[np.arange(tg.shape[1])[None, :] < tg_len[:, None]]
    else:
        raise ValueError(f"targets must be 1-D (concatenated) or 2-D (B, S) (padded), got "
                         f"shape {tg.shape}")
    if used.size and (used.min() < 0 or used.max() >= C or (used == blank).any()):
        raise ValueError(f"target labels must be in [0, C={C}) and differ from blank={blank}")
    # One spare element: a zero-length target may start one past the end (never read there).
    flat_tg = np.zeros(tg.size + 1, dtype=np.int64)
    flat_tg[:-1] = tg.reshape(-1)

    losses = np.empty(B, dtype=dt)
    dlogits = np.empty((T, B, C), dtype=dt)
    args = (x, flat_tg, offsets, in_len, tg_len, int(blank), bool(zero_infinity), losses,
            dlogits)
    work = int(np.minimum(in_len, T).sum()) * (2 * int(tg_len.max(initial=0)) + 1)
    n = min(num_threads or (os.cpu_count() or 1), B, max(1, work // _WORK_PER_THREAD))
    if n <= 1:
        _kernels.ctc_forward_backward(*args)
    else:  # contiguous ranges of sequences, one per thread; results land in place
        bounds = np.linspace(0, B, n + 1).astype(int)
        jobs = [_executor().submit(_kernels.ctc_forward_backward, *args, int(lo), int(hi))
                for lo, hi in zip(bounds[:-1], bounds[1:])]
        for job in jobs:
            job.result()
    if reduction == "none":
        return losses, dlogits
    if reduction == "sum":
        return losses.sum(dtype=dt), dlogits
    scale = (1.0 / (np.maximum(tg_len, 1) * max(B, 1))).astype(dt)
    dlogits *= scale[None, :, None]
    return (losses * scale).sum(dtype=dt), dlogits
