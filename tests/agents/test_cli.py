"""The rlstm command line: train with a tiny budget, then evaluate what it saved."""
import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from agents import cli


def _train(tmp_path, *extra):
    out = tmp_path / "run"
    code = cli.main(["train", "ppo", "CartPole-v1", "--timesteps", "64", "--seed", "3",
                     "--out", str(out), "--no-progress", "--eval-episodes", "2",
                     "--set", "n_envs=2", "--set", "n_steps=16", "--set", "hidden_size=8",
                     *extra])
    assert code == 0
    return out


def test_train_writes_model_csv_png_and_prints_evaluation(tmp_path, capsys):
    out = _train(tmp_path)
    for name in ("model.rlstm", "progress.csv", "learning_curve.png", "checkpoint.rlstm"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["timesteps"]) for r in rows] == [32, 64]
    assert (out / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "final evaluation over 2 episodes" in text
    from agents import PPO
    m = PPO.load(out / "model.rlstm")
    assert m.num_timesteps == 64 and m.config.n_envs == 2 and m.seed == 3


def test_evaluate_saved_model(tmp_path, capsys):
    out = _train(tmp_path)
    capsys.readouterr()
    assert cli.main(["evaluate", str(out / "model.rlstm"), "--episodes", "3"]) == 0
    line = capsys.readouterr().out
    assert "CartPole-v1" in line and "over 3 episodes" in line
    mean = float(line.split(": ")[1].split(" +/-")[0])
    assert 8 <= mean <= 500


def test_render_without_imageio_is_a_clear_message(tmp_path, capsys, monkeypatch):
    out = _train(tmp_path)
    monkeypatch.setitem(sys.modules, "imageio", None)  # import fails
    code = cli.main(["evaluate", str(out / "model.rlstm"), "--episodes", "1", "--render",
                     str(tmp_path / "x.gif")])
    assert code == 2
    assert "pip install imageio" in capsys.readouterr().err


def test_resume_continues_step_count(tmp_path):
    out = _train(tmp_path)
    out2 = tmp_path / "run2"
    assert cli.main(["train", "ppo", "CartPole-v1", "--timesteps", "32", "--out", str(out2),
                     "--no-progress", "--eval-episodes", "1",
                     "--resume", str(out / "model.rlstm")]) == 0
    from agents import PPO
    assert PPO.load(out2 / "model.rlstm").num_timesteps == 96


@pytest.mark.parametrize("argv, match", [
    (["train", "nope"], r"unknown algorithm 'nope'; choose one of a2c, "),
    (["train", "ppo", "CartPole-v1", "--set", "n_envs"], r"--set expects key=value"),
    (["train", "ppo", "CartPole-v1", "--set", "bogus=1"], r"unknown PPOConfig settings 'bogus'"),
    (["train", "ppo", "CartPole-v1", "--set", "normalize_obs=no"],
     r"PPOConfig\.normalize_obs must be a bool \(True or False\), got 'no' \(use true/false"),
    (["train", "ppo", "CartPole-v1", "--set", "learning_rate=abc"],
     r"PPOConfig\.learning_rate must be a number > 0, got 'abc'"),
    (["train", "ppo", "NoSuchEnv-v9"], r"unknown Gymnasium id 'NoSuchEnv-v9'"),
    (["train", "--timesteps", "0"], r"--timesteps must be >= 1"),
    (["evaluate", "{tmp}/missing.rlstm"], r"no such file: .*missing\.rlstm"),
    (["evaluate", "README.md"], r"README\.md is not an rlstm file \(rlstm files are \.npz"),
    (["train", "ppo", "--resume", "{tmp}/missing.rlstm"], r"no such file"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_2(tmp_path, capsys, argv, match):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if argv[0] == "train" and "--out" not in argv:
        argv = argv + ["--out", str(tmp_path / "o")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rlstm: "), err
    assert re.search(match, err), err


def test_a_missing_env_family_gives_the_install_hint_first(capsys):
    try:
        import mujoco  # noqa: F401
        pytest.skip("MuJoCo is installed here")
    except ImportError:
        pass
    assert cli.main(["train", "ppo", "HalfCheetah-v5", "--timesteps", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "gymnasium[mujoco]"' in err


def test_algorithms_are_the_registered_trainers():
    import agents
    for name, cls in agents.TRAINERS.items():
        assert cli.load_algorithm(name.upper()) is cls and issubclass(cls, agents.Trainer)
    with pytest.raises(ValueError, match="unknown algorithm 'nope'; choose one of a2c"):
        cli.load_algorithm("nope")


def test_console_script_help():
    r = subprocess.run([sys.executable, "-c", "import sys; from agents.cli import main; "
                        "sys.exit(main(['train', '--help']))"], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert r.returncode == 0 and "--timesteps" in r.stdout and "CartPoleNoVel" in r.stdout
    np.testing.assert_equal(r.stderr.strip(), "")


def test_bench_delegates_to_rlstm_benchmark(monkeypatch):
    import rlstm.benchmark
    seen = []
    monkeypatch.setattr(rlstm.benchmark, "main", lambda argv: seen.append(argv) or ["rows"])
    assert cli.main(["bench", "--quick", "x"]) == 0
    assert seen == [["--quick", "x"]]


def test_tuned_settings_are_the_starting_point_and_set_overrides_them(tmp_path, capsys):
    out = tmp_path / "pend"
    assert cli.main(["train", "ppo", "rlstm/PendulumNoVel-v1", "--timesteps", "64", "--out",
                     str(out), "--no-progress", "--eval-episodes", "1", "--set", "n_envs=2",
                     "--set", "n_steps=16", "--set", "seq_len=8", "--set",
                     "n_minibatches=2"]) == 0
    assert "tuned settings for ppo on rlstm/PendulumNoVel-v1" in capsys.readouterr().out
    from agents import PPO
    m = PPO.load(out / "model.rlstm")
    assert m.config.use_sde and m.config.gamma == 0.9 and m.config.n_envs == 2
    assert m.policy.use_sde and m.policy.params["log_std"].shape == (64, 1)
    out2 = tmp_path / "plain"
    assert cli.main(["train", "ppo", "rlstm/PendulumNoVel-v1", "--timesteps", "32", "--out",
                     str(out2), "--no-progress", "--eval-episodes", "1", "--no-tuned",
                     "--set", "n_envs=2", "--set", "n_steps=16"]) == 0
    assert "tuned settings" not in capsys.readouterr().out
    assert not PPO.load(out2 / "model.rlstm").config.use_sde


def test_cli_trains_and_evaluates_an_es_model(tmp_path, capsys):
    from agents.cli import main
    out = tmp_path / "run"
    rc = main(["train", "ga", "CartPole-v1", "--timesteps", "3000", "--out", str(out),
               "--no-progress", "--eval-episodes", "2", "--set", "population_size=8",
               "--set", "truncation=2", "--set", "max_episode_steps=50"])
    assert rc == 0
    for f in ("model.rlstm", "progress.csv", "learning_curve.png", "checkpoint.rlstm"):
        assert (out / f).exists(), f
    assert main(["evaluate", str(out / "model.rlstm"), "--episodes", "2"]) == 0
    assert "CartPole-v1" in capsys.readouterr().out


def test_timesteps_help_gives_each_algorithms_default_budget():
    import agents
    sub = next(a for a in cli.build_parser()._actions if a.choices and "train" in a.choices)
    text = " ".join(sub.choices["train"].format_help().split())
    for name, cls in agents.TRAINERS.items():
        assert re.search(rf"{cls.default_timesteps} for [\w, ]*\b{name}\b", text), name
    assert "1000000 for es" in text and "100000 for ppo" in text
