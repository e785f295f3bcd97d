"""Losses for sequence outputs, each with its gradient: mean squared error and softmax
cross-entropy (CTC is :func:`rlstm.ctc_loss`)."""
from __future__ import annotations

import numpy as np

__all__ = ["mse_loss", "cross_entropy_loss"]


def mse_loss(pred: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean squared error over all elements, and its gradient with respect to ``pred`` (in
    ``pred``'s dtype). ``pred`` and ``target`` must have the same shape."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"mse_loss needs pred and target of one shape, got {pred.shape} and "
                         f"{target.shape}")
    diff = pred - target
    n = max(diff.size, 1)
    grad = (2.0 / n) * diff
    return float(np.sum(diff * diff) / n), grad.astype(pred.dtype, copy=False) \
        if pred.dtype.kind == "f" else grad


def cross_entropy_loss(logits: np.ndarray, labels: np.ndarray, ignore_index: int = -1
                       ) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy over the rows whose label is not ``ignore_index``.

    ``logits`` ``(..., C)``, ``labels`` ``(...)`` integers in ``[0, C)`` (or ``ignore_index``);
    returns the loss and d loss/d logits.
    """
    C = logits.shape[-1]
    z = logits.reshape(-1, C)
    lab = np.asarray(labels).reshape(-1)
    if lab.size != z.shape[0]:
        raise ValueError(f"cross_entropy_loss needs one label per row of logits: labels "
                         f"{np.shape(labels)} for logits {logits.shape}")
    valid = lab != ignore_index
    if lab.size and ((lab[valid] < 0).any() or (lab[valid] >= C).any()):
        raise ValueError(f"labels must be in [0, {C}) or ignore_index={ignore_index}, got "
                         f"values from {lab.min()} to {lab.max()}")
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
