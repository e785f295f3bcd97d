"""The deep GA of Such et al. (2017): truncation selection, elitism, Gaussian mutation.

A genome is a list of noise-table indices ``[i_1, ..., i_g]``; its weights are
``theta_0 + sigma * sum_k noise[i_k:i_k + d]`` with ``theta_0`` the policy's initial weights.
Only these index lists cross the wire; workers rebuild weights (caching parents).

Per generation: the ``truncation`` best genomes are parents; the elite (the best genome of the
last generation) is kept unchanged and re-evaluated; every other member is a random parent
plus one mutation (one new index).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from ..config import AtLeast1, Range
from .base import EvolutionConfig, EvolutionTrainer

__all__ = ["GA", "GAConfig"]


@dataclass
class GAConfig(EvolutionConfig):
    """Deep GA settings."""

    population_size: Annotated[int, Range(2)] = 64
    """Genomes per generation (the elite included)."""
    truncation: AtLeast1 = 10
    """The best ``truncation`` genomes are the parents of the next generation."""
    sigma: Annotated[float, Range(0, low_open=True)] = 0.1
    """Mutation standard deviation."""

    def check(self) -> None:
        super().check()
        if self.truncation > self.population_size:
            raise ValueError(f"GAConfig.truncation ({self.truncation}) must be <= "
                             f"population_size ({self.population_size})")


class GA(EvolutionTrainer):
    """Genetic algorithm with seed-list genomes. See :class:`GAConfig`."""

    config_class = GAConfig

    def _init_strategy(self) -> None:
        self._base = self.policy.flat_params.astype(np.float64)
        self.population: list[tuple[int, ...]] = []
        self.fitness = np.zeros(0)
        self.elite: tuple[int, ...] = ()
        self._elite_params = self._base.copy()

    @property
    def center(self) -> np.ndarray:
        return self._elite_params

    def genome_params(self, genome) -> np.ndarray:
        """The weights of ``genome`` (exactly what the workers evaluate)."""
        theta = self._base.copy()
        for i in genome:
            theta += self.config.sigma * self.noise.get(int(i), self.num_params)
        return theta

    def _ask(self):
        cfg = self.config
        n = cfg.population_size
        if not self.population:  # generation 0: mutants of the initial weights
            parents = [()]
            children = [self.elite]
        else:
            order = np.argsort(-self.fitness, kind="stable")[:cfg.truncation]
            parents = [self.population[k] for k in order]
            children = [self.elite]
        picks = self.rng.integers(len(parents), size=n - len(children))
        idx = self.noise.sample_index(self.rng, self.num_params, picks.size)
        children += [parents[p] + (int(i),) for p, i in zip(picks, idx)]
        members = [("genome", g) for g in children]
        payload = {"base": self._base, "sigma": float(cfg.sigma), "center": self._elite_params}
        return payload, members, np.arange(n), children

    def _tell(self, children, fitness: np.ndarray) -> None:
        self.population, self.fitness = children, fitness.copy()
        best = int(np.argmax(fitness))
        self.elite = children[best]
        self._elite_params = self.genome_params(self.elite)

    def _strategy_state(self) -> dict:
        lengths = np.array([len(g) for g in self.population], dtype=np.int64)
        flat = np.array([i for g in self.population for i in g], dtype=np.int64)
        return {"base": self._base.copy(), "lengths": lengths, "genomes": flat,
                "fitness": self.fitness.copy(), "elite": np.array(self.elite, dtype=np.int64),
                "elite_params": self._elite_params.copy()}

    def _load_strategy_state(self, arrays: dict) -> None:
        lengths, genomes = np.asarray(arrays["lengths"]), np.asarray(arrays["genomes"])
        if lengths.dtype.kind not in "iu" or genomes.dtype.kind not in "iu" or \
                (lengths < 0).any() or int(lengths.sum()) != genomes.size:
            raise ValueError("the genome lengths do not add up to the stored genomes")
        high = self.config.noise_table_size - self.num_params
        for name, idx in (("genomes", genomes), ("elite", np.asarray(arrays["elite"]))):
            if idx.size and (idx.min() < 0 or idx.max() > high):
                raise ValueError(f"{name} hold noise indices outside [0, {high}]")
        if not np.isfinite(arrays["base"]).all():
            raise ValueError("the base weights contain NaN or inf")
        self._base = np.asarray(arrays["base"], dtype=np.float64).copy()
        ends = np.cumsum(arrays["lengths"])
        starts = ends - arrays["lengths"]
        self.population = [tuple(int(i) for i in arrays["genomes"][a:b])
                           for a, b in zip(starts, ends)]
        self.fitness = np.asarray(arrays["fitness"], dtype=np.float64).copy()
        self.elite = tuple(int(i) for i in arrays["elite"])
        self._elite_params = np.asarray(arrays["elite_params"], dtype=np.float64).copy()
