"""OpenAI-ES (Salimans et al. 2017): antithetic Gaussian perturbations of one center.

Per generation: ``n = population_size / 2`` noise indices ``i_k``; members ``theta +- sigma eps_k``
with ``eps_k = noise[i_k:i_k + d]``; both members of a pair play the same episode seeds.
Fitness shaping: centered ranks over all ``2n`` returns. Gradient estimate (the starter's)::

    g = sum_k (rank(+k) - rank(-k)) * eps_k / (2n)

and the optimizer (Adam or SGD) minimises ``-g + weight_decay * theta``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from rlstm.optim import SGD, Adam

from ..config import Range
from .base import EvolutionConfig, EvolutionTrainer
from .shaping import centered_ranks

__all__ = ["OpenAIES", "OpenAIESConfig", "es_gradient"]


def es_gradient(noise, indices, returns_pos, returns_neg, dim: int) -> np.ndarray:
    """The antithetic estimate ``sum_k (r+_k - r-_k) eps_k / (2n)`` after centered ranks."""
    r = centered_ranks(np.stack([np.asarray(returns_pos, float),
                                 np.asarray(returns_neg, float)], axis=1))
    return noise.weighted_sum(indices, r[:, 0] - r[:, 1], dim) / r.size


@dataclass
class OpenAIESConfig(EvolutionConfig):
    """OpenAI-ES settings (defaults solve CartPole-v1 with an LSTM policy in < 1M steps)."""

    population_size: Annotated[int, Range(2)] = 64
    """Members per generation (even: population_size / 2 antithetic pairs)."""
    sigma: Annotated[float, Range(0, low_open=True)] = 0.05
    """Standard deviation of the parameter perturbations."""
    learning_rate: Annotated[float, Range(0, low_open=True)] = 0.03
    """Step size of the optimizer on the center."""
    optimizer: Literal["adam", "sgd"] = "adam"
    """"adam" or "sgd" (SGD uses momentum 0.9)."""
    weight_decay: Annotated[float, Range(0)] = 0.005
    """L2 coefficient added to the gradient (the starter's l2coeff)."""

    def check(self) -> None:
        super().check()
        if self.population_size % 2:
            raise ValueError(f"{type(self).__name__}.population_size must be even for "
                             f"antithetic pairs, got {self.population_size}")


class OpenAIES(EvolutionTrainer):
    """OpenAI evolution strategies on an LSTM policy. See :class:`OpenAIESConfig`."""

    config_class = OpenAIESConfig

    def _init_strategy(self) -> None:
        cfg = self.config
        self._theta = self.policy.flat_params.astype(np.float64)
        self._grad = np.zeros_like(self._theta)
        if cfg.optimizer == "adam":
            self.optimizer = Adam(self._theta, self._grad, lr=cfg.learning_rate)
        else:
            self.optimizer = SGD(self._theta, self._grad, lr=cfg.learning_rate, momentum=0.9)

    @property
    def center(self) -> np.ndarray:
        return self._theta

    def _ask(self):
        n = self.config.population_size // 2
        idx = self.noise.sample_index(self.rng, self.num_params, n)
        members, groups = [], []
        for k, i in enumerate(idx):
            members += [("noise", (int(i), 1.0)), ("noise", (int(i), -1.0))]
            groups += [k, k]
        payload = {"center": self._theta.copy(), "sigma": float(self.config.sigma)}
        return payload, members, groups, idx

    def _tell(self, idx, fitness: np.ndarray) -> None:
        f = fitness.reshape(-1, 2)
        g = es_gradient(self.noise, idx, f[:, 0], f[:, 1], self.num_params)
        self._grad[...] = -g + self.config.weight_decay * self._theta
        self.optimizer.step()

    def _strategy_state(self) -> dict:
        return {"theta": self._theta.copy(),
                **{"optim/" + k: np.asarray(v) for k, v in self.optimizer.state_dict().items()}}

    def _load_strategy_state(self, arrays: dict) -> None:
        self._theta[...] = arrays["theta"]
        self.optimizer.load_state_dict({k[6:]: v for k, v in arrays.items()
                                        if k.startswith("optim/")})
