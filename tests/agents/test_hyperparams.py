"""agents.hyperparams: every tuned entry builds a valid trainer for a registered env."""
import gymnasium as gym
import pytest

import agents
from agents.cli import load_algorithm
from agents.hyperparams import TUNED, tuned

ENTRIES = [(algo, env) for algo, table in TUNED.items() for env in table]


@pytest.mark.parametrize("algo,env", ENTRIES)
def test_every_entry_builds_its_trainer(algo, env):
    settings, budget = tuned(algo, env)
    assert isinstance(budget, int) and budget > 0
    if env == "rlstm/LunarLanderNoVel-v3" and not agents.envs.HAVE_BOX2D:
        pytest.skip("LunarLander needs box2d and pygame (the test extra)")
    for prefix, package in (("popgym-", "popgym"), ("MiniGrid-", "minigrid")):
        if env.startswith(prefix):  # ids registered by another package (the bench extra)
            pytest.importorskip(package)
    assert env in gym.registry
    model = load_algorithm(algo)(env, seed=0, **settings)
    for key, value in settings.items():
        got = getattr(model.config, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    model.close()


def test_tuned_returns_copies_and_empty_for_unknown_pairs():
    settings, _ = tuned("PPO", "rlstm/MountainCarContinuousNoVel-v0")  # case-insensitive algo
    settings["policy_kwargs"]["log_std_init"] = 5.0
    assert tuned("ppo", "rlstm/MountainCarContinuousNoVel-v0")[0]["policy_kwargs"] == {
        "log_std_init": -1.0}
    assert tuned("ppo", "NoSuchEnv-v0") == ({}, None)
    assert tuned("es", "CartPole-v1") == ({}, None)
    with pytest.raises(TypeError, match="two strings"):
        tuned("ppo", None)
