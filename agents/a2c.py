"""Recurrent A2C (Mnih et al. 2016, synchronous): one gradient step per short rollout.

The loss is :func:`agents.base.policy_gradient_loss` without clipping: ``-A log pi + vf_coef
(V - R)^2 - ent_coef H``, over one ``policy.evaluate`` of the rollout's sequences.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import OnPolicyAlgorithm, OnPolicyConfig
from .buffers import RolloutBuffer

__all__ = ["A2C", "A2CConfig"]


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C settings: the fields of :class:`agents.base.OnPolicyConfig` with A2C defaults."""

    n_envs: int = 8
    """Parallel environments."""
    n_steps: int = 16
    """Steps per env per update (the BPTT window when ``seq_len`` is None)."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE(lambda)."""
    learning_rate: float = 3e-3
    """Adam step size."""
    ent_coef: float = 0.0
    """Entropy bonus."""
    normalize_advantage: bool = False
    """Standardize advantages per update."""


class A2C(OnPolicyAlgorithm):
    """Synchronous advantage actor-critic with an LSTM policy."""

    config_class = A2CConfig

    def _update(self, buf: RolloutBuffer, progress: float) -> dict:
        mb = buf.sequences()
        return self._gradient_step(mb, clip_range=None, clip_range_vf=None)
