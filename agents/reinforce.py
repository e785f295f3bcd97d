"""REINFORCE (Williams 1992) with an LSTM policy and an optional learned baseline.

Returns are Monte-Carlo (``gae_lambda = 1``): a step counts in the loss only when its episode
ends inside the rollout (a truncated episode bootstraps from the value of its final observation
when the baseline is on). With ``baseline=True`` the advantage is ``G_t - V(s_t)`` and the
value head is trained alongside; with ``baseline=False`` it is ``G_t`` and ``vf_coef`` is 0.
One gradient step per rollout.
"""
from __future__ import annotations

from dataclasses import dataclass

from .base import OnPolicyAlgorithm, OnPolicyConfig, _check
from .buffers import RolloutBuffer

__all__ = ["REINFORCE", "REINFORCEConfig"]


@dataclass
class REINFORCEConfig(OnPolicyConfig):
    """REINFORCE settings: the fields of :class:`agents.base.OnPolicyConfig` with REINFORCE
    defaults, plus ``baseline``."""

    n_envs: int = 4
    """Parallel environments."""
    n_steps: int = 256
    """Steps per env per update; episodes not finished by then are left out of the update."""
    seq_len: int | None = 32
    """BPTT sequence length."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 1.0
    """Must stay 1.0 (Monte-Carlo returns): that is what makes it REINFORCE."""
    learning_rate: float = 1e-2
    """Adam step size (initial value: it decays linearly to 0 over each ``learn`` call)."""
    normalize_reward: bool = False
    """Scale rewards by the running return std."""
    baseline: bool = True
    """Subtract a learned value baseline from the returns."""

    def validate(self) -> None:
        super().validate()
        _check(self.gae_lambda == 1.0, "REINFORCE uses Monte-Carlo returns: gae_lambda must be "
               "1.0 (use A2C or PPO for GAE)")


class REINFORCE(OnPolicyAlgorithm):
    """Monte-Carlo policy gradient with an LSTM policy."""

    config_class = REINFORCEConfig

    def _update(self, buf: RolloutBuffer, progress: float) -> dict:
        mask = buf._to_sequences(buf.complete_episode_mask())
        mb = buf.sequences()
        if self.config.baseline:
            return self._gradient_step(mb, None, None, mask=mask)
        mb["advantages"] = mb["returns"]  # G_t, no baseline
        return self._gradient_step(mb, None, None, mask=mask, vf_coef=0.0)
