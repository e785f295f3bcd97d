"""Machinery every recurrent policy-gradient trainer shares.

:class:`OnPolicyAlgorithm` owns the vector env, the :class:`rlstm.policy.LSTMPolicy`, the
optimizer, observation/reward normalization, the rollout loop, logging (CSV, TensorBoard, tqdm),
callbacks, checkpoints, the NaN guard, ``predict`` and ``save``/``load``. A trainer
(:mod:`agents.ppo`, :mod:`agents.a2c`, :mod:`agents.reinforce`) adds its config fields and its
``_update``. The policy-gradient loss shared by all three is :func:`policy_gradient_loss`.

Rollouts follow Gymnasium's contract: ``terminated`` and ``truncated`` are kept apart and a
truncation bootstraps from the value of the final observation; the vector env's
``autoreset_mode`` (``same_step`` by default, or ``next_step``, Gymnasium's) is honoured; the LSTM
state is zeroed at episode starts, and the state at each sequence start is stored for the update.

Runs are reproducible: with a ``seed`` every random draw comes from one generator that is saved
in checkpoints. Each :meth:`~OnPolicyAlgorithm.learn` call resets the envs with a seed drawn from
that generator, so ``learn(N); save; load; learn(M)`` gives bit-for-bit the run of
``learn(N); learn(M)``.
"""
from __future__ import annotations

import csv
import dataclasses
import importlib.util
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from rlstm.optim import Adam, clip_grad_norm
from rlstm.policy import LSTMPolicy
from rlstm.policy.spaces import space_from_json, space_to_json
from rlstm.serialization import load_arrays, save_arrays

from .buffers import RolloutBuffer, tree_map
from .common import RunningMeanStd, env_id, make_env_fn, rng_from_array, rng_state_to_array

__all__ = ["OnPolicyConfig", "OnPolicyAlgorithm", "policy_gradient_loss", "Callback",
           "EvalCallback", "CheckpointCallback", "TrainingDiverged", "LOG_FIELDS"]

LOG_FIELDS = ["timesteps", "iterations", "time_elapsed", "fps", "episodes", "ep_return_mean",
              "ep_length_mean", "loss", "pg_loss", "value_loss", "entropy", "approx_kl",
              "clip_fraction", "explained_variance", "grad_norm", "learning_rate",
              "eval_return_mean", "eval_return_std"]


class TrainingDiverged(FloatingPointError):
    """The loss, a gradient or a parameter became NaN or inf. Parameters are left at their
    last finite values and the last checkpoint on disk is the last good one."""


# ---------------------------------------------------------------------------------- config
def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


@dataclass
class OnPolicyConfig:
    """Settings every policy-gradient trainer shares (trainers add their own)."""

    n_envs: int = 8
    """Parallel environments in the vector env."""
    n_steps: int = 32
    """Steps per env per rollout; a rollout is ``n_envs * n_steps`` transitions."""
    seq_len: int | None = None
    """Length of the truncated-BPTT sequences the rollout is cut into (``None``: ``n_steps``).
    Must divide ``n_steps``."""
    gamma: float = 0.98
    """Discount factor."""
    gae_lambda: float = 0.8
    """GAE(lambda) parameter (1.0: Monte-Carlo returns, 0.0: one-step TD)."""
    learning_rate: float = 1e-3
    """Adam step size (initial value when ``lr_schedule="linear"``)."""
    lr_schedule: str = "linear"
    """``"constant"`` or ``"linear"`` (decays to 0 at the end of each ``learn`` call)."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    ent_coef: float = 0.0
    """Entropy bonus coefficient."""
    vf_coef: float = 0.5
    """Value-loss coefficient: the loss adds ``vf_coef * mean((V - R)^2)`` (SB3's convention)."""
    normalize_advantage: bool = True
    """Standardize advantages per minibatch."""
    normalize_obs: bool = True
    """Normalize observations with running statistics (float ``Box`` observations only;
    ignored for others). The statistics are saved with the model."""
    normalize_reward: bool = True
    """Scale rewards by the running std of the discounted return (as SB3's VecNormalize)."""
    clip_obs: float = 10.0
    """Clip normalized observations to ``[-clip_obs, clip_obs]``."""
    clip_reward: float = 10.0
    """Clip normalized rewards to ``[-clip_reward, clip_reward]``."""
    hidden_size: int = 64
    """LSTM units of the policy core."""
    num_layers: int = 1
    """Stacked LSTM layers."""
    shared_core: bool = False
    """One LSTM for actor and critic (``True``) or a separate critic LSTM (``False``)."""
    mlp_hidden: Sequence[int] = ()
    """Sizes of an MLP encoder before the LSTM (``()``: none)."""
    use_sde: bool = False
    """Generalized state-dependent exploration for Box actions (gSDE, Raffin et al. 2022, as
    SB3's ``use_sde``): the action noise is the actor LSTM's output times an exploration matrix
    per env, held for ``sde_sample_freq`` steps, so exploration is smooth in time. It is what
    MountainCarContinuous needs. Ignored for action spaces without a Box part."""
    sde_sample_freq: int = -1
    """Redraw the gSDE exploration matrices every this many steps (``-1``: once per rollout)."""
    policy_kwargs: dict = field(default_factory=dict)
    """More keyword arguments for :class:`rlstm.policy.LSTMPolicy` (e.g. ``log_std_init``)."""
    dtype: str = "float32"
    """``"float32"`` or ``"float64"`` for the policy."""
    vec_env: str = "sync"
    """``"sync"`` (one process) or ``"async"`` (one subprocess per env)."""
    autoreset_mode: str = "same_step"
    """The vector env's autoreset mode: ``"same_step"`` (an ending episode is reset within the
    same ``step``, as SB3's vector envs do, so no step is spent on resets) or ``"next_step"``
    (Gymnasium's default: the step after an episode ends only resets; those steps are counted
    but masked out of the losses)."""
    log_dir: str | None = None
    """Folder for ``progress.csv``, TensorBoard events and checkpoints (``None``: no files)."""
    checkpoint_freq: int = 0
    """Write ``log_dir/checkpoint.rlstm`` every this many timesteps (0: only at the end of
    ``learn`` and on Ctrl-C). Needs ``log_dir``."""
    tensorboard: bool = True
    """Write TensorBoard events to ``log_dir`` when tensorboard or tensorboardX is installed."""
    blas_threads: int | None = 1
    """BLAS threads during ``learn`` (threadpoolctl). RL batches are small: one thread is
    fastest, and several threads can be many times slower on a busy machine. ``None``: leave
    BLAS alone."""

    def __post_init__(self):
        self.validate()

    @property
    def sequence_length(self) -> int:
        """``seq_len``, or ``n_steps`` when it is None."""
        return self.n_steps if self.seq_len is None else self.seq_len

    def validate(self) -> None:
        """Raise ``TypeError``/``ValueError`` saying what to change."""
        for name in ("n_envs", "n_steps", "hidden_size", "num_layers"):
            v = getattr(self, name)
            if not _is_int(v):
                raise TypeError(f"{name} must be an int, got {v!r}")
            _check(v >= 1, f"{name} must be >= 1, got {v}")
        if self.seq_len is not None and not _is_int(self.seq_len):
            raise TypeError(f"seq_len must be an int or None, got {self.seq_len!r}")
        _check(self.sequence_length >= 1 and self.n_steps % self.sequence_length == 0,
               f"seq_len ({self.seq_len}) must divide n_steps ({self.n_steps}); e.g. "
               f"seq_len=None (= n_steps)")
        _check(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        _check(0 <= self.gae_lambda <= 1, f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        _check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _check(self.lr_schedule in ("constant", "linear"),
               f"lr_schedule must be 'constant' or 'linear', got {self.lr_schedule!r}")
        _check(self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        for name in ("ent_coef", "vf_coef"):
            _check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _check(self.clip_obs > 0 and self.clip_reward > 0, "clip_obs and clip_reward must be > 0")
        if isinstance(self.mlp_hidden, (int, np.integer)):
            self.mlp_hidden = (int(self.mlp_hidden),)
        self.mlp_hidden = tuple(int(h) for h in self.mlp_hidden)
        _check(all(h >= 1 for h in self.mlp_hidden), f"mlp_hidden sizes must be >= 1, got "
               f"{self.mlp_hidden}")
        _check(isinstance(self.policy_kwargs, dict), "policy_kwargs must be a dict")
        _check(self.dtype in ("float32", "float64"),
               f"dtype must be 'float32' or 'float64', got {self.dtype!r}")
        _check(self.vec_env in ("sync", "async"),
               f"vec_env must be 'sync' or 'async', got {self.vec_env!r}")
        _check(self.autoreset_mode in ("next_step", "same_step"),
               f"autoreset_mode must be 'next_step' or 'same_step', got "
               f"{self.autoreset_mode!r}")
        if self.blas_threads is not None and (not _is_int(self.blas_threads)
                                              or self.blas_threads < 1):
            raise ValueError(f"blas_threads must be an int >= 1 or None, got "
                             f"{self.blas_threads!r}")
        if not isinstance(self.use_sde, (bool, np.bool_)):
            raise TypeError(f"use_sde must be a bool, got {self.use_sde!r}")
        if not _is_int(self.sde_sample_freq) or not (self.sde_sample_freq == -1
                                                     or self.sde_sample_freq >= 1):
            raise ValueError(f"sde_sample_freq must be -1 (once per rollout) or an int >= 1, "
                             f"got {self.sde_sample_freq!r}")
        _check("use_sde" not in self.policy_kwargs,
               "set use_sde on the trainer config, not in policy_kwargs")
        if not _is_int(self.checkpoint_freq) or self.checkpoint_freq < 0:
            raise ValueError(f"checkpoint_freq must be an int >= 0, got {self.checkpoint_freq!r}")
        _check(self.checkpoint_freq == 0 or self.log_dir is not None,
               "checkpoint_freq needs log_dir: set log_dir='runs/my-run'")


# ---------------------------------------------------------------------------------- loss
def policy_gradient_loss(log_probs, entropy, values, old_log_probs, advantages, returns,
                         old_values, mask, clip_range: float | None, clip_range_vf: float | None,
                         ent_coef: float, vf_coef: float):
    """PPO's clipped surrogate (or the plain policy gradient when ``clip_range`` is None),
    value loss (optionally clipped), entropy bonus; averaged over the ``mask``-ed entries.

    ``loss = -mean(min(r A, clip(r, 1-eps, 1+eps) A)) + vf_coef * mean((V - R)^2)
    - ent_coef * mean(H)`` with ``r = exp(log_probs - old_log_probs)``: the value loss is the
    plain mean squared error, as in Stable-Baselines3 (so ``vf_coef`` means what it means in
    SB3 and the RL Zoo; CleanRL's ``0.5 * mse`` convention halves it).

    Returns ``(loss, stats, dlog_probs, dentropy, dvalues)``: the gradients of ``loss`` with
    respect to the three policy outputs, ready for ``policy.backward``.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    mask = np.asarray(mask, dtype=np.float64)
    n = max(mask.sum(), 1.0)
    w = mask / n
    adv = np.asarray(advantages, dtype=np.float64)
    log_ratio = lp - old_log_probs
    ratio = np.exp(log_ratio)
    surr1 = ratio * adv
    if clip_range is None:
        pg_loss = -np.sum(w * surr1)
        dlog_probs = -w * surr1
        clip_frac = 0.0
    else:
        clipped = np.clip(ratio, 1.0 - clip_range, 1.0 + clip_range)
        surr2 = clipped * adv
        pg_loss = -np.sum(w * np.minimum(surr1, surr2))
        # d/dlp of min(s1, s2): s1' = A r where s1 is the min or the clip is inactive, else 0
        active = (surr1 <= surr2) | (np.abs(ratio - 1.0) <= clip_range)
        dlog_probs = -w * surr1 * active
        clip_frac = float(np.sum(w * (np.abs(ratio - 1.0) > clip_range)))
    v = np.asarray(values, dtype=np.float64)
    err = v - returns
    if clip_range_vf is None:
        value_loss = np.sum(w * err ** 2)
        dv = 2.0 * w * err
    else:
        dvc = np.clip(v - old_values, -clip_range_vf, clip_range_vf)
        err_c = old_values + dvc - returns
        use_unclipped = err ** 2 >= err_c ** 2
        value_loss = np.sum(w * np.maximum(err ** 2, err_c ** 2))
        inside = np.abs(v - old_values) <= clip_range_vf
        dv = 2.0 * w * np.where(use_unclipped, err, err_c * inside)
    ent = np.asarray(entropy, dtype=np.float64)
    ent_mean = np.sum(w * ent)
    loss = pg_loss + vf_coef * value_loss - ent_coef * ent_mean
    stats = {"pg_loss": float(pg_loss), "value_loss": float(value_loss),
             "entropy": float(ent_mean), "loss": float(loss),
             "approx_kl": float(np.sum(w * ((ratio - 1.0) - log_ratio))),
             "clip_fraction": clip_frac}
    return float(loss), stats, dlog_probs, -ent_coef * w, vf_coef * dv


# ---------------------------------------------------------------------------------- callbacks
class Callback:
    """Hooks called by ``learn``. ``on_iteration`` runs after every rollout + update; returning
    False stops training."""

    def on_training_start(self, model: "OnPolicyAlgorithm") -> None:
        pass

    def on_iteration(self, model: "OnPolicyAlgorithm") -> bool:
        return True

    def on_training_end(self, model: "OnPolicyAlgorithm") -> None:
        pass


class _FunctionCallback(Callback):
    def __init__(self, fn: Callable):
        self.fn = fn

    def on_iteration(self, model) -> bool:
        return self.fn(model) is not False


class EvalCallback(Callback):
    """Evaluate every ``eval_freq`` timesteps; optionally stop at ``reward_threshold`` and keep
    the best model at ``best_model_path``. Results go to the CSV log and ``self.results``."""

    def __init__(self, env, eval_freq: int = 10_000, n_episodes: int = 10,
                 deterministic: bool = True, seed: int | None = 0,
                 reward_threshold: float | None = None, best_model_path: str | None = None):
        if not _is_int(eval_freq) or eval_freq < 1:
            raise ValueError(f"eval_freq must be an int >= 1 (timesteps), got {eval_freq!r}")
        if not _is_int(n_episodes) or n_episodes < 1:
            raise ValueError(f"n_episodes must be an int >= 1, got {n_episodes!r}")
        self.env = make_env_fn(env)
        self.eval_freq, self.n_episodes = int(eval_freq), int(n_episodes)
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
        model._log_extra.update(eval_return_mean=mean, eval_return_std=std)
        if mean > self.best_mean:
            self.best_mean = mean
            if self.best_model_path:
                model.save(self.best_model_path)
        return self.reward_threshold is None or mean < self.reward_threshold


class CheckpointCallback(Callback):
    """Save the model to ``path`` (atomically, overwriting) every ``save_freq`` timesteps."""

    def __init__(self, save_freq: int, path: str):
        if not _is_int(save_freq) or save_freq < 1:
            raise ValueError(f"save_freq must be an int >= 1 (timesteps), got {save_freq!r}")
        self.save_freq, self.path, self._next = int(save_freq), os.fspath(path), 0

    def on_training_start(self, model) -> None:
        self._next = model.num_timesteps + self.save_freq

    def on_iteration(self, model) -> bool:
        if model.num_timesteps >= self._next:
            model.save(self.path)
            self._next = model.num_timesteps + self.save_freq
        return True


def _as_callbacks(callback) -> list[Callback]:
    if callback is None:
        return []
    if isinstance(callback, Callback):
        return [callback]
    if isinstance(callback, (list, tuple)):
        return [c for cb in callback for c in _as_callbacks(cb)]
    if callable(callback):
        return [_FunctionCallback(callback)]
    raise TypeError(f"callback must be a Callback, a callable(model) -> bool or a list of "
                    f"them, got {type(callback).__name__}")


# ---------------------------------------------------------------------------------- logging
class RunLogger:
    """One row per iteration: kept in ``rows``, appended to ``progress.csv`` when a folder is
    given, and to TensorBoard when it is installed and wanted."""

    FIELDS = LOG_FIELDS      # the CSV columns
    TB_PREFIX = ""           # TensorBoard tag prefix

    def __init__(self, log_dir: str | None, tensorboard: bool):
        self.rows: list[dict[str, float]] = []
        self.log_dir = log_dir
        self.csv_path = None
        self._tb = None
        if log_dir is None:
            return
        os.makedirs(log_dir, exist_ok=True)
        self.csv_path = os.path.join(log_dir, "progress.csv")
        if not os.path.exists(self.csv_path):
            with open(self.csv_path, "w", newline="") as f:
                csv.writer(f).writerow(self.FIELDS)
        if tensorboard:
            self._tb = _tensorboard_writer(log_dir)

    def log(self, row: dict[str, float]) -> None:
        self.rows.append(row)
        if self.csv_path:
            with open(self.csv_path, "a", newline="") as f:
                csv.writer(f).writerow(["" if row.get(k) is None else row[k]
                                        for k in self.FIELDS])
        if self._tb is not None:
            step = int(row["timesteps"])
            for k, v in row.items():
                if v is not None and k != "timesteps" and np.isfinite(v):
                    self._tb.add_scalar(self.TB_PREFIX + k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _tensorboard_writer(log_dir: str):
    """A SummaryWriter from tensorboardX or torch.utils.tensorboard, or None."""
    if importlib.util.find_spec("tensorboardX") is not None:
        from tensorboardX import SummaryWriter
        return SummaryWriter(log_dir)
    if (importlib.util.find_spec("tensorboard") is not None
            and importlib.util.find_spec("torch") is not None):
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(log_dir)
    return None


# ---------------------------------------------------------------------------------- helpers
def _clip_actions(space, a):
    """Clip ``Box`` parts of a (batched) action to the space's bounds."""
    if isinstance(space, spaces.Box):
        return np.clip(a, space.low, space.high).astype(space.dtype, copy=False)
    if isinstance(space, spaces.Dict):
        return {k: _clip_actions(s, a[k]) for k, s in space.spaces.items()}
    if isinstance(space, spaces.Tuple):
        return tuple(_clip_actions(s, x) for s, x in zip(space.spaces, a))
    return a


def act_unbatched(policy, action_space, obs, state, episode_start, deterministic, rng,
                  single: bool):
    """The shared end of ``predict``: act, clip ``Box`` actions to the space, and drop the
    batch axis again when the caller passed a single observation."""
    actions, _, _, state = policy.act(obs, state, episode_start,
                                      deterministic=bool(deterministic), rng=rng)
    actions = _clip_actions(action_space, actions)
    if single:
        actions = tree_map(lambda a: a[0], actions)
    return actions, state


def as_batch(space, obs):
    """``(obs, single, B)``: ``obs`` as a batch (a leading axis added to a single observation of
    ``space``), whether it was a single one, and the batch size."""
    single = _is_single(space, obs)
    if single:
        obs = tree_map(lambda a: np.asarray(a)[None], obs)
    leaf = obs
    while isinstance(leaf, (dict, tuple)):
        leaf = next(iter(leaf.values())) if isinstance(leaf, dict) else leaf[0]
    return obs, single, int(np.shape(leaf)[0])


def _is_single(space, obs) -> bool:
    """Whether ``obs`` is one observation of ``space`` (rather than a batch)."""
    if isinstance(space, spaces.Dict):
        k = next(iter(space.spaces))
        return _is_single(space.spaces[k], obs[k])
    if isinstance(space, spaces.Tuple):
        return _is_single(space.spaces[0], obs[0])
    if isinstance(space, spaces.Discrete):
        return np.ndim(obs) == 0
    return np.shape(obs) == tuple(space.shape)


def _final_obs_batch(next_obs, final_obs, done: np.ndarray):
    """The true last observations of the envs that finished (SAME_STEP autoreset), with
    ``next_obs`` for the others. ``final_obs`` is the object array of ``infos['final_obs']``."""
    rows = np.flatnonzero(done)
    first = final_obs[rows[0]]

    def fill(x, *finals):
        x = np.array(x, copy=True)
        x[rows] = np.stack(finals)
        return x
    if isinstance(first, dict):
        return {k: fill(next_obs[k], *(final_obs[i][k] for i in rows)) for k in first}
    if isinstance(first, tuple):
        return tuple(fill(next_obs[j], *(final_obs[i][j] for i in rows))
                     for j in range(len(first)))
    return fill(next_obs, *(final_obs[i] for i in rows))


# ---------------------------------------------------------------------------------- trainer
class OnPolicyAlgorithm:
    """Base of the recurrent policy-gradient trainers. Subclasses set ``config_class`` and
    implement ``_update(buffer, progress) -> dict of stats``.

    ``Trainer(env, config=None, *, seed=None, **overrides)``: ``env`` is a Gymnasium id, a
    zero-argument callable returning an env, or an Env class; ``overrides`` replace fields of
    ``config`` (e.g. ``PPO("CartPole-v1", n_envs=4, learning_rate=3e-4)``).
    """

    config_class: type = OnPolicyConfig

    def __init__(self, env, config=None, *, seed: int | None = None, **overrides):
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"config must be a {self.config_class.__name__}, got "
                            f"{type(config).__name__}")
        unknown = [k for k in overrides if k not in {f.name for f in dataclasses.fields(config)}]
        if unknown:
            raise TypeError(f"unknown {type(self).__name__} settings {unknown}; valid ones are "
                            f"the fields of {self.config_class.__name__}")
        self.config = dataclasses.replace(config, **overrides)
        if seed is not None and not _is_int(seed):
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self.seed = None if seed is None else int(seed)
        self._env_fn = make_env_fn(env)
        self.env_id = env_id(env)
        probe = self._env_fn()
        try:
            obs_space, act_space = probe.observation_space, probe.action_space
        finally:
            probe.close()
        self._setup(obs_space, act_space)

    def _setup(self, observation_space, action_space) -> None:
        cfg = self.config
        self.observation_space, self.action_space = observation_space, action_space
        seq = np.random.SeedSequence(self.seed)
        policy_seed, rng_seed, predict_seed = (int(s.generate_state(1)[0])
                                               for s in seq.spawn(3))
        self.policy = LSTMPolicy(observation_space, action_space, hidden_size=cfg.hidden_size,
                                 num_layers=cfg.num_layers, dtype=np.dtype(cfg.dtype),
                                 seed=policy_seed, shared_core=cfg.shared_core,
                                 mlp_hidden=cfg.mlp_hidden,
                                 use_sde=bool(cfg.use_sde),
                                 **cfg.policy_kwargs)
        self.optimizer = Adam(self.policy, lr=cfg.learning_rate, eps=1e-5)
        self.rng = np.random.default_rng(rng_seed)
        self._predict_rng = np.random.default_rng(predict_seed)
        self._normalize_obs = (cfg.normalize_obs and isinstance(observation_space, spaces.Box)
                               and observation_space.dtype.kind == "f")
        self.obs_rms = RunningMeanStd(observation_space.shape) if self._normalize_obs else None
        self.ret_rms = RunningMeanStd(()) if cfg.normalize_reward else None
        self.num_timesteps = 0
        self.iterations = 0
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.envs = None
        self._log_extra: dict[str, float] = {}
        self.logger = RunLogger(cfg.log_dir, cfg.tensorboard)

    # ------------------------------------------------------------------ envs
    def _make_vec_env(self):
        cfg = self.config
        mode = (gym.vector.AutoresetMode.NEXT_STEP if cfg.autoreset_mode == "next_step"
                else gym.vector.AutoresetMode.SAME_STEP)
        fns = [self._env_fn] * cfg.n_envs
        if cfg.vec_env == "async":
            return gym.vector.AsyncVectorEnv(fns, autoreset_mode=mode)
        return gym.vector.SyncVectorEnv(fns, autoreset_mode=mode)

    def close(self) -> None:
        """Close the vector env and the loggers."""
        if self.envs is not None:
            self.envs.close()
            self.envs = None
        self.logger.close()

    def _obs_for_policy(self, obs, update: bool):
        if not self._normalize_obs:
            return obs
        if update:
            self.obs_rms.update(obs)
        return self.obs_rms.normalize(obs, self.config.clip_obs).astype(self.policy.dtype)

    # ------------------------------------------------------------------ rollout
    def _start_rollouts(self) -> None:
        """Fresh envs, seeded from the trainer's generator (so a resumed run is identical)."""
        if self.envs is None:
            self.envs = self._make_vec_env()
        n = self.config.n_envs
        obs, _ = self.envs.reset(seed=int(self.rng.integers(2 ** 31 - 1)))
        self._obs = self._obs_for_policy(obs, update=True)
        self._state = self.policy.initial_state(n)
        self._episode_start = np.ones(n, dtype=bool)
        self._pending_reset = np.zeros(n, dtype=bool)  # NEXT_STEP: next step() resets the env
        self._ep_return = np.zeros(n)
        self._ep_length = np.zeros(n, dtype=np.int64)
        self._disc_return = np.zeros(n)

    def _collect_rollout(self, buf: RolloutBuffer) -> None:
        cfg, policy = self.config, self.policy
        next_step = cfg.autoreset_mode == "next_step"
        buf.reset()
        trunc_prev = np.zeros(cfg.n_envs, dtype=bool)
        freq = cfg.sde_sample_freq
        for t in range(cfg.n_steps):
            if t % buf.seq_len == 0:
                buf.add_state(self._state)
            if policy.use_sde and (t == 0 or (freq > 0 and t % freq == 0)):
                self._sde_noise = policy.sample_sde_noise(cfg.n_envs, self.rng)
            actions, values, log_probs, state = policy.act(
                self._obs, self._state, self._episode_start, rng=self.rng,
                sde_noise=self._sde_noise if policy.use_sde else None)
            if next_step and trunc_prev.any():  # values[t] is V(final obs) of those episodes
                buf.final_values[t - 1, trunc_prev] = values[trunc_prev]
            next_obs, rewards, terminated, truncated, infos = self.envs.step(
                _clip_actions(self.action_space, actions))
            valid = ~self._pending_reset
            done = terminated | truncated
            self._ep_return += rewards
            self._ep_length += valid
            for i in np.flatnonzero(done):
                self.episode_returns.append(float(self._ep_return[i]))
                self.episode_lengths.append(int(self._ep_length[i]))
            self._ep_return[done] = 0.0
            self._ep_length[done] = 0
            rewards = self._scale_rewards(rewards, done, valid)
            norm_next = self._obs_for_policy(next_obs, update=True)
            if not next_step and truncated.any():
                final = _final_obs_batch(next_obs, infos["final_obs"], truncated)
                final = self._obs_for_policy(final, update=False)
                _, v_final, _, _ = policy.act(final, state, np.zeros(cfg.n_envs, bool),
                                              deterministic=True)
                buf.final_values[t, truncated] = v_final[truncated]
            buf.add(self._obs, actions, rewards, self._episode_start, values, log_probs,
                    terminated, truncated, valid)
            self._obs, self._state = norm_next, state
            if next_step:
                self._episode_start = self._pending_reset.copy()
                self._pending_reset = done & ~self._pending_reset
            else:
                self._episode_start = done
            trunc_prev = truncated & next_step
            self.num_timesteps += cfg.n_envs
        _, last_values, _, _ = policy.act(self._obs, self._state, self._episode_start,
                                          deterministic=True)
        buf.final_values[-1, trunc_prev] = last_values[trunc_prev]
        buf.compute_returns_and_advantages(last_values)

    def _scale_rewards(self, rewards, done, valid):
        rewards = np.asarray(rewards, dtype=np.float64)
        if self.ret_rms is None:
            return rewards
        self._disc_return = self._disc_return * self.config.gamma + rewards
        self.ret_rms.update(self._disc_return[valid])
        self._disc_return[done] = 0.0
        c = self.config.clip_reward
        return np.clip(rewards / np.sqrt(self.ret_rms.var + 1e-8), -c, c)

    # ------------------------------------------------------------------ update
    def _gradient_step(self, mb: dict, clip_range, clip_range_vf, mask=None,
                       vf_coef: float | None = None) -> dict:
        """One optimizer step on a minibatch of whole sequences (no loop over time)."""
        cfg, policy = self.config, self.policy
        log_probs, entropy, values, cache = policy.evaluate(mb["obs"], mb["actions"],
                                                            mb["states"], mb["episode_starts"])
        mask = mb["valid"] if mask is None else mask
        adv = mb["advantages"]
        if cfg.normalize_advantage and mask.sum() > 1:
            a = adv[mask]
            adv = (adv - a.mean()) / (a.std() + 1e-8)
        loss, stats, dlp, dent, dv = policy_gradient_loss(
            log_probs, entropy, values, mb["log_probs"], adv, mb["returns"], mb["values"],
            mask, clip_range, clip_range_vf, cfg.ent_coef,
            cfg.vf_coef if vf_coef is None else vf_coef)
        if not np.isfinite(loss):
            self._diverged(f"the loss is {loss}")
        policy.zero_grad()
        policy.backward(dlp, dent, dv, cache)
        stats["grad_norm"] = clip_grad_norm(policy.flat_grads, cfg.max_grad_norm)
        if not np.isfinite(stats["grad_norm"]):
            self._diverged("the gradient contains NaN or inf")
        before = policy.flat_params.copy()
        self.optimizer.step()
        if not np.isfinite(policy.flat_params).all():
            policy.flat_params[...] = before
            self._diverged("a parameter became NaN or inf")
        return stats

    def _diverged(self, what: str):
        where = (f"; the last good checkpoint is {self.checkpoint_path}"
                 if self.checkpoint_path and os.path.exists(self.checkpoint_path) else "")
        raise TrainingDiverged(
            f"training diverged at timestep {self.num_timesteps}: {what}. Parameters are left "
            f"at their last finite values{where}. Try a smaller learning_rate or "
            f"max_grad_norm, or normalize_reward=True.")

    def _update(self, buf: RolloutBuffer, progress: float) -> dict:  # pragma: no cover
        raise NotImplementedError

    def _explained_variance(self, buf: RolloutBuffer) -> float:
        m = buf.valid
        y, v = buf.returns[m], buf.values[m]
        var = np.var(y)
        return float("nan") if var == 0 else float(1 - np.var(y - v) / var)

    # ------------------------------------------------------------------ learn
    @property
    def checkpoint_path(self) -> str | None:
        return None if self.config.log_dir is None else os.path.join(self.config.log_dir,
                                                                     "checkpoint.rlstm")

    def learn(self, total_timesteps: int, progress_bar: bool = False, callback=None):
        """Train for ``total_timesteps`` more env steps; see :meth:`_learn`."""
        if self.config.blas_threads is None:
            return self._learn(total_timesteps, progress_bar, callback)
        with threadpool_limits(self.config.blas_threads):
            return self._learn(total_timesteps, progress_bar, callback)

    def _learn(self, total_timesteps: int, progress_bar: bool = False, callback=None):
        """Train for ``total_timesteps`` more env steps (rounded up to whole rollouts).

        Calling it again continues the same run: weights, optimizer, normalization statistics
        and random generator carry over (the envs are reset at the start of each call).
        Ctrl-C saves ``log_dir/checkpoint.rlstm`` (when ``log_dir`` is set) and re-raises.
        """
        if not _is_int(total_timesteps) or total_timesteps < 1:
            raise ValueError(f"total_timesteps must be an int >= 1, got {total_timesteps!r}")
        self._require_env()
        cfg = self.config
        callbacks = _as_callbacks(callback)
        buf = RolloutBuffer(cfg.n_steps, cfg.n_envs, cfg.sequence_length, cfg.gamma,
                           cfg.gae_lambda)
        start_steps, t_start = self.num_timesteps, time.perf_counter()
        target = start_steps + int(total_timesteps)
        next_ckpt = start_steps + cfg.checkpoint_freq if cfg.checkpoint_freq else None
        bar = tqdm(total=int(total_timesteps), disable=not progress_bar, unit="step",
                   dynamic_ncols=True, desc=type(self).__name__)
        try:
            self._start_rollouts()
            for cb in callbacks:
                cb.on_training_start(self)
            while self.num_timesteps < target:
                progress = (self.num_timesteps - start_steps) / total_timesteps
                lr = cfg.learning_rate * (1.0 - progress if cfg.lr_schedule == "linear" else 1.0)
                self.optimizer.lr = max(lr, 1e-12)
                self._collect_rollout(buf)
                stats = self._update(buf, progress)
                self.iterations += 1
                stats["explained_variance"] = self._explained_variance(buf)
                self._log_extra = {}
                keep_going = all([cb.on_iteration(self) for cb in callbacks])
                self._log_row(stats, t_start, start_steps)
                bar.update(min(self.num_timesteps, target) - bar.n - start_steps)
                if self.episode_returns:
                    bar.set_postfix(ep_return=f"{np.mean(self.episode_returns[-100:]):.1f}",
                                    refresh=False)
                if next_ckpt is not None and self.num_timesteps >= next_ckpt:
                    self.save(self.checkpoint_path)
                    next_ckpt = self.num_timesteps + cfg.checkpoint_freq
                if not keep_going:
                    break
        except KeyboardInterrupt:
            if self.checkpoint_path:
                self.save(self.checkpoint_path)
                bar.write(f"interrupted: checkpoint saved to {self.checkpoint_path}")
            raise
        finally:
            bar.close()
        if self.checkpoint_path:
            self.save(self.checkpoint_path)
        for cb in callbacks:
            cb.on_training_end(self)
        return self

    def _log_row(self, stats: dict, t_start: float, start_steps: int) -> None:
        elapsed = time.perf_counter() - t_start
        recent = self.episode_returns[-100:]
        row = {"timesteps": self.num_timesteps, "iterations": self.iterations,
               "time_elapsed": round(elapsed, 3),
               "fps": round((self.num_timesteps - start_steps) / max(elapsed, 1e-9), 1),
               "episodes": len(self.episode_returns),
               "ep_return_mean": float(np.mean(recent)) if recent else None,
               "ep_length_mean": (float(np.mean(self.episode_lengths[-100:]))
                                  if recent else None),
               "learning_rate": self.optimizer.lr,
               **{k: stats.get(k) for k in ("loss", "pg_loss", "value_loss", "entropy",
                                             "approx_kl", "clip_fraction", "explained_variance",
                                             "grad_norm")},
               **self._log_extra}
        self.logger.log(row)

    # ------------------------------------------------------------------ inference
    def predict(self, obs, state=None, episode_start=None, deterministic: bool = False):
        """``action, state`` for one observation or a batch (as a vector env returns it).

        ``state=None`` starts a fresh episode. Pass the returned ``state`` back on the next
        call, with ``episode_start`` True for rows whose episode just began. Box actions are
        clipped to the action space.
        """
        obs, single, B = as_batch(self.observation_space, obs)
        if state is None:
            state = self.policy.initial_state(B)
            if episode_start is None:
                episode_start = np.ones(B, dtype=bool)
        if episode_start is None:
            episode_start = np.zeros(B, dtype=bool)
        episode_start = np.atleast_1d(np.asarray(episode_start, dtype=bool))
        obs = self._obs_for_policy(np.asarray(obs) if self._normalize_obs else obs, update=False)
        return act_unbatched(self.policy, self.action_space, obs, state, episode_start,
                             deterministic, self._predict_rng, single)

    # ------------------------------------------------------------------ persistence
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"policy/flat_params": self.policy.flat_params.copy(),
                  "rng": rng_state_to_array(self.rng),
                  "episode_returns": np.asarray(self.episode_returns[-100:], dtype=np.float64),
                  "episode_lengths": np.asarray(self.episode_lengths[-100:], dtype=np.int64)}
        arrays.update({f"optim/{k}": np.asarray(v)
                       for k, v in self.optimizer.state_dict().items()})
        if self.obs_rms is not None:
            arrays.update(self.obs_rms.state_dict("obs_rms/"))
        if self.ret_rms is not None:
            arrays.update(self.ret_rms.state_dict("ret_rms/"))
        return arrays

    def save(self, path) -> None:
        """Write weights, optimizer, normalization statistics, RNG and step count to ``path``
        (rlstm's pickle-free format, written atomically). Refuses non-finite parameters."""
        if not np.isfinite(self.policy.flat_params).all():
            raise TrainingDiverged("refusing to save NaN/inf parameters over a good checkpoint")
        meta = {"algorithm": type(self).__name__, "config": dataclasses.asdict(self.config),
                "seed": self.seed, "env_id": self.env_id,
                "observation_space": space_to_json(self.observation_space),
                "action_space": space_to_json(self.action_space),
                "num_timesteps": self.num_timesteps, "iterations": self.iterations}
        save_arrays(path, self._arrays(), kind=type(self).__name__, meta=meta)

    @classmethod
    def load(cls, path, env=None, **overrides):
        """Rebuild a trainer saved by :meth:`save`. ``env`` defaults to the saved Gymnasium id
        (needed only to continue training); ``overrides`` change config fields such as
        ``log_dir``. Files that are not a saved ``cls`` raise ``ValueError``."""
        try:
            arrays, header = load_arrays(path, kind=cls.__name__)
        except TypeError as e:  # e.g. a bare .npy file (np.load returns an array)
            raise ValueError(f"{path} is not an rlstm {cls.__name__} file: {e}") from e
        try:
            config = cls.config_class(**{**header["config"], **overrides})
            obs_space = space_from_json(header["observation_space"])
            act_space = space_from_json(header["action_space"])
            seed, num_timesteps = header["seed"], int(header["num_timesteps"])
        except (KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a valid {cls.__name__} file: {e}") from e
        self = cls.__new__(cls)
        self.config, self.seed = config, seed
        env = header.get("env_id") if env is None else env
        self.env_id = env_id(env) if env is not None else None
        self._env_fn = make_env_fn(env) if env is not None else None
        self._setup(obs_space, act_space)
        try:
            self.policy.set_flat_params(arrays["policy/flat_params"])
            self.optimizer.load_state_dict({k[6:]: v for k, v in arrays.items()
                                            if k.startswith("optim/")})
            if self.obs_rms is not None:
                self.obs_rms.load_state_dict(arrays, "obs_rms/")
            if self.ret_rms is not None:
                self.ret_rms.load_state_dict(arrays, "ret_rms/")
            self.rng = rng_from_array(arrays["rng"])
        except (KeyError, ValueError) as e:
            raise ValueError(f"{path} is not a valid {cls.__name__} file: {e}") from e
        self.num_timesteps, self.iterations = num_timesteps, int(header["iterations"])
        self.episode_returns = arrays["episode_returns"].tolist()
        self.episode_lengths = arrays["episode_lengths"].tolist()
        return self

    def _require_env(self) -> None:
        if self._env_fn is None:
            raise ValueError("this model was loaded without an env; pass env= to load() to "
                             "continue training")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(env={self.env_id!r}, timesteps={self.num_timesteps}, "
                f"params={self.policy.num_params})")
