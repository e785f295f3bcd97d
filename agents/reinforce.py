"""REINFORCE (Williams 1992) with an LSTM policy and an optional learned baseline.

Returns are Monte-Carlo (``gae_lambda = 1``): a step counts in the loss only when its episode
ends inside the rollout (a truncated episode bootstraps from the value of its final observation
when the baseline is on). With ``baseline=True`` the advantage is ``G_t - V(s_t)`` and the
value head is trained alongside; with ``baseline=False`` it is ``G_t`` and no value loss is
taken. One gradient step per rollout.
"""
from __future__ import annotations

from dataclasses import dataclass

from .a2c import A2C
from .buffers import RolloutBuffer
from .config import AtLeast1
from .onpolicy import OnPolicyConfig, Positive, Unit

__all__ = ["REINFORCE", "REINFORCEConfig"]


@dataclass
class REINFORCEConfig(OnPolicyConfig):
    """REINFORCE settings: the fields of :class:`agents.onpolicy.OnPolicyConfig` with
    REINFORCE defaults, plus ``baseline``."""

    n_envs: AtLeast1 = 4
    """Parallel environments."""
    n_steps: AtLeast1 = 256
    """Steps per env per update; episodes not finished by then are left out of the update."""
    seq_len: AtLeast1 | None = 32
    """BPTT sequence length."""
    gamma: Unit = 0.99
    """Discount factor."""
    gae_lambda: Unit = 1.0
    """Must stay 1.0 (Monte-Carlo returns): that is what makes it REINFORCE."""
    learning_rate: Positive = 1e-2
    """Adam step size (initial value: it decays linearly to 0 over each ``learn`` call)."""
    normalize_reward: bool = False
    """Scale rewards by the running return std."""
    baseline: bool = True
    """Subtract a learned value baseline from the returns."""

    def check(self) -> None:
        super().check()
        if self.gae_lambda != 1.0:
            raise ValueError("REINFORCE uses Monte-Carlo returns: REINFORCEConfig.gae_lambda "
                             "must be 1.0 (use A2C or PPO for GAE)")


class REINFORCE(A2C):
    """Monte-Carlo policy gradient with an LSTM policy: A2C's gradient step on the steps whose
    episode ended in the rollout, with ``G_t - V(s_t)`` (or ``G_t``) as the advantage."""

    config_class = REINFORCEConfig

    def _update(self, buf: RolloutBuffer, progress: float) -> dict:
        seq = buf.sequences()
        complete = buf.to_sequences(buf.complete_episode_mask())  # steps with a known G_t
        if self.config.baseline:
            return self._gradient_step(seq, seq["advantages"], complete, self.config.vf_coef)
        return self._gradient_step(seq, seq["returns"], complete, 0.0)
