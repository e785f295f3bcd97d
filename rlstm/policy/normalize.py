"""Observation normalisation by running statistics: the one normaliser every trainer uses.

``normalize(x) = clip((x - mean) / sqrt(var + epsilon), -clip, clip)``, computed in float64 and
returned in the policy's dtype. It applies to float ``Box`` observations only (an image or a
discrete observation is never normalised). The statistics are saved with the model, so a
loaded policy, an evolution worker and an exported graph all see the same numbers.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

__all__ = ["RunningMeanStd", "ObsNormalizer", "normalizes"]


class RunningMeanStd:
    """Running mean and variance (Chan et al.'s parallel algorithm)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4):
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, x: np.ndarray) -> None:
        """Fold in a batch ``x`` of shape ``(N, *shape)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            return
        self.update_from_moments(x.mean(axis=0), x.var(axis=0), x.shape[0])

    def update_from_moments(self, mean, var, count) -> None:
        """Fold in the mean and (population) variance of ``count`` more samples."""
        delta = mean - self.mean
        total = self.count + count
        self.mean = self.mean + delta * count / total
        m2 = self.var * self.count + var * count + delta ** 2 * self.count * count / total
        self.var = m2 / total
        self.count = total

    def since(self, earlier: dict) -> tuple[np.ndarray, np.ndarray, float]:
        """``(mean, var, count)`` of the samples folded in since ``earlier`` (a
        :meth:`state_dict` of this object): what parallel workers, each starting from the
        same statistics, send back to be merged with :meth:`update_from_moments`."""
        c0, m0, v0 = float(earlier["count"]), earlier["mean"], earlier["var"]
        n = self.count - c0
        if n <= 0:
            return np.zeros_like(self.mean), np.zeros_like(self.var), 0.0
        mean = (self.mean * self.count - m0 * c0) / n
        m2 = self.var * self.count - v0 * c0 - (mean - m0) ** 2 * c0 * n / self.count
        return mean, np.maximum(m2 / n, 0.0), n

    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {prefix + "mean": self.mean.copy(), prefix + "var": self.var.copy(),
                prefix + "count": np.asarray(self.count)}

    def load_state_dict(self, d, prefix: str = "") -> None:
        """Load statistics saved by :meth:`state_dict`; a ``ValueError`` names a missing entry,
        a shape that differs, NaN or inf, a negative variance or a count that is not > 0."""
        try:
            mean, var = np.asarray(d[prefix + "mean"]), np.asarray(d[prefix + "var"])
            count = np.asarray(d[prefix + "count"])
        except KeyError as e:
            raise ValueError(f"normalisation statistics are missing the entry {e}") from None
        if mean.shape != self.mean.shape or var.shape != self.var.shape or count.shape != ():
            raise ValueError(f"normalisation statistics have shapes {mean.shape}, {var.shape}, "
                             f"{count.shape}; expected {self.mean.shape}, {self.var.shape}, ()")
        for name, a in (("mean", mean), ("var", var), ("count", count)):
            if a.dtype.kind not in "fiu" or not np.isfinite(a).all():
                raise ValueError(f"normalisation statistic {prefix}{name} must be finite "
                                 f"numbers")
        if (var < 0).any() or not float(count) > 0:
            raise ValueError("normalisation statistics are impossible: a negative variance or "
                             "a count that is not > 0")
        self.mean, self.var = mean.astype(np.float64), var.astype(np.float64)
        self.count = float(count)


def normalizes(space) -> bool:
    """Whether observations of ``space`` are normalised: a ``Box`` of a float dtype."""
    return isinstance(space, spaces.Box) and space.dtype.kind == "f"


class ObsNormalizer:
    """Running statistics of one float ``Box`` observation space, and the normalisation.

    Args:
        shape: the observation shape.
        clip: normalised values are clipped to ``[-clip, clip]``.
        epsilon: added to the variance under the square root.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 10.0, epsilon: float = 1e-8):
        if not float(clip) > 0 or not float(epsilon) > 0:
            raise ValueError(f"clip and epsilon must be > 0, got {clip!r} and {epsilon!r}")
        self.rms = RunningMeanStd(tuple(shape))
        self.clip, self.epsilon = float(clip), float(epsilon)

    @property
    def mean(self) -> np.ndarray:
        return self.rms.mean

    @property
    def var(self) -> np.ndarray:
        return self.rms.var

    @property
    def std(self) -> np.ndarray:
        """``sqrt(var + epsilon)``: what observations are divided by."""
        return np.sqrt(self.rms.var + self.epsilon)

    def update(self, obs) -> None:
        """Fold a batch ``(N, *shape)`` into the statistics."""
        self.rms.update(obs)

    def update_from_moments(self, mean, var, count) -> None:
        self.rms.update_from_moments(mean, var, count)

    def since(self, earlier: dict):
        """See :meth:`RunningMeanStd.since`."""
        return self.rms.since(earlier)

    def normalize(self, obs, dtype=np.float64) -> np.ndarray:
        """``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`` as ``dtype``."""
        x = (np.asarray(obs, dtype=np.float64) - self.rms.mean) / self.std
        return np.clip(x, -self.clip, self.clip, out=x).astype(dtype, copy=False)

    def config(self) -> dict:
        """What rebuilds an empty normaliser of this kind: shape, clip and epsilon."""
        return {"shape": list(self.rms.mean.shape), "clip": self.clip, "epsilon": self.epsilon}

    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        return self.rms.state_dict(prefix)

    def load_state_dict(self, d, prefix: str = "") -> None:
        self.rms.load_state_dict(d, prefix)
