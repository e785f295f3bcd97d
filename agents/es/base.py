"""What every evolution trainer shares: the config and the generation.

One iteration of :class:`EvolutionTrainer` is one generation:

1. the strategy *asks* for members: a payload every member shares (center, step sizes) and one
   small job per member (noise index and sign, a seed list, or a vector for CMA-ES);
2. the trainer adds the center's own evaluation, episode seeds (antithetic pairs share theirs),
   which members record observation statistics and the observation normaliser, and the backend
   evaluates every job (:mod:`agents.es.worker`, on :mod:`agents.backends`);
3. the strategy is *told* the fitnesses and moves its center;
4. the observation statistics recorded in step 2 are folded in and ship with the next payload.

A strategy subclass sets ``config_class`` and implements ``_init_strategy``, ``_ask``,
``_tell``, ``_strategy_state`` / ``_load_strategy_state`` and the ``center`` property.
Workers start at the first generation, never at construction or ``load``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np

from agents.backends import make_backend
from agents.config import AtLeast1, Range, TrainerConfig
from agents.logger import COMMON_FIELDS
from agents.trainer import Trainer

from .noise import MAX_NOISE_TABLE, NoiseTable
from .worker import Evaluator

__all__ = ["EvolutionConfig", "EvolutionTrainer"]


@dataclass
class EvolutionConfig(TrainerConfig):
    """Settings every evolution trainer shares (plus those of
    :class:`agents.config.TrainerConfig`). Subclasses add the strategy's own."""

    hidden_size: AtLeast1 = 16
    """LSTM units of the policy core (small nets evolve fastest)."""
    population_size: Annotated[int, Range(2)] = 64
    """Members evaluated per generation."""
    episodes_per_member: AtLeast1 = 1
    """Episodes each member plays per generation; its fitness is their mean return."""
    max_episode_steps: AtLeast1 | None = None
    """Cap on episode length (None: the env's own TimeLimit, or 10000 steps without one)."""
    center_episodes: Annotated[int, Range(0)] = 10
    """Episodes of the center (the current solution) per generation, for logging and early
    stop (with 5, a lucky center stopped 2 of 9 CartPole runs early; with 10, 0 of 9)."""
    reward_threshold: float | None = None
    """Stop ``learn`` once the center's mean return reaches this (None: never stop early)."""
    obs_norm_fraction: Annotated[float, Range(0, 1, low_open=True)] = 0.05
    """Fraction of members whose rollouts feed the observation statistics (at least one)."""
    noise_table_size: Annotated[int, Range(1, MAX_NOISE_TABLE)] = 2 ** 24
    """Numbers in the shared noise table (float32; 2**24 is 64 MB, shared by forked
    workers)."""
    noise_seed: Annotated[int, Range(0)] = 123
    """Seed of the shared noise table (every worker rebuilds the same table from it)."""
    backend: Literal["serial", "process", "ray"] | None = None
    """Where members are evaluated (:mod:`agents.backends`); None: ``"process"`` with more
    than one core, else ``"serial"``."""


class EvolutionTrainer(Trainer):
    """Base of the evolution trainers: a strategy (ask, tell, its state) on the trainer core."""

    config_class = EvolutionConfig
    default_env = "CartPole-v1"
    default_timesteps = 1_000_000
    log_fields = COMMON_FIELDS + ["ep_return_max", "ep_return_min", "steps", "sigma_mean"]
    curve_label = "population mean return (per generation)"

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

    # ------------------------------------------------------------------ the trainer's hooks
    def _inspect_env(self, source) -> None:
        env = source.copies(f"{type(self).__name__}'s population of episodes")()
        try:
            cap = self.config.max_episode_steps
            if cap is None:
                spec = getattr(env, "spec", None)
                cap = spec.max_episode_steps if spec is not None and spec.max_episode_steps \
                    else 10000
            self.max_episode_steps = int(cap)
        finally:
            env.close()

    def _load_env_meta(self, meta: dict) -> None:
        self.max_episode_steps = int(meta.get("max_episode_steps") or 10000)

    def _init_algorithm(self) -> None:
        self.num_params = int(self.policy.num_params)
        if self.num_params > self.config.noise_table_size:
            raise ValueError(f"the noise table holds {self.config.noise_table_size} numbers, "
                             f"fewer than the policy's {self.num_params} parameters; pass "
                             f"noise_table_size >= {self.num_params} (ideally >= 100x more)")
        self._noise = None
        self._backend = None
        self.best_return = -np.inf
        self.last_center_return = -np.inf
        self.solved = False
        self._init_strategy()
        self._sync_policy()

    def _iteration(self, progress: float) -> dict:
        return self._generation()

    def _finite(self) -> bool:
        return super()._finite() and bool(np.isfinite(self.center).all())

    def _done(self, row: dict) -> bool:
        threshold = self.config.reward_threshold
        if threshold is not None and row["eval_return_mean"] >= threshold:
            self.solved = True
            return True
        return False

    def _algorithm_state(self) -> dict[str, np.ndarray]:
        return self._strategy_state()

    def _algorithm_meta(self) -> dict:
        return {"max_episode_steps": self.max_episode_steps,
                "best_return": float(self.best_return) if np.isfinite(self.best_return)
                else None}

    def _load_algorithm_state(self, arrays: dict, meta: dict) -> None:
        self._load_strategy_state(arrays)
        best = meta.get("best_return")
        self.best_return = -np.inf if best is None else float(best)
        self._sync_policy()

    # ------------------------------------------------------------------ plumbing
    @property
    def generation(self) -> int:
        """Generations so far (the iterations of an evolution trainer)."""
        return self.iterations

    @property
    def noise(self) -> NoiseTable:
        """The shared noise table (built at first use: loading to predict needs none)."""
        if self._noise is None:
            cfg = self.config
            self._noise = NoiseTable(cfg.noise_table_size, cfg.noise_seed, np.float32)
        return self._noise

    def _sync_policy(self) -> None:
        self.policy.flat_params[...] = self.center.astype(self.policy.flat_params.dtype)

    def _evaluator(self) -> Evaluator:
        env_fn = self._require_env().copies(f"{type(self).__name__}'s population of episodes")
        return Evaluator(env_fn, self.policy, self.noise.spec(),
                         self.max_episode_steps, env_name=self.env_id or "the env")

    @property
    def backend(self):
        """The worker pool (started at first use)."""
        if self._backend is None:
            cfg = self.config
            kwargs = {"address": cfg.address} if cfg.backend == "ray" else {}
            evaluator = self._evaluator()
            self._backend = make_backend(cfg.backend, lambda k: evaluator, cfg.n_workers,
                                         **kwargs)
        return self._backend

    def close(self) -> None:
        """Stop the worker processes / actors (a later ``learn`` starts new ones)."""
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        super().close()

    # ------------------------------------------------------------------ one generation
    def _generation(self) -> dict:
        cfg = self.config
        payload, members, groups, ctx = self._ask()
        if self.obs_normalizer is not None:
            payload["obs_normalizer"] = copy.deepcopy(self.obs_normalizer)
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
        if self.obs_normalizer is not None:
            for r in results[:n]:
                if r[3] is not None and r[3][0] > 0:
                    c, s1, s2 = r[3]
                    mean = s1 / c
                    var = np.maximum(s2 / c - mean * mean, 0.0)
                    self.obs_normalizer.update_from_moments(
                        mean.reshape(self.obs_normalizer.mean.shape),
                        var.reshape(self.obs_normalizer.var.shape), c)
        self._sync_policy()
        self.num_timesteps += steps
        self.last_center_return = float(center_return)
        self.best_return = max(self.best_return, float(fitness.max()))
        sigma = getattr(self, "_sigma", getattr(self.config, "sigma", None))
        return {"ep_return_mean": float(fitness.mean()), "ep_return_max": float(fitness.max()),
                "ep_return_min": float(fitness.min()), "eval_return_mean": float(center_return),
                "eval_return_std": float(center_std), "steps": steps,
                "sigma_mean": None if sigma is None else float(np.mean(sigma))}

    def _map(self, payload: dict, jobs: list) -> list:
        """Center jobs need ``center`` in the payload even for strategies that ship a base."""
        if "center" not in payload:
            payload = {**payload, "center": self.center}
        return self.backend.map(payload, jobs)
