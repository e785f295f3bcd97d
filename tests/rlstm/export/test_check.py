"""The side-by-side check of an artefact against Predictor.predict (rlstm.export.check)."""
from __future__ import annotations

import numpy as np
import pytest
from gymnasium import spaces

import rlstm
from rlstm.export import CheckReport, ExportPlan, check, to_onnx
from rlstm.export.check import random_observations
from rlstm.policy import LSTMPolicy, ObsNormalizer
from rlstm.serialization import save_arrays

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

BOX = spaces.Box(-np.inf, np.inf, (3,), np.float32)


def _policy(seed=0, **kw):
    return LSTMPolicy(BOX, spaces.Discrete(3), hidden_size=8, seed=seed, action_init_scale=1.0,
                      **kw)


def test_report_of_a_passing_check(tmp_path):
    policy = _policy()
    report = check(policy, to_onnx(policy, tmp_path / "p.onnx"), steps=200, batch_size=2)
    assert isinstance(report, CheckReport) and report.ok
    assert (report.format, report.steps, report.batch_size) == ("onnx", 200, 2)
    assert report.action_mismatches == report.out_of_tolerance == 0
    assert 0 < report.max_state_diff < 1e-5 and 0 <= report.max_value_diff < 1e-5
    assert str(report).startswith("PASS (onnx): 200 steps x 2 env(s)")


def test_the_check_fails_for_another_models_artefact(tmp_path):
    path = to_onnx(_policy(seed=1), tmp_path / "other.onnx")
    report = check(_policy(seed=0), path, steps=200)
    assert not report.ok and report.action_mismatches > 0
    assert str(report).startswith("FAIL")
    with pytest.raises(ValueError, match="was not exported from this model"):
        check(LSTMPolicy(BOX, spaces.Discrete(3), hidden_size=4), path, steps=10)


def test_zero_tolerance_fails_on_float_rounding(tmp_path):
    policy = _policy()
    report = check(policy, to_onnx(policy, tmp_path / "p.onnx"), steps=50, atol=0, rtol=0)
    assert not report.ok and report.out_of_tolerance > 0 and report.action_mismatches == 0


def test_given_observations_and_episode_starts(tmp_path):
    policy = _policy()
    path = to_onnx(policy, tmp_path / "p.onnx")
    rng = np.random.default_rng(0)
    obs = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(30)]
    starts = np.zeros((30, 2), bool)
    starts[10, 1] = True
    report = check(policy, path, steps=30, batch_size=2, observations=obs,
                   episode_starts=starts)
    assert report.ok and report.episode_starts == 3  # step 0 (both envs) and one more
    with pytest.raises(ValueError, match="observations must hold steps=31 batches"):
        check(policy, path, steps=31, batch_size=2, observations=obs)
    with pytest.raises(ValueError, match=r"episode_starts must have shape \(30, 2\)"):
        check(policy, path, steps=30, batch_size=2, observations=obs,
              episode_starts=starts[:, :1])


def test_a_trainer_file_with_normalisation(tmp_path):
    """A file in the trainers' format: its normaliser goes into the artefact."""
    policy = _policy()
    norm = ObsNormalizer((3,), clip=2.0)
    norm.update(np.random.default_rng(0).normal(5.0, 0.5, (100, 3)))
    save_arrays(tmp_path / "a2c.rlstm", {"policy/flat_params": policy.flat_params,
                                         **norm.state_dict("obs_norm/")},
                kind="A2C", meta={"policy": rlstm.io.describe(policy), "obs_norm": norm.config()})
    path = to_onnx(tmp_path / "a2c.rlstm", tmp_path / "a2c.onnx")
    assert check(tmp_path / "a2c.rlstm", path, steps=300).ok
    # the same weights without the normaliser act differently
    assert not check(policy, path, steps=300).ok


def test_random_observations_are_valid_and_varied(make_case):
    plan = ExportPlan(make_case("dict-obs-mask-dict-action-normalised"))
    obs = random_observations(plan, 200, 2, seed=0)
    mask = np.stack([o["action_mask"] for o in obs]).reshape(-1, 6)
    assert mask[:, :2].any(axis=1).all() and mask[:, 2:5].any(axis=1).all()
    assert mask[:, 5].all() and not mask[:, :5].all()  # pick[1] has one action; others vary
    modes = np.concatenate([o["mode"] for o in obs])
    assert set(modes.tolist()) == {2, 3, 4, 5}
    grid = np.concatenate([o["grid"] for o in obs])
    assert set(grid[:, 0].tolist()) == {-1, 0} and set(grid[:, 1].tolist()) == {1, 2, 3}
    plan = ExportPlan(make_case("lstm-box-normalised"))
    x = np.concatenate(random_observations(plan, 300, 1, seed=0))
    z = np.abs((x - plan.normalize[0]) / plan.normalize[1])
    assert (z > plan.normalize[2]).mean() > 0.1  # the clip is exercised


def test_bad_arguments(tmp_path):
    policy = _policy()
    path = to_onnx(policy, tmp_path / "p.onnx")
    with pytest.raises(ValueError, match="steps and batch_size must be ints >= 1"):
        check(policy, path, steps=0)
    with pytest.raises(ValueError, match="format must be 'onnx' or 'c'"):
        check(policy, path, format="tflite")
    with pytest.raises(ValueError, match="cannot tell the format"):
        check(policy, tmp_path / "p.bin")
    with pytest.raises(FileNotFoundError, match="no ONNX model"):
        check(policy, tmp_path / "missing.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"\x00junk")
    with pytest.raises(ValueError, match="is not an ONNX model"):
        check(policy, tmp_path / "junk.onnx")


def test_recorded_episodes_of_an_env(tmp_path):
    import gymnasium as gym
    env = gym.make("CartPole-v1")
    policy = LSTMPolicy(env.observation_space, env.action_space, hidden_size=8, seed=0,
                        action_init_scale=1.0)
    path = to_onnx(policy, tmp_path / "cart.onnx")
    report = check(policy, path, steps=400, env="CartPole-v1")
    episodes = int(report.observations.split()[0])
    assert report.ok and report.observations.endswith("episode(s) of CartPole-v1")
    assert episodes > 2 and report.episode_starts == episodes  # the env's own resets
    assert check(policy, path, steps=50, env=env).ok  # an instance works too
    with pytest.raises(ValueError, match="cannot make the env 'NoSuchEnv-v9'"):
        check(policy, path, steps=10, env="NoSuchEnv-v9")
    with pytest.raises(ValueError, match="one env at a time"):
        check(policy, path, steps=10, env="CartPole-v1", batch_size=2)
    with pytest.raises(ValueError, match="the env 'Pendulum-v1' observes Box"):
        check(policy, path, steps=10, env="Pendulum-v1")


def test_tolerance_is_absolute_up_to_1_and_relative_beyond():
    from rlstm.export.check import differences
    ref = np.array([0.5, -0.9, 38.0, -20.0])
    largest, beyond = differences(ref + [9e-6, -9e-6, 3e-4, -1.9e-4], ref, 1e-5, 1e-5)
    assert beyond == 0 and largest == pytest.approx(3e-4)
    largest, beyond = differences(ref + [2e-5, 0, 4e-4, 0], ref, 1e-5, 1e-5)
    assert beyond == 2 and largest == pytest.approx(4e-4)
    assert differences(ref + [1e-6, 0, 9e-6, 0], ref, 1e-5, 0.0)[1] == 0
    assert differences(ref + [0, 0, 2e-5, 0], ref, 1e-5, 0.0)[1] == 1   # absolute only
    largest, beyond = differences(np.array([np.nan, 0.5]), np.array([0.0, 0.5]), 1e-5, 1e-5)
    assert np.isnan(largest) and beyond == 1


def test_without_onnxruntime_the_error_says_how_to_install(tmp_path, monkeypatch):
    import sys
    policy = _policy()
    path = to_onnx(policy, tmp_path / "p.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"pip install 'rlstm\[export\]'"):
        check(policy, path, steps=5)
