"""MiniGrid-MemoryS7's Dict observation (a 7x7x3 code image, a direction, a mission text)
trains with the settings of agents.hyperparams, with no glue code (skipped without minigrid),
and benchmarks/minigrid_memory.py scores it."""
from __future__ import annotations

import numpy as np
import pytest

from agents import PPO
from agents.hyperparams import tuned

ENV = "MiniGrid-MemoryS7-v0"


@pytest.fixture(scope="module")
def bench(load_script):
    pytest.importorskip("minigrid")
    return load_script("benchmarks/minigrid_memory.py")


@pytest.mark.parametrize("encoder", ["conv", "flatten"])
def test_memory_s7_trains_with_the_documented_settings(bench, encoder):
    settings, budget = bench.settings_for(encoder)
    assert budget == tuned("ppo", ENV)[1]
    assert settings["obs_keys"] == ["image", "direction"]
    assert settings["policy_kwargs"] == {"image_codes": [11, 6, 3], "image_encoder": encoder,
                                         "core_kwargs": {"forget_bias": 3.0}}
    model = PPO(ENV, seed=0, **settings)
    before = model.policy.flat_params.copy()
    rollout = settings["n_envs"] * settings["n_steps"]
    model.learn(2 * rollout)
    assert model.num_timesteps == 2 * rollout and model.iterations == 2
    assert np.isfinite(model.policy.flat_params).all()
    assert not np.array_equal(before, model.policy.flat_params)
    assert len(model.policy.image_nets) == (encoder == "conv")
    assert model.policy.image_codes == (11, 6, 3)
    # 49 pixels of 11 + 6 + 3 one-hot codes (flattened, or through the conv net) + the one-hot
    # direction
    assert model.policy.obs_dim == 7 * 7 * 20 + 4
    rate, ret = bench.success_rate(model, 4)
    assert 0 <= rate <= 1 and 0 <= ret <= 1
    model.close()


def test_success_rate_counts_positive_returns_and_is_reproducible(bench):
    settings, _ = bench.settings_for("flatten")
    model = PPO(ENV, seed=0, **{**settings, "n_envs": 2, "n_steps": 32, "seq_len": 32,
                                "n_minibatches": 1, "hidden_size": 8})
    first = bench.success_rate(model, 6, seed=3)
    assert first == bench.success_rate(model, 6, seed=3)
    rate, ret = first
    assert rate * 6 == int(round(rate * 6)) and (ret > 0) == (rate > 0)


def test_success_by_cue_splits_the_episodes_by_start(bench):
    settings, _ = bench.settings_for("flatten")
    model = PPO(ENV, seed=0, **{**settings, "n_envs": 2, "n_steps": 32, "seq_len": 32,
                                "n_minibatches": 1, "hidden_size": 8})
    total, seen = bench.play(model, 12, seed=5)
    assert total.shape == seen.shape == (12,) and seen.dtype == bool
    assert 0 < seen.sum() < 12   # the start column is drawn from 1..4: both kinds occur
    split = bench.success_by_cue(model, 12, seed=5)
    assert split["n_in_view"] == seen.sum()
    assert split["all"] == np.mean(total > 0) == bench.success_rate(model, 12, seed=5)[0]
    assert split["in_view"] == np.mean(total[seen] > 0)
    assert split["turn"] == np.mean(total[~seen] > 0)
    model.close()


def test_onehot_experiment_env_trains_and_plays(bench):
    env = bench.make_env(onehot=True)
    assert env.observation_space["image"].shape == (7, 7, 20)
    env.close()
    settings, _ = bench.settings_for("conv", onehot=True)
    model = PPO(lambda: bench.make_env(onehot=True), seed=0,
                **{**settings, "n_envs": 2, "n_steps": 16, "seq_len": 16, "n_minibatches": 1,
                   "hidden_size": 8})
    model.learn(32)
    assert model.policy.obs_dim == 7 * 7 * 20 + 4
    total, seen = bench.play(model, 4, onehot=True)
    assert total.shape == seen.shape == (4,)
    model.close()


def test_diagnose_reads_the_policy_distribution(bench, tmp_path):
    settings, _ = bench.settings_for("conv")
    model = PPO(ENV, seed=0, **{**settings, "n_envs": 2, "n_steps": 16, "seq_len": 16,
                                "n_minibatches": 1, "hidden_size": 8})
    model.learn(32)
    model.save(tmp_path / "m")
    loaded = PPO.load(tmp_path / "m")
    out = bench.diagnose(loaded, 3)
    # an untrained policy is nearly uniform over MiniGrid's 7 actions
    assert np.log(7) - 0.05 < out["mean_entropy"] <= np.log(7) + 1e-6
    assert out["upper_correct"]["n"] + out["lower_correct"]["n"] == \
        out["reached_split_facing_east"] <= 3
    loaded.close()
    model.close()


def test_three_action_env_keeps_turns_and_forward(bench):
    env = bench.make_env(actions=3)
    assert env.action_space.n == 3
    env.reset(seed=0)
    u = env.unwrapped
    d = u.agent_dir
    env.step(0)  # turn left
    assert u.agent_dir == (d - 1) % 4
    env.close()
    with pytest.raises(ValueError, match="actions must be 7"):
        bench.make_env(actions=4)


@pytest.mark.parametrize("actions", [7, 3])
def test_the_scripted_walk_solves_every_start_and_follows_each_rule(bench, actions):
    up_by_rule = {r: [] for r in bench.RULES}
    for i in range(24):
        for rule in bench.RULES:
            env = bench.make_env(actions=actions)
            env.reset(seed=i)
            u = env.unwrapped
            acts = bench.expert_actions(env, rule)
            cue_key = type(u.grid.get(1, 2)).__name__ == "Key"
            upper_key = type(u.grid.get(5, 1)).__name__ == "Key"
            up_by_rule[rule].append(acts[-2] == 0)
            assert acts[-2] == (0 if {"match": cue_key == upper_key, "cue": cue_key,
                                      "layout": upper_key}[rule] else 1)
            ret = 0.0
            for a in acts:
                _, r, terminated, truncated, _ = env.step(a)
                ret += r
            assert terminated  # it always ends on one of the two objects
            assert (ret > 0) == (up_by_rule[rule][-1] == up_by_rule["match"][-1])
            env.close()
    assert 0 < sum(up_by_rule["match"]) < 24  # both branches occur
    with pytest.raises(ValueError, match="rule must be one of"):
        env = bench.make_env()
        env.reset(seed=0)
        bench.expert_actions(env, "nearest")


def test_imitate_trains_on_the_scripted_walks_and_reports_its_curve(bench):
    settings, _ = bench.settings_for("conv")
    out = bench.imitate({**settings, "n_envs": 2, "n_steps": 16, "seq_len": 16,
                         "n_minibatches": 1, "hidden_size": 16},
                        n_episodes=64, epochs=6, batch=16, rule="match", eval_episodes=4)
    assert out["final_loss"] < out["first_loss"]
    assert 0 <= out["turn_accuracy"] <= 1
    assert out["success_by_cue"]["all"] in {0, 0.25, 0.5, 0.75, 1}
    # held-out accuracy every 5 epochs and at the end; 4 minibatches of 16 walks an epoch
    assert [e for e, _, _ in out["curve"]] == [5, 6] and out["updates"] == 6 * 4
    assert out["turn_accuracy"] == out["curve"][-1][2] and out["final_loss"] == out["curve"][-1][1]
    if out["first_epoch_at_0.9"] is None:
        assert out["updates_to_0.9"] is None and all(acc < 0.9 for _, _, acc in out["curve"])


def test_imitate_batches_pad_each_walk_and_weigh_only_its_own_steps(bench):
    episodes = bench._expert_episodes(3, 0, ["image", "direction"], "match", False, 7)
    T = max(len(e) for e in episodes) + 2
    obs, acts, valid, starts = bench._stack(episodes, ["image", "direction"], T)
    assert obs["image"].shape == (T, 3, 7, 7, 3) and acts.shape == valid.shape == (T, 3)
    for j, e in enumerate(episodes):
        n = len(e)
        assert valid[:n, j].all() and not valid[n:, j].any()
        assert list(acts[:n, j]) == [a for _, a in e]
        np.testing.assert_array_equal(obs["image"][n:, j], np.broadcast_to(
            e[-1][0]["image"], obs["image"][n:, j].shape))  # padding repeats the last step
    assert starts[0].all() and not starts[1:].any()
    o, a, v, s = bench._rows((obs, acts, valid, starts), np.array([2, 0]))
    np.testing.assert_array_equal(a, acts[:, [2, 0]])
    np.testing.assert_array_equal(o["direction"], obs["direction"][:, [2, 0]])


def test_settings_for_the_wrapped_one_hot_env_leave_the_codes_to_the_wrapper(bench):
    settings, _ = bench.settings_for("conv", {"policy_kwargs": {"action_init_scale": 0.5}},
                                     onehot=True)
    assert "image_codes" not in settings["policy_kwargs"]
    assert settings["policy_kwargs"]["image_scale"] is None
    assert settings["policy_kwargs"]["action_init_scale"] == 0.5  # added to the tuned ones
    assert settings["policy_kwargs"]["core_kwargs"] == {"forget_bias": 3.0}


def test_cue_in_view_starts_every_episode_next_to_the_cue(bench):
    env = bench.make_env(cue_in_view=True)
    starts = []
    for seed in range(12):
        env.reset(seed=seed)
        starts.append(tuple(env.unwrapped.agent_pos))
    assert {x for x, _ in starts} == {1}
    env.reset(seed=3)
    first = tuple(env.unwrapped.grid.encode().reshape(-1))
    env.reset(seed=3)
    assert tuple(env.unwrapped.grid.encode().reshape(-1)) == first  # reproducible from a seed
    env.close()
    plain = bench.make_env()
    assert {tuple(plain.reset(seed=s)[0]["image"].shape) for s in range(3)} == {(7, 7, 3)}
    assert any(plain.reset(seed=s) and plain.unwrapped.agent_pos[0] != 1 for s in range(12))
    plain.close()


def test_the_attempts_table_reruns_from_the_earlier_settings(bench):
    """docs/agents.md's table of attempts ran on the entry before MemoryS7 was solved
    (--earlier-settings); its last rows' changes, with the wrapper's one-hot codes, are the
    tuned settings now."""
    earlier, budget = bench.settings_for("conv", earlier=True)
    assert budget == tuned("ppo", ENV)[1]
    assert earlier["policy_kwargs"] == {"image_scale": None, "image_encoder": "conv"}
    assert (earlier["seq_len"], earlier["n_epochs"], earlier["gae_lambda"]) == (32, 4, 0.95)
    changes = {"n_steps": 128, "seq_len": 128, "n_minibatches": 4, "learning_rate": 1e-3,
               "lr_schedule": "constant", "gae_lambda": 0.8, "n_epochs": 8,
               "policy_kwargs": {"core_kwargs": {"forget_bias": 3.0}}}
    assert bench.settings_for("conv", changes, onehot=True, earlier=True)[0] == \
        bench.settings_for("conv", onehot=True)[0]
