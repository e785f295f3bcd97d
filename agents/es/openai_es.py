"""OpenAI-ES (Salimans et al. 2017): antithetic Gaussian perturbations of one center.

Per generation: ``n = population_size / 2`` noise indices ``i_k``; members ``theta +- sigma eps_k``
with ``eps_k = noise[i_k:i_k + d]``; both members of a pair play the same episode seeds.
Fitness shaping: centered ranks over all ``2n`` returns. Gradient estimate (the starter's)::

    g = sum_k (rank(+k) - rank(-k)) * eps_k / (2n)

and the optimizer (Adam or SGD) minimises ``-g + weight_decay * theta``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlstm.validation import check_choice
from rlstm.optim import SGD, Adam

from .base import EvolutionConfig, EvolutionTrainer, centered_ranks

__all__ = ["OpenAIES", "OpenAIESConfig", "es_gradient"]


def es_gradient(noise, indices, returns_pos, returns_neg, dim: int) -> np.ndarray:
    """The antithetic estimate ``sum_k (r+_k - r-_k) eps_k / (2n)`` after centered ranks."""
    r = centered_ranks(np.stack([np.asarray(returns_pos, float),
                                 np.asarray(returns_neg, float)], axis=1))
    return noise.weighted_sum(indices, r[:, 0] - r[:, 1], dim) / r.size


@dataclass
class OpenAIESConfig(EvolutionConfig):
    """OpenAI-ES settings (defaults solve CartPole-v1 with an LSTM policy in < 1M steps)."""

    population_size: int = 64
    """Members per generation (even: population_size / 2 antithetic pairs)."""
    sigma: float = 0.05
    """Standard deviation of the parameter perturbations."""
    learning_rate: float = 0.03
    """Step size of the optimizer on the center."""
    optimizer: str = "adam"
    """"adam" or "sgd" (SGD uses momentum 0.9)."""
    weight_decay: float = 0.005
    """L2 coefficient added to the gradient (the starter's l2coeff)."""

    def validate(self) -> None:
        super().validate()
        if self.population_size % 2:
            raise ValueError(f"population_size must be even for antithetic pairs, got "
                             f"{self.population_size}")
        for name in ("sigma", "learning_rate"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not float(self.weight_decay) >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        check_choice("optimizer", self.optimizer, ("adam", "sgd"))


class OpenAIES(EvolutionTrainer):
    """OpenAI evolution strategies on an LSTM policy. See :class:`OpenAIESConfig`."""

    config_class = OpenAIESConfig
    kind = "OpenAIES"

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
                **{"opt_" + k: np.asarray(v) for k, v in self.optimizer.state_dict().items()}}

    def _load_strategy_state(self, arrays: dict) -> None:
        self._theta[...] = arrays["theta"]
        self.optimizer.load_state_dict({k[4:]: v for k, v in arrays.items()
                                        if k.startswith("opt_")})
