"""Hooks into ``learn``: evaluate, keep the best model, checkpoint, stop early.

A callback is a :class:`Callback` or a plain function ``f(model) -> bool | None`` (``False``
stops training). ``learn`` calls ``on_iteration`` after every iteration (a rollout and its
update, or a generation), before that iteration's row is logged, so what a callback adds to
``model.log_extra`` lands in the same row of ``progress.csv``.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from rlstm.validation import check_int

__all__ = ["Callback", "EvalCallback", "CheckpointCallback", "as_callbacks"]


class Callback:
    """Hooks called by ``learn``. ``on_iteration`` returning False stops training."""

    def on_training_start(self, model) -> None:
        pass

    def on_iteration(self, model) -> bool:
        return True

    def on_training_end(self, model) -> None:
        pass


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable):
        self.fn = fn

    def on_iteration(self, model) -> bool:
        return self.fn(model) is not False


class EvalCallback(Callback):
    """Evaluate every ``eval_freq`` timesteps; optionally stop at ``reward_threshold`` and keep
    the best model at ``best_model_path``. Results go to the CSV log (``eval_return_mean``,
    ``eval_return_std``) and to ``self.results`` as ``(timesteps, mean, std)``."""

    def __init__(self, env, eval_freq: int = 10_000, n_episodes: int = 10,
                 deterministic: bool = True, seed: int | None = 0,
                 reward_threshold: float | None = None, best_model_path: str | None = None):
        from .env_factory import make_env_fn
        make_env_fn(env)  # refuse a bad env now, not after the first eval_freq steps
        self.env = env
        self.eval_freq = check_int("eval_freq", eval_freq, 1)
        self.n_episodes = check_int("n_episodes", n_episodes, 1)
        self.deterministic, self.seed = bool(deterministic), seed
        self.reward_threshold = None if reward_threshold is None else float(reward_threshold)
        self.best_model_path = best_model_path
        self.best_mean = -np.inf
        self.results: list[tuple[int, float, float]] = []
        self._next = 0

    def on_training_start(self, model) -> None:
        self._next = model.num_timesteps + self.eval_freq

    def on_iteration(self, model) -> bool:
        if model.num_timesteps < self._next:
            return True
        self._next = model.num_timesteps + self.eval_freq
        from .evaluation import evaluate
        mean, std = evaluate(model, self.env, self.n_episodes, self.deterministic, self.seed)
        self.results.append((model.num_timesteps, mean, std))
        model.log_extra.update(eval_return_mean=mean, eval_return_std=std)
        if mean > self.best_mean:
            self.best_mean = mean
            if self.best_model_path:
                model.save(self.best_model_path)
        return self.reward_threshold is None or mean < self.reward_threshold


class CheckpointCallback(Callback):
    """Save the model to ``path`` (atomically, overwriting) every ``save_freq`` timesteps."""

    def __init__(self, save_freq: int, path: str | os.PathLike):
        if isinstance(save_freq, bool) or not isinstance(save_freq, (int, np.integer)) \
                or save_freq < 1:
            raise ValueError(f"save_freq must be an int >= 1 (timesteps), got {save_freq!r}")
        self.save_freq, self.path, self._next = int(save_freq), os.fspath(path), 0

    def on_training_start(self, model) -> None:
        self._next = model.num_timesteps + self.save_freq

    def on_iteration(self, model) -> bool:
        if model.num_timesteps >= self._next:
            model.save(self.path)
            self._next = model.num_timesteps + self.save_freq
        return True


def as_callbacks(callback) -> list[Callback]:
    """``None``, a :class:`Callback`, a function or a (nested) list of them, as a list."""
    if callback is None:
        return []
    if isinstance(callback, Callback):
        return [callback]
    if isinstance(callback, (list, tuple)):
        return [c for cb in callback for c in as_callbacks(cb)]
    if callable(callback):
        return [_FunctionCallback(callback)]
    raise TypeError(f"callback must be a Callback, a callable(model) -> bool or a list of "
                    f"them, got {type(callback).__name__}")
