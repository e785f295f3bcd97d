"""``agents.evaluate``: mean and std of whole-episode returns of any trainer with ``predict``."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from .env_factory import check_env_output, env_id, make_env_fn, probe_spaces

__all__ = ["evaluate"]

MAX_PARALLEL = 16


def evaluate(model, env, n_episodes: int = 10, deterministic: bool = True, seed=None,
             max_steps: int = 100_000) -> tuple[float, float]:
    """Run ``n_episodes`` whole episodes and return the mean and std of their undiscounted
    returns.

    ``env`` is a Gymnasium id, a zero-argument callable or an Env class. Episodes run side by
    side (up to 16 at a time) in a vector env; with ``seed`` episode ``i`` is reset with
    ``seed + i``, so the result is reproducible. ``model`` needs ``predict(obs, state,
    episode_start, deterministic) -> (action, state)`` on batches. Episodes longer than
    ``max_steps`` are cut there. An env whose spaces differ from the model's is a
    ``ValueError`` that shows both; a NaN or infinite reward or observation is an
    :class:`agents.env_factory.EnvOutputError`.
    """
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) \
            or n_episodes < 1:
        raise ValueError(f"n_episodes must be an int >= 1, got {n_episodes!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    if not hasattr(model, "predict"):
        raise TypeError(f"model must have a predict() method, got {type(model).__name__}")
    env_fn = make_env_fn(env)
    if hasattr(model, "observation_space") and hasattr(model, "action_space"):
        from .trainer import check_spaces
        obs_space, act_space, probe = probe_spaces(env_fn)
        probe.close()
        check_spaces(model, obs_space, act_space)
    name = env_id(env) or "the env"
    returns: list[float] = []
    while len(returns) < n_episodes:
        n = min(MAX_PARALLEL, n_episodes - len(returns))
        envs = gym.vector.SyncVectorEnv([env_fn] * n)
        try:
            first = None if seed is None else int(seed) + len(returns)
            obs, _ = envs.reset(seed=first)
            state, start = None, np.ones(n, dtype=bool)
            total = np.zeros(n)
            done = np.zeros(n, dtype=bool)
            check_env_output(obs, 0.0, f"{name}, at reset")
            for t in range(max_steps):
                action, state = model.predict(obs, state, start, deterministic=deterministic)
                obs, reward, terminated, truncated, _ = envs.step(action)
                check_env_output(obs, np.where(done, 0.0, reward),
                                 f"{name}, step {t} of an evaluation episode")
                total += np.where(done, 0.0, reward)
                done |= terminated | truncated
                start = np.zeros(n, dtype=bool)
                if done.all():
                    break
        finally:
            envs.close()
        returns += total.tolist()
    return float(np.mean(returns)), float(np.std(returns))
