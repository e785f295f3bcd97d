"""Fixtures of the agents tests: the smallest settings that still exercise every code path."""
import pytest


@pytest.fixture
def tiny():
    """A policy-gradient run of two envs, 8-step rollouts and 4-step sequences."""
    return dict(n_envs=2, n_steps=8, seq_len=4, hidden_size=8, n_epochs=2, n_minibatches=2)


@pytest.fixture
def small():
    """An evolution run of 8 members, 40-step episodes and a small noise table."""
    return dict(population_size=8, center_episodes=1, max_episode_steps=40,
                noise_table_size=50_000)
