"""Recurrent PPO (Schulman et al. 2017) with truncated BPTT through the LSTM core.

Per iteration (:class:`agents.onpolicy.OnPolicyTrainer`): collect ``n_envs * n_steps``
transitions and compute GAE(lambda); then, below, for ``n_epochs`` epochs shuffle the rollout's
sequences of ``seq_len`` steps, split them into ``n_minibatches`` minibatches and take one Adam
step on each: one ``policy.evaluate`` over the whole ``(seq_len, sequences)`` batch (episode
starts reset the state inside the kernel), the clipped surrogate + value + entropy loss, one
``policy.backward``.

The defaults solve CartPole-v1 and the velocity-masked ``rlstm/CartPoleNoVel-v1`` within 100k
steps (see docs/agents.md for the numbers measured and the per-task hyperparameters).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from .buffers import RolloutBuffer
from .config import AtLeast1, Range
from .losses import normalize_advantages, step_weights, surrogate_loss, value_loss
from .onpolicy import NonNegative, OnPolicyConfig, OnPolicyTrainer, Positive

__all__ = ["PPO", "PPOConfig"]


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO settings (plus every field of :class:`agents.onpolicy.OnPolicyConfig`)."""

    ent_coef: NonNegative = 0.01
    """Entropy bonus coefficient. 0.01 (the RL Zoo's CartPoleNoVel setting has 0): it keeps
    the final policy solved (docs/agents.md, "Why final policies fell back")."""
    n_epochs: AtLeast1 = 20
    """Passes over each rollout."""
    n_minibatches: AtLeast1 = 1
    """Minibatches per epoch; each holds ``n_envs * n_steps / seq_len / n_minibatches``
    whole sequences."""
    clip_range: Positive = 0.2
    """Clip of the probability ratio (initial value when ``clip_schedule="linear"``)."""
    clip_schedule: Literal["constant", "linear"] = "linear"
    """``"constant"`` or ``"linear"`` (decays to 0 at the end of each ``learn`` call)."""
    clip_range_vf: Annotated[float, Range(0, low_open=True)] | None = None
    """Clip of the value change around the rollout's values (``None``: no value clipping)."""
    target_kl: Annotated[float, Range(0, low_open=True)] | None = None
    """Stop the epochs of an iteration early once the mean approximate KL exceeds
    ``1.5 * target_kl`` (``None``: never)."""
    refresh_states: bool = False
    """Before every epoch but the first, recompute the recurrent state stored at each
    ``seq_len`` chunk start with the current weights (one forward pass over the rollout), so
    that no sequence starts from the stale state of the weights that collected it. Only
    matters when ``seq_len < n_steps``."""

    def check(self) -> None:
        super().check()
        n_seq = self.n_envs * self.n_steps // self.sequence_length
        if self.n_minibatches > n_seq:
            raise ValueError(f"PPOConfig.n_minibatches ({self.n_minibatches}) must be <= the "
                             f"number of sequences per rollout, n_envs * n_steps / seq_len = "
                             f"{n_seq}")


class PPO(OnPolicyTrainer):
    """Recurrent PPO: ``PPO(env, config=None, *, seed=None, **overrides)``.

    >>> model = PPO("rlstm/CartPoleNoVel-v1", seed=0).learn(100_000)   # doctest: +SKIP
    """

    config_class = PPOConfig

    def _update(self, buf: RolloutBuffer, progress: float) -> dict:
        cfg = self.config
        clip = max(cfg.clip_range * (1.0 - progress if cfg.clip_schedule == "linear" else 1.0),
                   1e-8)
        history = []
        for k in range(cfg.n_epochs):
            if cfg.refresh_states and k > 0:  # epoch 0: the weights that collected it
                buf.refresh_states(self.policy.advance)
            epoch = []
            for mb in buf.minibatches(cfg.n_minibatches, self.rng):
                log_probs, entropy, values, cache = self.policy.evaluate(
                    mb["obs"], mb["actions"], mb["states"], mb["episode_starts"])
                adv = mb["advantages"]
                if cfg.normalize_advantage:
                    adv = normalize_advantages(adv, mb["valid"])
                w = step_weights(mb["valid"])  # a mean over the real steps
                pg, dlog_probs, kl, clip_fraction = surrogate_loss(
                    log_probs, mb["log_probs"], adv, w, clip)
                vf, dvalues = value_loss(values, mb["returns"], mb["values"], w,
                                         cfg.clip_range_vf)
                ent = np.sum(w * np.asarray(entropy, dtype=np.float64))
                loss = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
                grad_norm = self.apply_gradients(loss, dlog_probs, -cfg.ent_coef * w,
                                                 cfg.vf_coef * dvalues, cache)
                epoch.append({"loss": loss, "pg_loss": pg, "value_loss": vf, "entropy": ent,
                              "approx_kl": kl, "clip_fraction": clip_fraction,
                              "grad_norm": grad_norm})
            history += epoch
            if cfg.target_kl is not None and \
                    np.mean([s["approx_kl"] for s in epoch]) > 1.5 * cfg.target_kl:
                break
        return {k: float(np.mean([s[k] for s in history])) for k in history[0]}
