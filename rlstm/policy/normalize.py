"""Observation normalisation by running statistics: the one normaliser every trainer uses.

``normalize(x) = clip((x - mean) / sqrt(var + epsilon), -clip, clip)``, computed in float64 and
returned in the policy's dtype. It applies to float ``Box`` observations and to every float
``Box`` part of a ``Dict``/``Tuple`` observation (an image or a discrete part is never
normalised). The statistics are saved with the model, so a
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


def _float_parts(space) -> list[tuple[tuple, tuple[int, ...]]]:
    """``[(path, shape), ...]`` of the float ``Box`` parts of a Dict/Tuple observation, in
    encoding order (the top-level ``action_mask`` left out)."""
    from .spaces import leaf_paths
    return [(path, tuple(sub.shape)) for path, sub in leaf_paths(space)
            if isinstance(sub, spaces.Box) and sub.dtype.kind == "f"]


def normalizes(space) -> bool:
    """Whether observations of ``space`` are normalised: a ``Box`` of a float dtype, or a
    ``Dict``/``Tuple`` with at least one float ``Box`` part."""
    if isinstance(space, spaces.Box):
        return space.dtype.kind == "f"
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        return bool(_float_parts(space))
    return False


def _get(obs, path: tuple):
    for key in path:
        obs = obs[key]
    return obs


def _replace(obs, path: tuple, value):
    """``obs`` with the leaf at ``path`` replaced (containers copied along the path only)."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(obs, dict):
        out = dict(obs)
        out[key] = _replace(obs[key], rest, value)
        return out
    out = list(obs)
    out[key] = _replace(obs[key], rest, value)
    return tuple(out) if isinstance(obs, tuple) else out


class ObsNormalizer:
    """Running statistics of the float ``Box`` parts of an observation, and the normalisation.

    Args:
        shape: the observation shape of a ``Box`` observation space, or the space itself:
            a ``Box``, or a ``Dict``/``Tuple`` whose float ``Box`` parts are normalised
            (other parts pass through unchanged). The statistics of a ``Dict``/``Tuple`` are
            one flat vector over those parts, in encoding order.
        clip: normalised values are clipped to ``[-clip, clip]``.
        epsilon: added to the variance under the square root.
    """

    def __init__(self, shape, clip: float = 10.0, epsilon: float = 1e-8):
        if not float(clip) > 0 or not float(epsilon) > 0:
            raise ValueError(f"clip and epsilon must be > 0, got {clip!r} and {epsilon!r}")
        self.parts = None  # None: the observation is one array of ``shape``
        if isinstance(shape, spaces.Box):
            shape = shape.shape
        elif isinstance(shape, (spaces.Dict, spaces.Tuple)):
            self.parts = []
            offset = 0
            for path, leaf_shape in _float_parts(shape):
                size = int(np.prod(leaf_shape))
                self.parts.append((path, leaf_shape, offset, offset + size))
                offset += size
            if not self.parts:
                raise ValueError(f"{shape} has no float Box part to normalise")
            shape = (offset,)
        elif isinstance(shape, spaces.Space):
            raise ValueError(f"{shape} has no float Box part to normalise")
        self.rms = RunningMeanStd(tuple(shape))
        self.clip, self.epsilon = float(clip), float(epsilon)

    @classmethod
    def for_space(cls, space, clip: float = 10.0, epsilon: float = 1e-8) -> "ObsNormalizer":
        """The normaliser of ``space``'s float parts (see the class)."""
        return cls(space, clip, epsilon)

    @property
    def size(self) -> int:
        """Numbers per observation the statistics cover."""
        return int(self.rms.mean.size)

    def gather(self, obs) -> np.ndarray:
        """The normalised numbers of a batch as one float64 array ``(N, size)``."""
        if self.parts is None:
            x = np.asarray(obs, dtype=np.float64)
            return x.reshape(-1, self.size)
        cols = [np.asarray(_get(obs, path), dtype=np.float64).reshape(-1, b - a)
                for path, _, a, b in self.parts]
        return np.concatenate(cols, axis=1)

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
        """Fold a batch into the statistics: ``(N, *shape)`` for a ``Box``, a Dict/Tuple of
        batched parts otherwise."""
        self.rms.update(obs if self.parts is None else self.gather(obs))

    def update_from_moments(self, mean, var, count) -> None:
        self.rms.update_from_moments(mean, var, count)

    def since(self, earlier: dict):
        """See :meth:`RunningMeanStd.since`."""
        return self.rms.since(earlier)

    def normalize(self, obs, dtype=np.float64):
        """``clip((obs - mean) / sqrt(var + epsilon), -clip, clip)`` as ``dtype``; for a
        Dict/Tuple observation, the same structure with each float part normalised so and the
        other parts as they were."""
        if self.parts is None:
            x = (np.asarray(obs, dtype=np.float64) - self.rms.mean) / self.std
            return np.clip(x, -self.clip, self.clip, out=x).astype(dtype, copy=False)
        std = self.std
        for path, shape, a, b in self.parts:
            x = np.asarray(_get(obs, path), dtype=np.float64)
            x = (x - self.rms.mean[a:b].reshape(shape)) / std[a:b].reshape(shape)
            np.clip(x, -self.clip, self.clip, out=x)
            obs = _replace(obs, path, x.astype(dtype, copy=False))
        return obs

    def config(self) -> dict:
        """What rebuilds an empty normaliser of this kind (:meth:`from_config`): shape, clip
        and epsilon, and for a Dict/Tuple observation the paths of its float parts."""
        out = {"shape": list(self.rms.mean.shape), "clip": self.clip, "epsilon": self.epsilon}
        if self.parts is not None:
            out["parts"] = [list(path) for path, *_ in self.parts]
        return out

    @classmethod
    def from_config(cls, config: dict, observation_space) -> "ObsNormalizer":
        """An empty normaliser for ``observation_space`` as :meth:`config` describes it; a
        ``ValueError`` when the two disagree."""
        space = observation_space if isinstance(observation_space, (spaces.Dict, spaces.Tuple)) \
            else tuple(config["shape"])
        norm = cls(space, config["clip"], config["epsilon"])
        want = [list(p) for p, *_ in norm.parts] if norm.parts is not None else None
        if list(norm.rms.mean.shape) != list(config["shape"]) or \
                config.get("parts", want) != want:
            raise ValueError(f"the normaliser's statistics (shape {config['shape']}, parts "
                             f"{config.get('parts')}) do not fit the observation space "
                             f"{observation_space}")
        return norm

    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        return self.rms.state_dict(prefix)

    def load_state_dict(self, d, prefix: str = "") -> None:
        self.rms.load_state_dict(d, prefix)
