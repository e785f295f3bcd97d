"""How a trainer turns the ``env`` it is given into environments.

Every trainer, :func:`agents.evaluate`, :func:`agents.evaluate_policy`, the callbacks and
``Model.load(path, env=...)`` take ``env`` in any of these forms (:func:`as_env_source`):

- a Gymnasium id, including the ``"module:id"`` form that ``gym.make`` accepts;
- a zero-argument callable returning a ``gymnasium.Env``, or an Env class;
- a ``gymnasium.Env`` instance, used as the one env (as Stable-Baselines3 wraps one in a one-env
  vector env); asking for copies of it (``n_envs > 1``, an evolution population, worker
  processes) is an error that says what to pass instead;
- a Gymnasium ``VectorEnv``, whose ``num_envs`` sets the number of envs and whose autoreset
  mode is honoured.

The first two make fresh envs on demand, so trainers can build one per vector-env slot, worker
or evaluation episode. A saved model records the Gymnasium id where there is one.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Callable

import gymnasium as gym
import numpy as np

__all__ = ["EnvSource", "as_env_source", "make_env_fn", "env_id", "EnvOutputError",
           "check_env_output", "probe_spaces"]


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
            hint = "" if module else (
                "; an env registered by another package needs that package imported first "
                "(in Python: import it; on the command line: --import PACKAGE, or the id as "
                "'PACKAGE:ID')")
            raise ValueError(f"unknown Gymnasium id {env!r}: {str(e).rstrip('.')}{hint}") from e
        return lambda: gym.make(env)
    if isinstance(env, (gym.Env, gym.vector.VectorEnv)):
        raise TypeError("make_env_fn makes new envs from an id, a zero-argument callable or an "
                        "Env class; an env instance is one env (see as_env_source), e.g. "
                        "env=lambda: MyEnv(...) makes more")
    if inspect.isclass(env):
        if not issubclass(env, gym.Env):
            raise TypeError(f"env class must subclass gymnasium.Env, got {env.__name__}")
        return env
    if callable(env):
        return env
    raise TypeError(f"env must be a Gymnasium id, an Env class, a callable, an Env instance or "
                    f"a VectorEnv, got {type(env).__name__}")


def env_id(env: Any) -> str | None:
    """The Gymnasium id when ``env`` was given as one (saved with models), else None."""
    return env if isinstance(env, str) else None


def _spaces(env, what: str):
    obs = getattr(env, "single_observation_space", None) if isinstance(
        env, gym.vector.VectorEnv) else getattr(env, "observation_space", None)
    act = getattr(env, "single_action_space", None) if isinstance(
        env, gym.vector.VectorEnv) else getattr(env, "action_space", None)
    if not isinstance(obs, gym.Space) or not isinstance(act, gym.Space):
        raise TypeError(f"{what} is a {type(env).__name__}, not a gymnasium.Env with an "
                        f"observation_space and an action_space")
    return obs, act


@dataclass
class EnvSource:
    """The ``env`` a trainer was given, in whichever of the accepted forms."""

    factory: Callable[[], gym.Env] | None = None
    instance: gym.Env | None = None
    vector: gym.vector.VectorEnv | None = None
    env_id: str | None = None

    @property
    def num_envs(self) -> int | None:
        """The number of envs a given VectorEnv holds (None for the other forms)."""
        return None if self.vector is None else int(self.vector.num_envs)

    @property
    def autoreset_mode(self) -> str | None:
        """``"same_step"`` or ``"next_step"`` for a given VectorEnv (None otherwise)."""
        if self.vector is None:
            return None
        modes = {gym.vector.AutoresetMode.NEXT_STEP: "next_step",
                 gym.vector.AutoresetMode.SAME_STEP: "same_step"}
        mode = self.vector.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        if mode not in modes:
            raise ValueError(f"the VectorEnv's autoreset mode is {mode!r}; rlstm trainers run "
                             f"SAME_STEP or NEXT_STEP vector envs")
        return modes[mode]

    def spaces(self):
        """``(observation_space, action_space)`` of one env, without making a new one where
        an env was given."""
        if self.vector is not None:
            return _spaces(self.vector, "the VectorEnv")
        if self.instance is not None:
            return _spaces(self.instance, "the env")
        obs_space, act_space, env = probe_spaces(self.factory)
        env.close()
        return obs_space, act_space

    def filtered(self, keys) -> "EnvSource":
        """This source with each env's Dict observation cut down to ``keys`` (and its
        ``action_mask``, if any) by Gymnasium's ``FilterObservation`` wrappers; unchanged for
        ``keys=None``. A ``ValueError``/``TypeError`` names a key the observation lacks or an
        observation that is not a Dict."""
        if keys is None:
            return self
        from rlstm.policy.spaces import select_keys
        obs_space, _ = self.spaces()
        space = select_keys(obs_space, keys)
        keep = list(space.spaces)
        if self.vector is not None:
            from gymnasium.wrappers.vector import FilterObservation as VectorFilter
            return EnvSource(vector=VectorFilter(self.vector, keep), env_id=self.env_id)
        from gymnasium.wrappers import FilterObservation
        if self.instance is not None:
            return EnvSource(instance=FilterObservation(self.instance, keep),
                             env_id=self.env_id)
        return EnvSource(factory=_Filtered(self.factory, keep), env_id=self.env_id)

    def copies(self, what: str) -> Callable[[], gym.Env]:
        """A factory of fresh envs, for ``what`` (e.g. ``"n_envs=8"``); a ``ValueError`` that
        says what to pass when only one env (or one vector env) was given."""
        if self.factory is None:
            given = "an Env instance" if self.instance is not None else "a VectorEnv"
            raise ValueError(f"{what} needs new envs, but the env was given as {given}, "
                             f"which cannot be copied; pass a Gymnasium id, an Env class or a "
                             f"zero-argument callable, e.g. env=lambda: MyEnv(...)")
        return self.factory

    def vector_env(self, n_envs: int, vec_env: str = "sync", autoreset_mode: str = "same_step"):
        """The vector env of ``n_envs`` envs a rollout steps: the given VectorEnv, the given
        env alone, or ``n_envs`` fresh envs (sync or async)."""
        if self.vector is not None:
            if n_envs != self.num_envs:
                raise ValueError(f"the VectorEnv holds {self.num_envs} envs; n_envs is {n_envs}")
            return self.vector
        mode = (gym.vector.AutoresetMode.NEXT_STEP if autoreset_mode == "next_step"
                else gym.vector.AutoresetMode.SAME_STEP)
        if self.instance is not None:
            if n_envs != 1:
                self.copies(f"n_envs={n_envs}")
            return gym.vector.SyncVectorEnv([lambda: self.instance], autoreset_mode=mode)
        fns = [self.factory] * n_envs
        if vec_env == "async":
            return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode)
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)

    def owned(self) -> bool:
        """Whether envs made from this source are the caller's to close (a given env or
        VectorEnv stays open: it belongs to the user)."""
        return self.factory is not None


@dataclass
class _Filtered:
    """A picklable factory: the wrapped factory's env with its observation filtered."""

    factory: Callable[[], gym.Env]
    keys: list

    def __call__(self) -> gym.Env:
        from gymnasium.wrappers import FilterObservation
        return FilterObservation(self.factory(), self.keys)


def as_env_source(env: Any) -> EnvSource:
    """Any accepted form of ``env`` (see the module docstring) as an :class:`EnvSource`."""
    if isinstance(env, EnvSource):
        return env
    if isinstance(env, gym.vector.VectorEnv):
        spec = getattr(env, "spec", None) or getattr(
            next(iter(getattr(env, "envs", None) or []), None), "spec", None)  # SyncVectorEnv
        return EnvSource(vector=env, env_id=getattr(spec, "id", None))
    if isinstance(env, gym.Env):
        spec = getattr(env, "spec", None)
        return EnvSource(instance=env, env_id=getattr(spec, "id", None))
    return EnvSource(factory=make_env_fn(env), env_id=env_id(env))
