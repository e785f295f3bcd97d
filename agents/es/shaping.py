"""Fitness shaping: how evolution strategies turn returns into weights that ignore their scale.

- :func:`centered_ranks` (Salimans et al. 2017, OpenAI-ES and PGPE): ranks scaled to
  ``[-0.5, 0.5]``;
- :func:`nes_utilities` (Wierstra et al. 2014, SNES): the NES rank utilities.
"""
from __future__ import annotations

import numpy as np

__all__ = ["centered_ranks", "nes_utilities"]


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Ranks scaled to [-0.5, 0.5] (ties get distinct ranks); the shape of ``x`` is kept.

    ``centered_ranks([1, 5, 3]) == [-0.5, 0.5, 0.0]``.
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1)
    if flat.size < 2:
        return np.zeros_like(x)
    ranks = np.empty(flat.size, dtype=np.float64)
    ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    return (ranks / (flat.size - 1) - 0.5).reshape(x.shape)


def nes_utilities(n: int) -> np.ndarray:
    """The NES rank utilities for ``n`` samples sorted best first (they sum to zero)."""
    ranks = np.arange(1, n + 1)
    u = np.maximum(0.0, np.log(n / 2 + 1) - np.log(ranks))
    return u / u.sum() - 1.0 / n
