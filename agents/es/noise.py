"""A shared noise table: perturbations travel as integer indices, not as weight vectors.

OpenAI's evolution-strategies starter and Uber's deep GA fill one large block of Gaussian noise
once, from a fixed seed, in every worker. A perturbation of a ``dim``-parameter vector is then
the slice ``table[i:i + dim]``; only the start index ``i`` (plus a sign, a scale or a list of
indices) crosses the wire. Every worker rebuilds the same table from ``(size, seed, dtype)``, so
the table itself never travels either.
"""
from __future__ import annotations

import numpy as np

from rlstm.validation import check_dtype, check_int

__all__ = ["NoiseTable", "MAX_NOISE_TABLE"]

MAX_NOISE_TABLE = 2 ** 30
"""The largest table (4 GiB of float32): a header asking for more is refused, not built."""

_CACHE: dict[tuple[int, int, str], np.ndarray] = {}


class NoiseTable:
    """``size`` standard-normal numbers drawn from ``np.random.default_rng(seed)``.

    Tables are cached per process by ``(size, seed, dtype)``: trainers and workers that ask for
    the same table share one array (and forked workers share its pages).
    """

    def __init__(self, size: int = 2 ** 24, seed: int = 123, dtype=np.float32):
        self.size = check_int("noise table size", size, 1)
        if self.size > MAX_NOISE_TABLE:
            raise ValueError(f"noise table size must be <= {MAX_NOISE_TABLE} (4 GiB), got "
                             f"{size}")
        self.seed = check_int("noise table seed", seed, 0)
        self.dtype = check_dtype(dtype)
        key = (self.size, self.seed, self.dtype.str)
        if key not in _CACHE:
            rng = np.random.default_rng(self.seed)
            table = rng.standard_normal(self.size, dtype=self.dtype)
            table.flags.writeable = False
            _CACHE[key] = table
        self.table = _CACHE[key]

    def spec(self) -> dict:
        """What a worker needs to rebuild the same table: ``NoiseTable(**spec)``."""
        return {"size": self.size, "seed": self.seed, "dtype": self.dtype.str}

    def check_dim(self, dim: int) -> int:
        dim = check_int("dim", dim, 1)
        if dim > self.size:
            raise ValueError(f"the noise table holds {self.size} numbers, fewer than the {dim} "
                             f"parameters to perturb; pass noise_table_size >= {dim} (ideally "
                             f">= 100x more)")
        return dim

    def sample_index(self, rng: np.random.Generator, dim: int, n: int | None = None):
        """Start indices uniform on ``[0, size - dim]``: every slice lies inside the table."""
        dim = self.check_dim(dim)
        return rng.integers(0, self.size - dim + 1, size=n, dtype=np.int64)

    def get(self, index: int, dim: int) -> np.ndarray:
        """The read-only perturbation ``table[index:index + dim]`` (a view, no copy)."""
        index = int(index)
        if not 0 <= index <= self.size - dim:
            raise ValueError(f"noise index {index} out of range [0, {self.size - dim}] for "
                             f"dim={dim}")
        return self.table[index:index + dim]

    def batch(self, indices, dim: int) -> np.ndarray:
        """Stack the perturbations of several indices: shape ``(len(indices), dim)``."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() > self.size - dim):
            raise ValueError(f"noise indices must lie in [0, {self.size - dim}] for dim={dim}")
        # rows[k] = table[idx[k] + arange(dim)]
        return self.table[idx[:, None] + np.arange(dim)[None, :]]

    def weighted_sum(self, indices, weights, dim: int) -> np.ndarray:
        """``sum_k weights[k] * table[indices[k]:indices[k] + dim]`` in float64.

        The ES gradient estimate; computed in blocks so memory stays ``O(block * dim)``.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if idx.shape != w.shape:
            raise ValueError(f"indices and weights must have the same length, got {idx.size} "
                             f"and {w.size}")
        out = np.zeros(dim, dtype=np.float64)
        for s in range(0, idx.size, 256):
            out += w[s:s + 256] @ self.batch(idx[s:s + 256], dim).astype(np.float64)
        return out
