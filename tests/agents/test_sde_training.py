"""gSDE in the policy-gradient trainers: when the exploration matrices are redrawn."""
import numpy as np
import pytest

from agents import PPO


@pytest.mark.parametrize("freq,draws", [(-1, 1), (4, 3), (1, 12)])
def test_trainer_redraws_exploration_matrices_every_sde_sample_freq_steps(freq, draws,
                                                                          monkeypatch):
    model = PPO("Pendulum-v1", seed=0, use_sde=True, sde_sample_freq=freq, n_envs=2,
                n_steps=12, seq_len=4, hidden_size=8, n_epochs=1)
    assert model.policy.use_sde
    calls = []
    orig = model.policy.sample_sde_noise

    def counting(B, rng=None):
        calls.append(B)
        return orig(B, rng)

    monkeypatch.setattr(model.policy, "sample_sde_noise", counting)
    model.learn(48)
    assert calls == [2] * (2 * draws)  # two rollouts
    assert np.isfinite(model.policy.flat_params).all()


def test_use_sde_is_ignored_without_a_box_action():
    model = PPO("CartPole-v1", seed=0, use_sde=True, n_envs=2, n_steps=8, hidden_size=4)
    assert not model.policy.use_sde
    model.learn(16)
