"""Recurrent A2C (Mnih et al. 2016, synchronous): one gradient step per short rollout.

The loss, over one ``policy.evaluate`` of the rollout's sequences, is the plain policy
gradient with a value baseline and an entropy bonus: ``-A log pi + vf_coef (V - R)^2 -
ent_coef H`` (:mod:`agents.losses` without clipping).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .buffers import RolloutBuffer
from .config import AtLeast1
from .losses import normalize_advantages, step_weights, surrogate_loss, value_loss
from .onpolicy import NonNegative, OnPolicyConfig, OnPolicyTrainer, Positive, Unit

__all__ = ["A2C", "A2CConfig"]


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C settings: the fields of :class:`agents.onpolicy.OnPolicyConfig` with A2C
    defaults."""

    n_envs: AtLeast1 = 8
    """Parallel environments."""
    n_steps: AtLeast1 = 16
    """Steps per env per update (the BPTT window when ``seq_len`` is None)."""
    gamma: Unit = 0.99
    """Discount factor."""
    gae_lambda: Unit = 0.95
    """GAE(lambda)."""
    learning_rate: Positive = 3e-3
    """Adam step size."""
    ent_coef: NonNegative = 0.0
    """Entropy bonus."""
    normalize_advantage: bool = False
    """Standardize advantages per update."""


class A2C(OnPolicyTrainer):
    """Synchronous advantage actor-critic with an LSTM policy."""

    config_class = A2CConfig

    def _update(self, buf: RolloutBuffer, progress: float) -> dict:
        seq = buf.sequences()
        return self._gradient_step(seq, seq["advantages"], seq["valid"], self.config.vf_coef)

    def _gradient_step(self, seq: dict, advantages, mask, vf_coef: float) -> dict:
        """One step on the plain policy gradient over the ``mask``-ed steps of ``seq``."""
        cfg = self.config
        log_probs, entropy, values, cache = self.policy.evaluate(
            seq["obs"], seq["actions"], seq["states"], seq["episode_starts"])
        if cfg.normalize_advantage:
            advantages = normalize_advantages(advantages, mask)
        w = step_weights(mask)  # a mean over the steps that count
        pg, dlog_probs, kl, _ = surrogate_loss(log_probs, seq["log_probs"], advantages, w, None)
        vf, dvalues = value_loss(values, seq["returns"], seq["values"], w, None)
        ent = np.sum(w * np.asarray(entropy, dtype=np.float64))
        loss = pg + vf_coef * vf - cfg.ent_coef * ent
        grad_norm = self.apply_gradients(loss, dlog_probs, -cfg.ent_coef * w, vf_coef * dvalues,
                                         cache)
        return {"loss": float(loss), "pg_loss": float(pg), "value_loss": float(vf),
                "entropy": float(ent), "approx_kl": kl, "clip_fraction": 0.0,
                "grad_norm": grad_norm}
