"""How a trainer turns the ``env`` it is given into environments.

Every trainer, :func:`agents.evaluate` and ``Model.load(path, env=...)`` take ``env`` as a
Gymnasium id (including the ``"module:id"`` form), a zero-argument callable returning a
``gymnasium.Env``, or an Env class; :func:`make_env_fn` turns each into a factory, because a
trainer builds several envs (one per vector-env slot or worker).
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

import gymnasium as gym
import numpy as np

__all__ = ["make_env_fn", "env_id", "EnvOutputError", "check_env_output", "probe_spaces"]


class EnvOutputError(ValueError):
    """An environment returned a NaN or infinite reward or observation. Every trainer stops
    with this error (at the step it happened, naming the env), leaving itself at its last
    whole iteration: a NaN reward would otherwise poison the normalisation statistics and the
    fitnesses, and an infinite one would count as solving the task."""


def _leaves(x):
    if isinstance(x, dict):
        for v in x.values():
            yield from _leaves(v)
    elif isinstance(x, (tuple, list)):
        for v in x:
            yield from _leaves(v)
    else:
        yield x


def check_env_output(obs, rewards, where: str) -> None:
    """Raise :class:`EnvOutputError` if ``rewards`` or a float part of ``obs`` is NaN or
    infinite; ``where`` says which env and step (e.g. ``"CartPole-v1, env 3, step 12"``)."""
    r = np.asarray(rewards, dtype=np.float64)
    if not np.isfinite(r).all():
        raise EnvOutputError(f"the env returned a reward of {r[~np.isfinite(r)].flat[0]} "
                             f"({where}); rewards must be finite numbers")
    for leaf in _leaves(obs):
        a = np.asarray(leaf)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise EnvOutputError(f"the env returned an observation with NaN or inf ({where})")


def probe_spaces(env_fn, what: str = "env"):
    """``(observation_space, action_space, env)`` of a freshly made env; a ``TypeError`` if
    the factory does not return a Gymnasium env. The caller closes the env."""
    env = env_fn()
    if not isinstance(getattr(env, "observation_space", None), gym.Space) or \
            not isinstance(getattr(env, "action_space", None), gym.Space):
        raise TypeError(f"the {what} factory returned {type(env).__name__}, not a "
                        f"gymnasium.Env with an observation_space and an action_space")
    return env.observation_space, env.action_space, env


def make_env_fn(env: Any) -> Callable[[], gym.Env]:
    """A zero-argument factory for ``env`` (an id, a callable or an Env class).

    An id may name its module, ``"my_package.envs:MyEnv-v0"``, as ``gym.make`` allows: the
    module is imported (so that it registers the id) before the id is looked up. An unknown id
    is a ``ValueError``; an env *instance* is refused with the fix (trainers build several
    envs, so they need a way to make more)."""
    if isinstance(env, str):
        import agents.envs  # noqa: F401  (registers the rlstm/ namespace)
        module, _, name = env.rpartition(":")
        try:
            if module:
                importlib.import_module(module)
            gym.spec(name)
        except ImportError as e:
            raise ValueError(f"cannot import {module!r} for the Gymnasium id {env!r}: {e}") \
                from e
        except gym.error.Error as e:
            raise ValueError(f"unknown Gymnasium id {env!r}: {e}") from e
        return lambda: gym.make(env)
    if isinstance(env, gym.Env):
        raise TypeError("pass the env as an id, a zero-argument callable or an Env class, not an "
                        "instance: trainers build one env per worker, e.g. env=lambda: "
                        "MyEnv(...)")
    if inspect.isclass(env):
        if not issubclass(env, gym.Env):
            raise TypeError(f"env class must subclass gymnasium.Env, got {env.__name__}")
        return env
    if callable(env):
        return env
    raise TypeError(f"env must be a Gymnasium id, a callable or an Env class, got "
                    f"{type(env).__name__}")


def env_id(env: Any) -> str | None:
    """The Gymnasium id when ``env`` was given as one (saved with models), else None."""
    return env if isinstance(env, str) else None
