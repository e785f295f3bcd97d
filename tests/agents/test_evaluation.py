"""agents.evaluate: seeded, whole episodes, refusals."""
import pytest

import agents
from agents import PPO


def test_evaluate_is_seeded_and_counts_whole_episodes(tiny):
    m = PPO("CartPole-v1", seed=0, **tiny)
    r1 = agents.evaluate(m, "CartPole-v1", n_episodes=3, seed=5)
    r2 = agents.evaluate(m, "CartPole-v1", n_episodes=3, seed=5)
    assert r1 == r2 and 8 <= r1[0] <= 500
    with pytest.raises(ValueError, match="n_episodes"):
        agents.evaluate(m, "CartPole-v1", n_episodes=0)
