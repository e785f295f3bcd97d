"""Recurrent PPO (Schulman et al. 2017) with truncated BPTT through the LSTM core.

Per iteration: collect ``n_envs * n_steps`` transitions (:mod:`agents.base`), compute GAE(lambda)
(:mod:`agents.buffers`), then for ``n_epochs`` epochs shuffle the rollout's sequences of
``seq_len`` steps, split them into ``n_minibatches`` minibatches and take one Adam step on each:
one ``policy.evaluate`` over the whole ``(seq_len, sequences)`` batch (episode starts reset the
state inside the kernel), the clipped surrogate + value + entropy loss, one ``policy.backward``.

The defaults solve CartPole-v1 and the velocity-masked ``rlstm/CartPoleNoVel-v1`` within 100k
steps (see docs/agents.md for the numbers measured and the per-task hyperparameters).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import OnPolicyAlgorithm, OnPolicyConfig, _check, _is_int
from .buffers import RolloutBuffer

__all__ = ["PPO", "PPOConfig"]


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO settings (plus every field of :class:`agents.base.OnPolicyConfig`)."""

    n_epochs: int = 20
    """Passes over each rollout."""
    n_minibatches: int = 1
    """Minibatches per epoch; each holds ``n_envs * n_steps / seq_len / n_minibatches``
    whole sequences."""
    clip_range: float = 0.2
    """Clip of the probability ratio (initial value when ``clip_schedule="linear"``)."""
    clip_schedule: str = "linear"
    """``"constant"`` or ``"linear"`` (decays to 0 at the end of each ``learn`` call)."""
    clip_range_vf: float | None = None
    """Clip of the value change around the rollout's values (``None``: no value clipping)."""
    target_kl: float | None = None
    """Stop the epochs of an iteration early once the mean approximate KL exceeds
    ``1.5 * target_kl`` (``None``: never)."""

    def validate(self) -> None:
        super().validate()
        for name in ("n_epochs", "n_minibatches"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        n_seq = self.n_envs * self.n_steps // self.sequence_length
        _check(self.n_minibatches <= n_seq,
               f"n_minibatches ({self.n_minibatches}) must be <= the number of sequences per "
               f"rollout, n_envs * n_steps / seq_len = {n_seq}")
        _check(self.clip_range > 0, f"clip_range must be > 0, got {self.clip_range}")
        _check(self.clip_schedule in ("constant", "linear"),
               f"clip_schedule must be 'constant' or 'linear', got {self.clip_schedule!r}")
        _check(self.clip_range_vf is None or self.clip_range_vf > 0,
               f"clip_range_vf must be > 0 or None, got {self.clip_range_vf}")
        _check(self.target_kl is None or self.target_kl > 0,
               f"target_kl must be > 0 or None, got {self.target_kl}")


class PPO(OnPolicyAlgorithm):
    """Recurrent PPO: ``PPO(env, config=None, *, seed=None, **overrides)``.

    >>> model = PPO("rlstm/CartPoleNoVel-v1", seed=0).learn(100_000)   # doctest: +SKIP
    """

    config_class = PPOConfig

    def _update(self, buf: RolloutBuffer, progress: float) -> dict:
        cfg = self.config
        clip = cfg.clip_range * (1.0 - progress if cfg.clip_schedule == "linear" else 1.0)
        clip = max(clip, 1e-8)
        history = []
        for _ in range(cfg.n_epochs):
            epoch = [self._gradient_step(mb, clip, cfg.clip_range_vf)
                     for mb in buf.minibatches(cfg.n_minibatches, self.rng)]
            history += epoch
            if cfg.target_kl is not None and \
                    np.mean([s["approx_kl"] for s in epoch]) > 1.5 * cfg.target_kl:
                break
        return {k: float(np.mean([s[k] for s in history])) for k in history[0]}
