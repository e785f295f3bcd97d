"""Evaluation of any trained model: :func:`evaluate` (mean and std of whole-episode returns)
and :func:`evaluate_policy`, Stable-Baselines3's function with its signature and return
values."""
from __future__ import annotations

import numpy as np

from .env_factory import as_env_source, check_env_output

__all__ = ["evaluate", "evaluate_policy"]

MAX_PARALLEL = 16


def _episodes(model, env, n_episodes: int, deterministic: bool, seed, max_steps: int):
    """``(returns, lengths)`` of ``n_episodes`` whole episodes of ``model`` on ``env``."""
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, (int, np.integer)) \
            or n_episodes < 1:
        raise ValueError(f"n_episodes must be an int >= 1, got {n_episodes!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    if not hasattr(model, "predict"):
        raise TypeError(f"model must have a predict() method, got {type(model).__name__}")
    source = as_env_source(env)
    keys = getattr(getattr(model, "config", None), "obs_keys", None)
    if keys is not None:  # the parts the model was trained on
        source = source.filtered(keys)
    if hasattr(model, "observation_space") and hasattr(model, "action_space"):
        from .trainer import check_spaces
        check_spaces(model, *source.spaces())
    name = source.env_id or "the env"
    returns: list[float] = []
    lengths: list[int] = []
    while len(returns) < n_episodes:
        want = n_episodes - len(returns)
        n = source.num_envs or (1 if source.instance is not None else min(MAX_PARALLEL, want))
        envs = source.vector_env(n, "sync", "next_step") if source.vector is None \
            else source.vector
        try:
            first = None if seed is None else int(seed) + len(returns)
            obs, _ = envs.reset(seed=first)
            state, start = None, np.ones(n, dtype=bool)
            total, steps = np.zeros(n), np.zeros(n, dtype=np.int64)
            done = np.zeros(n, dtype=bool)
            check_env_output(obs, 0.0, f"{name}, at reset")
            for t in range(max_steps):
                action, state = model.predict(obs, state, start, deterministic=deterministic)
                obs, reward, terminated, truncated, _ = envs.step(action)
                check_env_output(obs, np.where(done, 0.0, reward),
                                 f"{name}, step {t} of an evaluation episode")
                total += np.where(done, 0.0, reward)
                steps += ~done
                done |= terminated | truncated
                start = np.zeros(n, dtype=bool)
                if done.all():
                    break
        finally:
            if source.owned():
                envs.close()
        returns += total[:want].tolist()
        lengths += steps[:want].tolist()
    return returns, lengths


def evaluate(model, env, n_episodes: int = 10, deterministic: bool = True, seed=None,
             max_steps: int = 100_000) -> tuple[float, float]:
    """Run ``n_episodes`` whole episodes and return the mean and std of their undiscounted
    returns.

    ``env`` is any form a trainer takes (an id, a class, a callable, an Env instance, a
    VectorEnv). Episodes run side by side (up to 16 at a time, or the VectorEnv's ``num_envs``;
    one at a time for an Env instance); with ``seed`` episode ``i`` is reset with ``seed + i``,
    so the result is reproducible. ``model`` needs ``predict(obs, state, episode_start,
    deterministic) -> (action, state)`` on batches. Episodes longer than ``max_steps`` are cut
    there. An env whose spaces differ from the model's is a ``ValueError`` that shows both; a
    NaN or infinite reward or observation is an :class:`agents.env_factory.EnvOutputError`.
    """
    returns, _ = _episodes(model, env, n_episodes, deterministic, seed, max_steps)
    return float(np.mean(returns)), float(np.std(returns))


def evaluate_policy(model, env, n_eval_episodes: int = 10, deterministic: bool = True,
                    render: bool = False, callback=None, reward_threshold: float | None = None,
                    return_episode_rewards: bool = False, warn: bool = True):
    """Stable-Baselines3's ``evaluate_policy``: ``(mean_reward, std_reward)``, or with
    ``return_episode_rewards=True`` the lists ``(episode_rewards, episode_lengths)``.

    ``env`` is any form a trainer takes; ``reward_threshold`` raises ``AssertionError`` when
    the mean return is below it, as in SB3. ``render`` and ``callback`` (SB3's per-step hooks)
    are not supported: pass ``render=False`` and ``callback=None``. ``warn`` is accepted for
    compatibility (rlstm's episodes are always whole, so there is nothing to warn about).
    """
    if render or callback is not None:
        raise ValueError("evaluate_policy here takes render=False and callback=None; to watch "
                         "an episode use `rlstm evaluate MODEL --render out.gif`")
    returns, lengths = _episodes(model, env, n_eval_episodes, deterministic, None, 100_000)
    mean = float(np.mean(returns))
    if reward_threshold is not None:
        assert mean >= reward_threshold, \
            f"mean reward below threshold: {mean:.2f} < {reward_threshold:.2f}"
    if return_episode_rewards:
        return returns, lengths
    return mean, float(np.std(returns))
