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

__all__ = ["make_env_fn", "env_id"]


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
