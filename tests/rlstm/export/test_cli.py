"""``rlstm export`` (rlstm.export.cli.main, and its dispatch from the ``rlstm`` script)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from gymnasium import spaces

import rlstm
from rlstm.export.cli import main
from rlstm.policy import LSTMPolicy, ObsNormalizer
from rlstm.serialization import save_arrays

pytest.importorskip("onnxruntime")


@pytest.fixture
def model(tmp_path):
    """A trainer-format file with observation normalisation."""
    policy = LSTMPolicy(spaces.Box(-np.inf, np.inf, (4,), np.float32), spaces.Discrete(2),
                        hidden_size=8, seed=0, action_init_scale=1.0)
    norm = ObsNormalizer((4,))
    norm.update(np.random.default_rng(0).normal(0.0, 2.0, (64, 4)))
    path = tmp_path / "ppo.rlstm"
    save_arrays(path, {"policy/flat_params": policy.flat_params, **norm.state_dict("obs_norm/")},
                kind="PPO", meta={"policy": rlstm.io.describe(policy), "obs_norm": norm.config()})
    return path


def test_onnx_with_check(model, tmp_path, capsys):
    assert main([str(model), "--format", "onnx", "--out", str(tmp_path / "p.onnx"), "--check",
                 "--steps", "300"]) == 0
    out = capsys.readouterr().out
    assert "the whole observation is normalised" in out
    assert f"wrote {tmp_path / 'p.onnx'}" in out and "PASS (onnx): 300 steps" in out


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_with_check(model, tmp_path, capsys):
    assert main([str(model), "--format", "c", "--out", str(tmp_path) + "/", "--name", "cart",
                 "--check", "--steps", "300", "--no-value"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "cart.h").is_file() and (tmp_path / "cart.c").is_file()
    assert "value: not exported" in out and "PASS (c): 300 steps" in out


def test_a_failed_check_exits_1(model, tmp_path, capsys):
    assert main([str(model), "--format", "onnx", "--out", str(tmp_path / "p.onnx"), "--check",
                 "--steps", "20", "--atol", "0", "--rtol", "0"]) == 1
    assert "FAIL (onnx)" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["{missing}", "--format", "onnx", "--out", "{tmp}/p.onnx"], "no model file at"),
    (["{model}", "--format", "tflite", "--out", "{tmp}/p"], "argument --format: invalid choice"),
    (["{model}", "--format", "onnx"], "the following arguments are required: --out"),
    (["{model}", "--format", "onnx", "--out", "{tmp}/p.onnx", "--name", "x"],
     "--name is for --format c"),
    (["{model}", "--format", "c", "--out", "{tmp}/", "--primitive-cells"],
     "--primitive-cells is for --format onnx"),
    (["{model}", "--format", "c", "--out", "{tmp}/", "--name", "no-dash"], "C identifier"),
    (["{model}", "--format", "onnx", "--out", "{tmp}/p.onnx", "--steps", "0"],
     "--steps must be >= 1"),
    (["{model}", "--format", "onnx", "--out", "{tmp}/"], "is a folder"),
    (["{tmp}/junk", "--format", "onnx", "--out", "{tmp}/p.onnx"], "is not an rlstm file"),
    (["{model}", "--format", "onnx", "--out", "{tmp}/p.onnx", "--bogus"],
     "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, model, tmp_path, capsys):
    (tmp_path / "junk").write_text("junk")
    subs = {"model": str(model), "missing": str(tmp_path / "missing.rlstm"),
            "tmp": str(tmp_path)}
    assert main([a.format(**subs) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rlstm export: error: ") and message in err
    assert err.count("\n") == 1


def test_the_rlstm_script_dispatches_to_export(model, tmp_path, capsys):
    from agents.cli import main as rlstm_main
    assert rlstm_main(["export", str(model), "--format", "onnx",
                       "--out", str(tmp_path / "p.onnx")]) == 0
    assert (tmp_path / "p.onnx").is_file()
    assert rlstm_main(["export", str(model), "--format", "nope", "--out", "x"]) == 2


@pytest.fixture
def cartpole_model(tmp_path):
    """A trainer-format file that names the env it was trained on."""
    import gymnasium as gym

    def save(env_id):
        env = gym.make("CartPole-v1")
        policy = LSTMPolicy(env.observation_space, env.action_space, hidden_size=8, seed=0)
        path = tmp_path / f"{env_id.replace('/', '_')}.rlstm"
        save_arrays(path, {"policy/flat_params": policy.flat_params}, kind="PPO",
                    meta={"policy": rlstm.io.describe(policy), "obs_norm": None,
                          "env_id": env_id})
        return str(path)
    return save


def test_check_records_the_saved_env_or_falls_back_to_random(cartpole_model, tmp_path,
                                                             capsys):
    out = str(tmp_path / "p.onnx")
    assert main([cartpole_model("CartPole-v1"), "--format", "onnx", "--out", out, "--check",
                 "--steps", "200"]) == 0
    assert "episode(s) of CartPole-v1 observations" in capsys.readouterr().out
    assert main([cartpole_model("CartPole-v1"), "--format", "onnx", "--out", out, "--check",
                 "--steps", "200", "--random"]) == 0
    assert "(random observations)" in capsys.readouterr().out
    assert main([cartpole_model("rlstm/NotRegistered-v0"), "--format", "onnx", "--out", out,
                 "--check", "--steps", "200"]) == 0
    captured = capsys.readouterr()
    assert "the saved env 'rlstm/NotRegistered-v0' is not at hand" in captured.err
    assert "(random observations)" in captured.out
    assert main([cartpole_model("CartPole-v1"), "--format", "onnx", "--out", out, "--check",
                 "--env", "NoSuchEnv-v9"]) == 2
    assert "cannot make the env 'NoSuchEnv-v9'" in capsys.readouterr().err
