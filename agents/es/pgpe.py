"""PGPE and SNES: search distributions with one adapted step size per parameter.

Both sample ``theta = mu + sigma * eps`` (``sigma`` a vector), ``eps`` from the shared noise table.

- **PGPE** (Sehnke et al. 2010), symmetric sampling: pairs ``mu +- sigma eps_k``. With centered
  ranks ``r``, ``b`` the mean rank::

      grad_mu    = sum_k (r+_k - r-_k) / 2 * eps_k * sigma / n
      grad_sigma = sum_k ((r+_k + r-_k) / 2 - b) * (eps_k^2 - 1) * sigma / n

  ``mu`` moves by Adam, ``sigma`` by plain ascent with ``sigma_learning_rate``, each entry
  clipped to ``[sigma_min, sigma_max]`` (a relative change of at most 20 % per generation).
- **SNES** (Schaul et al. 2011): ``lambda`` samples, rank utilities ``u_k`` (the NES ones)::

      mu    += eta_mu * sigma * sum_k u_k eps_k
      sigma *= exp(eta_sigma / 2 * sum_k u_k (eps_k^2 - 1))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from rlstm.optim import Adam

from ..config import Range
from .base import EvolutionConfig, EvolutionTrainer
from .shaping import centered_ranks, nes_utilities

__all__ = ["PGPE", "PGPEConfig", "SNES", "SNESConfig"]

Positive = Annotated[float, Range(0, low_open=True)]


class _DiagonalMixin:
    """Shared state: ``mu``, ``sigma`` (float64 vectors), save/load of both."""

    @property
    def center(self) -> np.ndarray:
        return self._mu

    def _noise_block(self, idx) -> np.ndarray:
        return self.noise.batch(idx, self.num_params).astype(np.float64)


@dataclass
class PGPEConfig(EvolutionConfig):
    """PGPE settings."""

    sigma_init: Positive = 0.05
    """Initial per-parameter standard deviation."""
    learning_rate: Positive = 0.03
    """Adam step size on the center ``mu``."""
    sigma_learning_rate: Positive = 0.1
    """Ascent step size on ``sigma``."""
    sigma_min: Positive = 1e-3
    """Lower bound of every sigma entry."""
    sigma_max: Positive = 0.5
    """Upper bound of every sigma entry."""

    def check(self) -> None:
        super().check()
        if self.population_size % 2:
            raise ValueError(f"PGPEConfig.population_size must be even for symmetric "
                             f"sampling, got {self.population_size}")
        if not self.sigma_min <= self.sigma_init <= self.sigma_max:
            raise ValueError(f"PGPEConfig needs sigma_min <= sigma_init <= sigma_max, got "
                             f"{self.sigma_min}, {self.sigma_init}, {self.sigma_max}")


class PGPE(_DiagonalMixin, EvolutionTrainer):
    """Policy gradients with parameter-based exploration. See :class:`PGPEConfig`."""

    config_class = PGPEConfig

    def _init_strategy(self) -> None:
        self._mu = self.policy.flat_params.astype(np.float64)
        self._sigma = np.full_like(self._mu, self.config.sigma_init)
        self._grad = np.zeros_like(self._mu)
        self.optimizer = Adam(self._mu, self._grad, lr=self.config.learning_rate)

    def _ask(self):
        n = self.config.population_size // 2
        idx = self.noise.sample_index(self.rng, self.num_params, n)
        members = [m for i in idx for m in (("noise", (int(i), 1.0)), ("noise", (int(i), -1.0)))]
        groups = np.repeat(np.arange(n), 2)
        return {"center": self._mu.copy(), "sigma": self._sigma.copy()}, members, groups, idx

    def _tell(self, idx, fitness: np.ndarray) -> None:
        cfg = self.config
        r = centered_ranks(fitness.reshape(-1, 2))
        n = r.shape[0]
        eps = self._noise_block(idx)
        g_mu = ((r[:, 0] - r[:, 1]) / 2) @ eps * self._sigma / n
        g_sigma = ((r[:, 0] + r[:, 1]) / 2 - r.mean()) @ (eps * eps - 1) * self._sigma / n
        self._grad[...] = -g_mu
        self.optimizer.step()
        step = np.clip(cfg.sigma_learning_rate * g_sigma, -0.2 * self._sigma, 0.2 * self._sigma)
        np.clip(self._sigma + step, cfg.sigma_min, cfg.sigma_max, out=self._sigma)

    def _strategy_state(self) -> dict:
        return {"mu": self._mu.copy(), "sigma": self._sigma.copy(),
                **{"optim/" + k: np.asarray(v) for k, v in self.optimizer.state_dict().items()}}

    def _load_strategy_state(self, arrays: dict) -> None:
        if not (np.asarray(arrays["sigma"]) > 0).all():
            raise ValueError("every sigma entry must be > 0 (and finite)")
        self._mu[...] = arrays["mu"]
        self._sigma[...] = arrays["sigma"]
        self.optimizer.load_state_dict({k[6:]: v for k, v in arrays.items()
                                        if k.startswith("optim/")})


@dataclass
class SNESConfig(EvolutionConfig):
    """SNES settings (``None``: the NES defaults for the parameter count)."""

    population_size: Annotated[int, Range(2)] = 64
    """Samples per generation (NES default 4 + 3 ln d is small for RL noise; 64 is robust)."""
    sigma_init: Positive = 0.05
    """Initial per-parameter standard deviation."""
    learning_rate: Positive = 1.0
    """eta_mu: step size of the center in units of sigma."""
    sigma_learning_rate: Positive | None = None
    """eta_sigma; None means (3 + ln d) / (5 sqrt d)."""


class SNES(_DiagonalMixin, EvolutionTrainer):
    """Separable natural evolution strategies. See :class:`SNESConfig`."""

    config_class = SNESConfig

    def _init_strategy(self) -> None:
        self._mu = self.policy.flat_params.astype(np.float64)
        self._sigma = np.full_like(self._mu, self.config.sigma_init)
        d = self.num_params
        self._eta_sigma = (self.config.sigma_learning_rate or
                           (3 + np.log(d)) / (5 * np.sqrt(d)))

    def _ask(self):
        n = self.config.population_size
        idx = self.noise.sample_index(self.rng, self.num_params, n)
        members = [("noise", (int(i), 1.0)) for i in idx]
        return ({"center": self._mu.copy(), "sigma": self._sigma.copy()}, members,
                np.arange(n), idx)

    def _tell(self, idx, fitness: np.ndarray) -> None:
        order = np.argsort(-fitness, kind="stable")
        u = np.empty(fitness.size)
        u[order] = nes_utilities(fitness.size)
        eps = self._noise_block(idx)
        self._mu += self.config.learning_rate * self._sigma * (u @ eps)
        self._sigma *= np.exp(self._eta_sigma / 2 * (u @ (eps * eps - 1)))

    def _strategy_state(self) -> dict:
        return {"mu": self._mu.copy(), "sigma": self._sigma.copy()}

    def _load_strategy_state(self, arrays: dict) -> None:
        if not (np.asarray(arrays["sigma"]) > 0).all():
            raise ValueError("every sigma entry must be > 0 (and finite)")
        self._mu[...] = arrays["mu"]
        self._sigma[...] = arrays["sigma"]
