"""What every evolution trainer shares: the config, the rollout worker and the generation loop.

A generation, top to bottom (``EvolutionTrainer._generation``):

1. the strategy *asks* for members: a payload every member shares (center, step sizes) and one
   small job per member (noise index and sign, a seed list, or a vector for CMA-ES);
2. the trainer adds the center's own evaluation, episode seeds (antithetic pairs share theirs)
   and which members record observation statistics, and the backend evaluates every job;
3. the strategy is *told* the fitnesses and moves its center;
4. the observation statistics recorded in step 2 are folded in and ship with the next payload.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np

from agents.backends import make_backend
from agents.base import RunLogger
from agents.common import (RunningMeanStd, env_id, make_env_fn, rng_from_array,
                           rng_state_to_array)
from agents.noise import NoiseTable
from rlstm.validation import check_dtype, check_int
from rlstm.serialization import load_arrays, save_arrays

__all__ = ["EvolutionConfig", "EvolutionTrainer", "Evaluator", "centered_ranks"]


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Fitness shaping of Salimans et al.: ranks scaled to [-0.5, 0.5] (ties get distinct ranks).

    ``centered_ranks([1, 5, 3]) == [-0.5, 0.5, 0.0]``; the shape of ``x`` is kept.
    """
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(-1)
    if flat.size < 2:
        return np.zeros_like(x)
    ranks = np.empty(flat.size, dtype=np.float64)
    ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    return (ranks / (flat.size - 1) - 0.5).reshape(x.shape)


@dataclass
class EvolutionConfig:
    """Settings every evolution trainer shares. Subclasses add the strategy's own."""

    population_size: int = 64
    """Members evaluated per generation (antithetic strategies round it up to an even number)."""
    episodes_per_member: int = 1
    """Episodes each member plays per generation; its fitness is their mean return."""
    max_episode_steps: int | None = None
    """Cap on episode length (None: the env's own TimeLimit, or 10000 steps without one)."""
    center_episodes: int = 5
    """Episodes of the center (the current solution) per generation, for logging and early stop."""
    reward_threshold: float | None = None
    """Stop ``learn`` once the center's mean return reaches this (None: never stop early)."""
    hidden_size: int = 16
    """LSTM units of the policy core (small nets evolve fastest)."""
    num_layers: int = 1
    """LSTM layers of the policy core."""
    policy_kwargs: dict = field(default_factory=dict)
    """More keyword arguments for ``rlstm.policy.LSTMPolicy``."""
    dtype: str = "float32"
    """Policy dtype: "float32" or "float64"."""
    normalize_obs: bool = True
    """Normalise Box observations by running statistics (shipped with the center)."""
    obs_norm_fraction: float = 0.05
    """Fraction of members whose rollouts feed the observation statistics (at least one)."""
    noise_table_size: int = 2 ** 24
    """Numbers in the shared noise table (float32; 2**24 is 64 MB, shared by forked workers)."""
    noise_seed: int = 123
    """Seed of the shared noise table (every worker rebuilds the same table from it)."""
    log_every: int = 1
    """Write a CSV/TensorBoard row every this many generations."""
    log_dir: str | None = None
    """Folder for progress.csv, learning_curve.png, TensorBoard events and checkpoints."""
    checkpoint_freq: int = 0
    """Write ``log_dir/checkpoint.rlstm`` every this many timesteps (0: only at the end of
    ``learn`` and on Ctrl-C). Needs ``log_dir``."""
    tensorboard: bool = True
    """Write TensorBoard events to ``log_dir`` when tensorboard or tensorboardX is installed."""

    def validate(self) -> None:
        check_int("population_size", self.population_size, 2)
        check_int("episodes_per_member", self.episodes_per_member, 1)
        if self.max_episode_steps is not None:
            check_int("max_episode_steps", self.max_episode_steps, 1)
        check_int("center_episodes", self.center_episodes, 0)
        check_int("hidden_size", self.hidden_size, 1)
        check_int("num_layers", self.num_layers, 1)
        check_dtype(self.dtype)
        if not 0 < self.obs_norm_fraction <= 1:
            raise ValueError(f"obs_norm_fraction must be in (0, 1], got "
                             f"{self.obs_norm_fraction}; 0.01-0.1 is typical")
        check_int("noise_table_size", self.noise_table_size, 1)
        check_int("noise_seed", self.noise_seed, 0)
        check_int("log_every", self.log_every, 1)
        check_int("checkpoint_freq", self.checkpoint_freq, 0)
        if self.checkpoint_freq and self.log_dir is None:
            raise ValueError("checkpoint_freq needs log_dir: set log_dir='runs/my-run'")
        if self.log_dir is not None and not isinstance(self.log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be a path or None, got {self.log_dir!r}")
        if not isinstance(self.policy_kwargs, dict):
            raise TypeError("policy_kwargs must be a dict of LSTMPolicy keyword arguments")
        if self.reward_threshold is not None and not np.isfinite(float(self.reward_threshold)):
            raise ValueError("reward_threshold must be a finite number or None")


# ---------------------------------------------------------------------------------- rollouts
def _row(actions, i):
    """Row ``i`` of a batched Tuple/Dict action structure (nested)."""
    if isinstance(actions, tuple):
        return tuple(_row(a, i) for a in actions)
    if isinstance(actions, dict):
        return {k: _row(a, i) for k, a in actions.items()}
    return actions[i]


def _take(obs, rows):
    """Rows of a batched observation (array, or Dict/Tuple of them)."""
    if isinstance(obs, dict):
        return {k: _take(v, rows) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_take(v, rows) for v in obs)
    return obs[rows]


class Evaluator:
    """The worker object: materialises members from small jobs and plays their episodes.

    All members of one call, and all their episodes, run in lockstep: one
    :class:`rlstm.population.PopulationPolicy` call per time step advances every member's LSTM
    with its own weights. Only envs whose episode is still running are stepped.

    A job is a tuple ``(kind, data, seeds, record)``:

    - ``("center", None, ...)``: the payload's center;
    - ``("noise", (index, sign), ...)``: ``center + sign * sigma * noise[index:index + n]``
      (``sigma`` a scalar or a per-parameter vector, optionally times ``payload["mask"]``);
    - ``("genome", indices, ...)``: ``base + sigma * sum_k noise[indices[k]:... + n]`` (GA);
    - ``("vector", theta, ...)``: the vector itself (CMA-ES);

    ``seeds`` are the episode seeds, ``record`` whether to return observation statistics.
    A call returns, per job, ``(mean_return, steps, episode_returns, obs_stats_or_None)``.
    """

    def __init__(self, env_fn: Callable, template, noise_spec: dict,
                 max_episode_steps: int, normalize_obs: bool):
        self.env_fn = env_fn
        self.template = template
        self.noise_spec = noise_spec
        self.max_episode_steps = int(max_episode_steps)
        self.normalize_obs = bool(normalize_obs)
        self._envs: list = []
        self._noise = None
        self._genomes: dict[tuple, np.ndarray] = {}

    def __getstate__(self):
        """For Ray (cloudpickle): the template travels as its recipe, because pickling a
        module's arrays separately would break their views into ``flat_params``."""
        d = dict(self.__dict__)
        d["_envs"], d["_noise"], d["_genomes"] = [], None, {}
        t = d.pop("template")
        d["_template_recipe"] = (t.observation_space, t.action_space, t.config(),
                                 t.flat_params.copy())
        return d

    def __setstate__(self, d):
        from rlstm.policy import LSTMPolicy
        obs_space, act_space, config, flat = d.pop("_template_recipe")
        self.__dict__.update(d)
        self.template = LSTMPolicy(obs_space, act_space, **config)
        self.template.flat_params[...] = flat

    @property
    def noise(self) -> NoiseTable:
        if self._noise is None:
            self._noise = NoiseTable(**self.noise_spec)
        return self._noise

    # -- members
    def materialize(self, payload: dict, kind: str, data) -> np.ndarray:
        n = payload["center"].size if "center" in payload else payload["base"].size
        if kind == "center":
            return payload["center"]
        if kind == "noise":
            index, sign = data
            eps = self.noise.get(index, n)
            step = payload["sigma"] * eps
            if payload.get("mask") is not None:
                step = step * payload["mask"]
            return payload["center"] + sign * step
        if kind == "genome":
            return self.genome_params(payload["base"], payload["sigma"], tuple(data))
        if kind == "vector":
            return np.asarray(data, dtype=np.float64)
        raise ValueError(f"unknown job kind {kind!r}")

    def genome_params(self, base: np.ndarray, sigma: float, genome: tuple) -> np.ndarray:
        """``base + sigma * sum(noise[i] for i in genome)``, reusing the parent's vector."""
        key = (base.size, float(sigma), genome)
        hit = self._genomes.get(key)
        if hit is not None:
            return hit
        if not genome:
            theta = np.asarray(base, dtype=np.float64).copy()
        else:
            parent = self.genome_params(base, sigma, genome[:-1])
            theta = parent + sigma * self.noise.get(genome[-1], base.size)
        if len(self._genomes) > 4096:
            self._genomes.clear()
        self._genomes[key] = theta
        return theta

    # -- episodes
    def _env_pool(self, n: int) -> list:
        while len(self._envs) < n:
            self._envs.append(self.env_fn())
        return self._envs[:n]

    def evaluate(self, payload: dict, jobs: list) -> list:

        out: list = [None] * len(jobs)
        by_count: dict[int, list[int]] = {}
        for k, job in enumerate(jobs):  # members with equal episode counts run together
            by_count.setdefault(len(job[2]), []).append(k)
        n_params = self.template.flat_params.size
        for E, ks in by_count.items():
            P = len(ks)
            params = np.empty((P, n_params), dtype=self.template.flat_params.dtype)
            for row, k in enumerate(ks):
                params[row] = self.materialize(payload, jobs[k][0], jobs[k][1])
            seeds = np.asarray([jobs[k][2] for k in ks], dtype=np.int64).reshape(P * E)
            record = np.repeat(np.asarray([bool(jobs[k][3]) for k in ks]), E)
            returns, lengths, stats = self.rollout(params, seeds, record,
                                                   payload.get("obs_mean"),
                                                   payload.get("obs_std"))
            returns, lengths = returns.reshape(P, E), lengths.reshape(P, E)
            for row, k in enumerate(ks):
                out[k] = (float(returns[row].mean()), int(lengths[row].sum()),
                          returns[row].copy(), stats[row] if jobs[k][3] else None)
        return out

    def rollout(self, params: np.ndarray, seeds: np.ndarray, record: np.ndarray,
                obs_mean=None, obs_std=None):
        """Play one episode per row of ``seeds`` (members own ``len(seeds) // P`` rows each)."""
        from rlstm.population import PopulationPolicy

        P = params.shape[0]
        n = seeds.size
        E = n // P
        envs = self._env_pool(n)
        first = [env.reset(seed=int(s))[0] for env, s in zip(envs, seeds)]
        ospace = envs[0].observation_space
        flat_obs = isinstance(ospace, (gym.spaces.Box, gym.spaces.Discrete,
                                       gym.spaces.MultiDiscrete, gym.spaces.MultiBinary))
        if flat_obs:  # one array, rows overwritten in place
            obs = np.stack([np.asarray(o) for o in first])
        else:  # Dict / Tuple observations: batched by Gymnasium's own helpers
            from gymnasium.vector.utils import concatenate, create_empty_array
            obs_list = list(first)
            obs_buf = create_empty_array(ospace, n)
            obs = concatenate(ospace, obs_list, obs_buf)
        pop = PopulationPolicy(self.template, params, batch_per_member=E)
        state = pop.initial_state()
        norm = self.normalize_obs and obs_mean is not None and flat_obs
        returns = np.zeros(n, dtype=np.float64)
        lengths = np.zeros(n, dtype=np.int64)
        active = np.ones(n, dtype=bool)
        dim = int(np.prod(obs.shape[1:])) if (self.normalize_obs and flat_obs) else 0
        s1 = np.zeros((P, dim))
        s2 = np.zeros((P, dim))
        cnt = np.zeros(P)
        rec_rows = np.flatnonzero(record)
        space = envs[0].action_space
        box = isinstance(space, gym.spaces.Box)
        rows = np.arange(n)      # env rows the population covers now (member-major)
        members = np.arange(P)   # the members it holds now
        for _ in range(self.max_episode_steps):
            if rec_rows.size and dim:
                live = rec_rows[active[rec_rows]]
                flat = obs[live].reshape(live.size, dim).astype(np.float64)
                np.add.at(s1, live // E, flat)
                np.add.at(s2, live // E, flat * flat)
                np.add.at(cnt, live // E, 1)
            xo = obs if rows.size == n else _take(obs, rows)
            x = (xo - obs_mean) / obs_std if norm else xo
            if norm:
                np.clip(x, -10.0, 10.0, out=x)
            actions, state = pop.act(x, state)
            if box:
                actions = np.clip(actions, space.low, space.high)
            if isinstance(actions, np.ndarray) and actions.ndim == 1:
                actions = actions.tolist()  # Python ints pass Discrete.contains fastest
            for j in np.flatnonzero(active[rows]):
                i = rows[j]
                a = _row(actions, j) if isinstance(actions, (tuple, dict)) else actions[j]
                o, r, term, trunc, _ = envs[i].step(a)
                if flat_obs:
                    obs[i] = o
                else:
                    obs_list[i] = o
                returns[i] += float(r)
                lengths[i] += 1
                if term or trunc:
                    active[i] = False
            if not active.any():
                break
            if not flat_obs:
                obs = concatenate(ospace, obs_list, obs_buf)
            # once half the members are done, drop them: the kernel then steps only the rest
            alive = active[rows].reshape(-1, E).any(axis=1)
            if alive.sum() <= alive.size // 2:
                keep = np.flatnonzero(alive)
                local = (keep[:, None] * E + np.arange(E)).reshape(-1)
                members, rows = members[keep], rows[local]
                pop = PopulationPolicy(self.template, params[members], batch_per_member=E)
                state = tuple(np.ascontiguousarray(s[:, local]) for s in state)
        stats = [(cnt[k], s1[k], s2[k]) for k in range(P)]
        return returns, lengths, stats


# ---------------------------------------------------------------------------------- logging
class _Logger(RunLogger):
    """One CSV row per generation; TensorBoard when installed; the PNG by agents.plotting.

    The population's mean return is logged as ``ep_return_mean`` and the center's as
    ``eval_return_mean``/``eval_return_std``, the column names the policy-gradient trainers and
    :func:`agents.plotting.plot_learning_curve` use.
    """

    FIELDS = ["generation", "timesteps", "time_elapsed", "fps", "ep_return_mean",
              "ep_return_max", "ep_return_min", "eval_return_mean", "eval_return_std",
              "steps", "sigma_mean"]
    TB_PREFIX = "evolution/"

    def plot(self, title: str) -> str | None:
        if self.csv_path is None or not self.rows:
            return None
        from agents.plotting import plot_learning_curve
        return plot_learning_curve(self.csv_path, os.path.join(self.log_dir,
                                                               "learning_curve.png"), title)


# ---------------------------------------------------------------------------------- trainer
class EvolutionTrainer:
    """Base of the evolution trainers: the agents interface of API.md around a strategy.

    A strategy subclass sets ``config_class`` and implements ``_init_strategy``, ``_ask``,
    ``_tell``, ``_strategy_state`` / ``_load_strategy_state`` and the ``center`` property.
    """

    config_class = EvolutionConfig
    kind = "Evolution"
    default_env = "CartPole-v1"
    """What ``rlstm train es`` trains on when no env is given."""
    default_timesteps = 1_000_000

    def __init__(self, env: Any, config: EvolutionConfig | None = None, *,
                 seed: int | None = None, backend: str | None = None,
                 n_workers: int | None = None, address: str | None = None,
                 verbose: int = 0, **overrides):
        if config is None:
            config = self.config_class()
        if not isinstance(config, self.config_class):
            raise TypeError(f"config must be a {self.config_class.__name__}, got "
                            f"{type(config).__name__}")
        names = {f.name for f in dataclasses.fields(config)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise TypeError(f"unknown {self.config_class.__name__} fields {bad}; valid: "
                            f"{sorted(names)}")
        self.config = dataclasses.replace(config, **overrides)
        self.config.validate()
        if seed is not None:
            check_int("seed", seed, 0)
        self.seed = seed
        self.env = env
        self.env_fn = make_env_fn(env)
        self.env_id = env_id(env)
        self.backend_name, self.n_workers, self.address = backend, n_workers, address
        if backend is not None and backend not in ("serial", "process", "ray"):
            raise ValueError(f"backend must be 'serial', 'process' or 'ray', got {backend!r}")
        self.verbose = verbose

        probe = self.env_fn()
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        cap = self.config.max_episode_steps
        if cap is None:
            spec = getattr(probe, "spec", None)
            cap = (spec.max_episode_steps if spec is not None and spec.max_episode_steps
                   else 10000)
        self.max_episode_steps = int(cap)
        probe.close()

        from rlstm.policy import LSTMPolicy
        cfg = self.config
        self.policy = LSTMPolicy(self.observation_space, self.action_space,
                                 hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                                 dtype=np.dtype(cfg.dtype), seed=seed, **cfg.policy_kwargs)
        self.num_params = int(self.policy.flat_params.size)
        self.rng = np.random.default_rng(seed)
        self._predict_rng = np.random.default_rng(None if seed is None else seed + 1)
        self.noise = NoiseTable(cfg.noise_table_size, cfg.noise_seed, np.float32)
        self.noise.check_dim(self.num_params)
        box_obs = getattr(self.observation_space, "dtype", None) is not None and \
            self.observation_space.dtype.kind == "f" and self.observation_space.shape
        self.obs_rms = RunningMeanStd(self.observation_space.shape) \
            if (cfg.normalize_obs and box_obs) else None
        self.generation = 0
        self.num_timesteps = 0
        self.best_return = -np.inf
        self.last_center_return = -np.inf
        self.solved = False
        self._backend = None
        self._logger = _Logger(self.config.log_dir, self.config.tensorboard)
        self._log_extra: dict[str, float] = {}
        self.last_row: dict | None = None
        self._init_strategy()
        self._sync_policy()

    # ------------------------------------------------------------------ strategy hooks
    def _init_strategy(self) -> None:
        raise NotImplementedError

    def _ask(self) -> tuple[dict, list, list, Any]:
        """Return ``(payload, member_jobs as (kind, data), seed_group per member, ctx)``."""
        raise NotImplementedError

    def _tell(self, ctx: Any, fitness: np.ndarray) -> None:
        raise NotImplementedError

    def _strategy_state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _load_strategy_state(self, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError

    @property
    def center(self) -> np.ndarray:
        """The current solution (float64), loaded into :attr:`policy` after each generation."""
        raise NotImplementedError

    # ------------------------------------------------------------------ plumbing
    def _sync_policy(self) -> None:
        self.policy.flat_params[...] = self.center.astype(self.policy.flat_params.dtype)

    def _obs_payload(self) -> dict:
        if self.obs_rms is None:
            return {}
        return {"obs_mean": self.obs_rms.mean.astype(self.policy.flat_params.dtype),
                "obs_std": np.sqrt(self.obs_rms.var + 1e-8).astype(self.policy.flat_params.dtype)}

    def _evaluator(self) -> Evaluator:
        return Evaluator(self.env_fn, self.policy, self.noise.spec(), self.max_episode_steps,
                         self.obs_rms is not None)

    @property
    def backend(self):
        if self._backend is None:
            kwargs = {"address": self.address} if self.backend_name == "ray" else {}
            self._backend = make_backend(self.backend_name, self._evaluator(), self.n_workers,
                                         **kwargs)
        return self._backend

    def close(self) -> None:
        """Stop the worker processes / actors (a later ``learn`` starts new ones)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # ------------------------------------------------------------------ one generation
    def _generation(self) -> dict:
        cfg = self.config
        payload, members, groups, ctx = self._ask()
        payload.update(self._obs_payload())
        E = cfg.episodes_per_member
        groups = np.asarray(groups, dtype=np.int64)
        n_groups = int(groups.max()) + 1 if groups.size else 0
        group_seeds = self.rng.integers(0, 2 ** 31 - 1, size=(n_groups, E))
        n = len(members)
        record = self.rng.random(n) < cfg.obs_norm_fraction
        record[self.rng.integers(n)] = True
        jobs = [(kind, data, group_seeds[g].tolist(), bool(rec))
                for (kind, data), g, rec in zip(members, groups, record)]
        if cfg.center_episodes:
            jobs.append(("center", None,
                         self.rng.integers(0, 2 ** 31 - 1, size=cfg.center_episodes).tolist(),
                         False))
        results = self._map(payload, jobs)
        fitness = np.array([r[0] for r in results[:n]])
        steps = int(sum(r[1] for r in results))
        center_return = results[n][0] if cfg.center_episodes else float(fitness.max())
        center_std = float(np.std(results[n][2])) if cfg.center_episodes else 0.0
        self._tell(ctx, fitness)
        if self.obs_rms is not None:
            for r in results[:n]:
                if r[3] is not None and r[3][0] > 0:
                    c, s1, s2 = r[3]
                    mean = s1 / c
                    var = np.maximum(s2 / c - mean * mean, 0.0)
                    self.obs_rms.update_from_moments(mean.reshape(self.obs_rms.mean.shape),
                                                     var.reshape(self.obs_rms.var.shape), c)
        self._sync_policy()
        self.generation += 1
        self.num_timesteps += steps
        self.last_center_return = float(center_return)
        self.best_return = max(self.best_return, float(fitness.max()))
        sigma = getattr(self, "_sigma", getattr(self.config, "sigma", None))
        return {"generation": self.generation, "timesteps": self.num_timesteps,
                "ep_return_mean": float(fitness.mean()), "ep_return_max": float(fitness.max()),
                "ep_return_min": float(fitness.min()), "eval_return_mean": float(center_return),
                "eval_return_std": float(center_std), "steps": steps,
                "sigma_mean": None if sigma is None else float(np.mean(sigma))}

    def _map(self, payload: dict, jobs: list) -> list:
        """Center jobs need ``center`` in the payload even for strategies that ship a base."""
        if "center" not in payload:
            payload = {**payload, "center": self.center}
        return self.backend.map(payload, jobs)

    # ------------------------------------------------------------------ public API
    def learn(self, total_timesteps: int, progress_bar: bool = False, callback=None):
        """Evolve for ``total_timesteps`` more environment steps (or until the threshold).

        ``callback``: an ``agents.base.Callback`` (e.g. ``EvalCallback``,
        ``CheckpointCallback``), a callable ``f(model)`` or a list of them; returning ``False``
        stops after the current generation. Ctrl-C writes ``log_dir/checkpoint.rlstm``.
        """
        from tqdm.auto import tqdm

        from agents.base import _as_callbacks
        total_timesteps = check_int("total_timesteps", total_timesteps, 1)
        callbacks = _as_callbacks(callback)
        cfg = self.config
        target = self.num_timesteps + total_timesteps
        t0, start = time.perf_counter(), self.num_timesteps
        next_ckpt = self.num_timesteps + cfg.checkpoint_freq
        bar = tqdm(total=total_timesteps, disable=not progress_bar, unit="step",
                   desc=type(self).__name__)
        for cb in callbacks:
            cb.on_training_start(self)
        try:
            while self.num_timesteps < target:
                row = self._generation()
                elapsed = time.perf_counter() - t0
                row["time_elapsed"] = round(elapsed, 3)
                row["fps"] = round((self.num_timesteps - start) / max(elapsed, 1e-9), 1)
                bar.update(max(0, min(self.num_timesteps, target) - start - bar.n))
                bar.set_postfix(center=f"{row['eval_return_mean']:.1f}",
                                mean=f"{row['ep_return_mean']:.1f}")
                self.last_row = row  # what callbacks read (logged right after them)
                stop = not all([cb.on_iteration(self) for cb in callbacks])
                row.update(self._log_extra)
                self._log_extra.clear()
                if self.generation % cfg.log_every == 0:
                    self._logger.log(row)
                if self.verbose:
                    print(json.dumps(row))
                if cfg.checkpoint_freq and self.num_timesteps >= next_ckpt:
                    self.save(self.checkpoint_path)
                    next_ckpt = self.num_timesteps + cfg.checkpoint_freq
                if cfg.reward_threshold is not None and \
                        row["eval_return_mean"] >= cfg.reward_threshold:
                    self.solved = True
                    break
                if stop:
                    break
        except KeyboardInterrupt:
            if self.checkpoint_path is not None:
                self.save(self.checkpoint_path)
            raise
        finally:
            bar.close()
        for cb in callbacks:
            cb.on_training_end(self)
        if self.checkpoint_path is not None:
            self.save(self.checkpoint_path)
            self._logger.plot(f"{type(self).__name__} on {self.env_id or 'env'}")
        return self

    @property
    def history(self) -> list[dict]:
        """The logged rows of every generation so far (what progress.csv holds)."""
        return self._logger.rows

    @property
    def checkpoint_path(self) -> str | None:
        d = self.config.log_dir
        return None if d is None else os.path.join(d, "checkpoint.rlstm")

    def predict(self, obs, state=None, episode_start=None, deterministic: bool = False):
        """``action, state`` for one observation or a batch (normalised as in training).

        Evolution evaluates the deterministic policy (the mode of each head), so pass
        ``deterministic=True`` to act as the trainer scored it; ``False`` samples (from a
        generator of its own: predicting never changes the training run). Box actions are
        clipped to the action space.
        """
        from agents.base import act_unbatched, as_batch
        obs, single, B = as_batch(self.observation_space, obs)
        if self.obs_rms is not None:
            obs = np.clip((np.asarray(obs) - self.obs_rms.mean) / np.sqrt(self.obs_rms.var + 1e-8),
                          -10, 10)
        if state is None:
            state = self.policy.initial_state(B)
        starts = None if episode_start is None else \
            np.atleast_1d(np.asarray(episode_start, dtype=bool))
        return act_unbatched(self.policy, self.action_space, obs, state, starts, deterministic,
                             self._predict_rng, single)

    # ------------------------------------------------------------------ save / load
    def save(self, path: str) -> None:
        """Everything needed to continue the run: center, optimizer state, normalisation
        statistics, generation, timesteps and RNG state (pickle-free, ``rlstm.serialization``)."""
        arrays = {"policy_params": self.policy.flat_params,
                  "rng": rng_state_to_array(self.rng)}
        if self.obs_rms is not None:
            arrays.update(self.obs_rms.state_dict("obs_rms_"))
        for k, v in self._strategy_state().items():
            arrays["strategy_" + k] = v
        cfg = dataclasses.asdict(self.config)
        meta = {"config": cfg, "env_id": self.env_id, "seed": self.seed,
                "generation": self.generation, "num_timesteps": self.num_timesteps,
                "best_return": None if not np.isfinite(self.best_return) else self.best_return,
                "max_episode_steps": self.max_episode_steps}
        save_arrays(path, arrays, kind=self.kind, meta=meta)

    @classmethod
    def load(cls, path: str, env: Any = None, *, backend: str | None = None,
             n_workers: int | None = None, address: str | None = None, **overrides):
        """Rebuild a trainer from :meth:`save`; ``env`` is needed unless saved by id.

        ``overrides`` change config fields for the continued run (e.g. ``log_dir``).
        """
        arrays, header = load_arrays(path, kind=cls.kind)
        env = env if env is not None else header.get("env_id")
        if env is None:
            raise ValueError(f"{path} was trained on an env given as a callable or class; pass "
                             f"env= to load it")
        cfg_dict = header.get("config")
        if not isinstance(cfg_dict, dict):
            raise ValueError(f"{path} has no trainer config in its header")
        names = {f.name for f in dataclasses.fields(cls.config_class)}
        config = cls.config_class(**{k: v for k, v in cfg_dict.items() if k in names})
        model = cls(env, config, seed=header.get("seed"), backend=backend,
                    n_workers=n_workers, address=address, **overrides)
        if arrays["policy_params"].shape != model.policy.flat_params.shape:
            raise ValueError(f"{path} holds {arrays['policy_params'].size} policy parameters, "
                             f"the rebuilt policy has {model.num_params}")
        model._load_strategy_state({k[len("strategy_"):]: v for k, v in arrays.items()
                                    if k.startswith("strategy_")})
        if model.obs_rms is not None:
            model.obs_rms.load_state_dict(arrays, "obs_rms_")
        model.rng = rng_from_array(arrays["rng"])
        model.generation = int(header["generation"])
        model.num_timesteps = int(header["num_timesteps"])
        best = header.get("best_return")
        model.best_return = -np.inf if best is None else float(best)
        model._sync_policy()
        return model
