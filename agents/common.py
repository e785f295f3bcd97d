"""Pieces every trainer shares: env construction, running statistics, seeding."""
from __future__ import annotations

import inspect
from typing import Any, Callable

import gymnasium as gym
import numpy as np

EnvSpec = "str | Callable[[], gym.Env] | type[gym.Env]"


def make_env_fn(env: Any, **make_kwargs) -> Callable[[], gym.Env]:
    """Normalise the three accepted forms of ``env`` to a zero-argument factory.

    ``env`` is a Gymnasium id (``str``), a zero-argument callable returning a ``gymnasium.Env``,
    or a ``gymnasium.Env`` subclass. An env *instance* is refused: trainers build several.
    """
    if isinstance(env, str):
        import agents.envs  # noqa: F401  (registers the rlstm/ namespace)
        try:
            gym.spec(env)
        except gym.error.Error as e:
            raise ValueError(f"unknown Gymnasium id {env!r}: {e}") from e
        return lambda: gym.make(env, **make_kwargs)
    if isinstance(env, gym.Env):
        raise TypeError("pass the env as an id, a zero-argument callable or an Env class, not an "
                        "instance: trainers build one env per worker, e.g. env=lambda: "
                        "MyEnv(...)")
    if inspect.isclass(env):
        if not issubclass(env, gym.Env):
            raise TypeError(f"env class must subclass gymnasium.Env, got {env.__name__}")
        return lambda: env(**make_kwargs)
    if callable(env):
        return env
    raise TypeError(f"env must be a Gymnasium id, a callable or an Env class, got "
                    f"{type(env).__name__}")


def env_id(env: Any) -> str | None:
    """The Gymnasium id when ``env`` was given as one (saved with models), else None."""
    return env if isinstance(env, str) else None


class RunningMeanStd:
    """Running mean and variance (Chan et al. parallel algorithm), for normalisation."""

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
        delta = mean - self.mean
        total = self.count + count
        self.mean = self.mean + delta * count / total
        m2 = self.var * self.count + var * count + delta ** 2 * self.count * count / total
        self.var = m2 / total
        self.count = total

    def normalize(self, x: np.ndarray, clip: float = 10.0) -> np.ndarray:
        return np.clip((x - self.mean) / np.sqrt(self.var + 1e-8), -clip, clip)

    def state_dict(self, prefix: str = "") -> dict[str, np.ndarray]:
        return {prefix + "mean": self.mean.copy(), prefix + "var": self.var.copy(),
                prefix + "count": np.asarray(self.count)}

    def load_state_dict(self, d: dict[str, np.ndarray], prefix: str = "") -> None:
        mean, var = np.asarray(d[prefix + "mean"]), np.asarray(d[prefix + "var"])
        if mean.shape != self.mean.shape or var.shape != self.var.shape:
            raise ValueError(f"normalisation statistics have shape {mean.shape}, expected "
                             f"{self.mean.shape}")
        self.mean, self.var = mean.astype(np.float64), var.astype(np.float64)
        self.count = float(d[prefix + "count"])


def rng_state_to_array(rng: np.random.Generator) -> np.ndarray:
    """A PCG64 generator's full state as a uint64 array (for pickle-free checkpoints)."""
    st = rng.bit_generator.state
    if st["bit_generator"] != "PCG64":
        raise ValueError("only PCG64 generators can be checkpointed")
    s, inc = st["state"]["state"], st["state"]["inc"]
    mask = (1 << 64) - 1
    return np.array([s & mask, s >> 64, inc & mask, inc >> 64, st["has_uint32"],
                     st["uinteger"]], dtype=np.uint64)


def rng_from_array(a: np.ndarray) -> np.random.Generator:
    """Inverse of :func:`rng_state_to_array`."""
    a = [int(v) for v in np.asarray(a, dtype=np.uint64)]
    if len(a) != 6:
        raise ValueError("RNG state must have 6 entries")
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": "PCG64",
                               "state": {"state": a[0] | (a[1] << 64), "inc": a[2] | (a[3] << 64)},
                               "has_uint32": a[4], "uinteger": a[5]}
    return rng
