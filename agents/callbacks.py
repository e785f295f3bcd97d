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

__all__ = ["Callback", "EvalCallback", "CheckpointCallback", "StopTrainingOnRewardThreshold",
           "as_callbacks"]


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


class StopTrainingOnRewardThreshold(Callback):
    """Stop training once an evaluation reaches ``reward_threshold`` (Stable-Baselines3's
    callback of the same name, for ``EvalCallback(callback_on_new_best=...)``)."""

    def __init__(self, reward_threshold: float, verbose: int = 0):
        self.reward_threshold, self.verbose = float(reward_threshold), int(verbose)

    def on_new_best(self, model, mean: float) -> bool:
        if mean >= self.reward_threshold:
            if self.verbose:
                print(f"Stopping training: the mean evaluation return {mean:.2f} reached the "
                      f"threshold {self.reward_threshold:g} at {model.num_timesteps} steps")
            return False
        return True


class EvalCallback(Callback):
    """Evaluate every ``eval_freq`` timesteps; optionally stop at ``reward_threshold`` and keep
    the best model. Results go to the CSV log (``eval_return_mean``, ``eval_return_std``) and to
    ``self.results`` as ``(timesteps, mean, std)``.

    Stable-Baselines3's spellings work too: ``n_eval_episodes`` for ``n_episodes``,
    ``best_model_save_path`` (a folder: ``best_model.rlstm`` is written there) for
    ``best_model_path``, ``callback_on_new_best`` (e.g.
    :class:`StopTrainingOnRewardThreshold`) and ``verbose=1``, which prints every evaluation
    and says when it stops training.
    """

    def __init__(self, env, eval_freq: int = 10_000, n_episodes: int = 10,
                 deterministic: bool = True, seed: int | None = 0,
                 reward_threshold: float | None = None, best_model_path: str | None = None,
                 *, n_eval_episodes: int | None = None, best_model_save_path: str | None = None,
                 callback_on_new_best: StopTrainingOnRewardThreshold | None = None,
                 verbose: int = 0):
        from .env_factory import as_env_source
        as_env_source(env)  # refuse a bad env now, not after the first eval_freq steps
        self.env = env
        self.eval_freq = check_int("eval_freq", eval_freq, 1)
        self.n_episodes = check_int("n_episodes", n_episodes if n_eval_episodes is None
                                    else n_eval_episodes, 1)
        self.deterministic, self.seed = bool(deterministic), seed
        self.reward_threshold = None if reward_threshold is None else float(reward_threshold)
        if best_model_save_path is not None:
            best_model_path = os.path.join(os.fspath(best_model_save_path), "best_model.rlstm")
        self.best_model_path = best_model_path
        self.callback_on_new_best = callback_on_new_best
        self.verbose = int(verbose)
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
        if self.verbose:
            print(f"Eval num_timesteps={model.num_timesteps}, episode_reward={mean:.2f} "
                  f"+/- {std:.2f}")
        keep_going = True
        if mean > self.best_mean:
            self.best_mean = mean
            if self.best_model_path:
                model.save(self.best_model_path)
                if self.verbose:
                    print(f"New best mean reward: saved {self.best_model_path}")
            if self.callback_on_new_best is not None:
                keep_going = self.callback_on_new_best.on_new_best(model, mean)
        if self.reward_threshold is not None and mean >= self.reward_threshold:
            if self.verbose:
                print(f"Stopping training: the mean evaluation return {mean:.2f} reached "
                      f"reward_threshold={self.reward_threshold:g} at {model.num_timesteps} "
                      f"steps")
            keep_going = False
        return keep_going


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
