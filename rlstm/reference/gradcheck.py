"""Central-difference gradients, the independent check of every backward pass in the tests."""
from __future__ import annotations

import numpy as np

__all__ = ["central_difference"]


def central_difference(f, arr: np.ndarray, eps: float = 1e-6, indices=None) -> np.ndarray:
    """d f() / d arr by central differences, perturbing ``arr`` in place (and restoring it).

    ``f`` takes no argument and returns a float computed from ``arr``'s current values. With
    ``indices`` (flat positions), only those entries are computed; the result then has their
    length, else ``arr``'s shape.
    """
    flat = arr.reshape(-1)
    if not np.shares_memory(flat, arr):
        raise ValueError("arr must be contiguous so that it can be perturbed in place")
    idx = range(arr.size) if indices is None else indices
    g = np.zeros(len(idx))
    for n, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        g[n] = (fp - fm) / (2 * eps)
    return g.reshape(arr.shape) if indices is None else g
