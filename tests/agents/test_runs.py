"""Runs you can manage: rlstm train never mixes two runs, leaves nothing after a failed start,
writes files with the user's umask, keeps a best model and plots several runs together; envs
from other packages through --import and module:id."""
import csv
import json
import os
import stat
import sys
import textwrap
import warnings

import numpy as np
import pytest

from agents import PPO, cli

TINY = ["--no-progress", "--eval-episodes", "1", "--set", "n_envs=2", "--set", "n_steps=16",
        "--set", "hidden_size=8"]


def _rows(folder):
    with open(os.path.join(folder, "progress.csv")) as f:
        return list(csv.DictReader(f))


def test_a_second_run_into_a_used_folder_gets_a_numbered_one(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "ppo", "CartPole-v1", "--timesteps", "64", "--out", str(out), *TINY]
    assert cli.main(argv + ["--seed", "1"]) == 0
    first = (out / "model.rlstm").read_bytes()
    assert cli.main(argv + ["--seed", "2"]) == 0
    assert cli.main(argv + ["--seed", "3"]) == 0
    assert "writing to " + str(tmp_path / "run_3") in capsys.readouterr().out
    assert (out / "model.rlstm").read_bytes() == first  # the first run is untouched
    for folder, seed in ((out, 1), (tmp_path / "run_2", 2), (tmp_path / "run_3", 3)):
        assert [int(r["timesteps"]) for r in _rows(folder)] == [32, 64]  # never appended
        assert PPO.load(folder / "model.rlstm").seed == seed
        assert json.loads((folder / "run.json").read_text())["seed"] == seed


def test_overwrite_reuses_the_folder_and_keeps_other_files(tmp_path):
    out = tmp_path / "run"
    argv = ["train", "ppo", "CartPole-v1", "--timesteps", "64", "--out", str(out), *TINY]
    assert cli.main(argv) == 0
    (out / "notes.txt").write_text("mine")
    assert cli.main(argv + ["--timesteps", "32", "--overwrite"]) == 0
    assert not (tmp_path / "run_2").exists()
    assert [int(r["timesteps"]) for r in _rows(out)] == [32]
    assert PPO.load(out / "model.rlstm").num_timesteps == 32
    assert (out / "notes.txt").read_text() == "mine"


def test_an_empty_folder_is_used_as_it_is(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    assert cli.main(["train", "ppo", "CartPole-v1", "--timesteps", "32", "--out", str(out),
                     *TINY]) == 0
    assert (out / "model.rlstm").exists() and not (tmp_path / "empty_2").exists()


def test_resume_continues_in_the_runs_own_folder_and_csv(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "ppo", "CartPole-v1", "--timesteps", "64", "--seed", "5",
                     "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert cli.main(["train", "ppo", "--resume", str(out / "model.rlstm"), "--timesteps", "32",
                     "--no-progress", "--eval-episodes", "1"]) == 0
    text = capsys.readouterr().out
    assert "on CartPole-v1" in text and "(seed 5)" in text and str(out) in text
    assert not (tmp_path / "run_2").exists()
    assert [int(r["timesteps"]) for r in _rows(out)] == [32, 64, 96]
    assert PPO.load(out / "model.rlstm").num_timesteps == 96
    info = json.loads((out / "run.json").read_text())
    assert [s["timesteps"] for s in info["segments"]] == [64, 32]
    assert info["segments"][1]["resume"] == str(out / "model.rlstm")


def test_a_failed_start_leaves_no_folder(tmp_path, capsys, monkeypatch):
    out = tmp_path / "runs" / "bad"
    # a config error found by the trainer after the folder was claimed
    monkeypatch.setattr(PPO, "_init_algorithm",
                        lambda self: (_ for _ in ()).throw(ValueError("no good")))
    assert cli.main(["train", "ppo", "CartPole-v1", "--timesteps", "32", "--out", str(out),
                     *TINY]) == 2
    assert "no good" in capsys.readouterr().err
    assert not out.exists()


def test_a_run_that_fails_after_an_iteration_keeps_its_checkpoint(tmp_path, capsys,
                                                                    monkeypatch):
    out = tmp_path / "run"
    real = PPO._iteration
    calls = []

    def failing(self, progress):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the env's server went away")
        return real(self, progress)

    monkeypatch.setattr(PPO, "_iteration", failing)
    assert cli.main(["train", "ppo", "CartPole-v1", "--timesteps", "128", "--out", str(out),
                     *TINY]) == 2
    assert "server went away" in capsys.readouterr().err
    model = PPO.load(out / "checkpoint.rlstm")
    assert model.num_timesteps == 64  # the last whole iteration before the fault
    assert [int(r["timesteps"]) for r in _rows(out)] == [32, 64]


def test_files_follow_the_users_umask(tmp_path):
    old = os.umask(0o027)
    try:
        out = tmp_path / "run"
        assert cli.main(["train", "ppo", "CartPole-v1", "--timesteps", "32", "--out", str(out),
                         *TINY]) == 0
    finally:
        os.umask(old)
    for name in ("model.rlstm", "checkpoint.rlstm", "progress.csv", "run.json"):
        assert stat.S_IMODE(os.stat(out / name).st_mode) == 0o640, name
    os.chmod(out / "model.rlstm", 0o644)  # an existing file keeps the mode it has
    PPO.load(out / "model.rlstm").save(out / "model.rlstm")
    assert stat.S_IMODE(os.stat(out / "model.rlstm").st_mode) == 0o644


def test_eval_freq_keeps_the_best_model(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "ppo", "CartPole-v1", "--timesteps", "96", "--out", str(out),
                     "--eval-freq", "32", *TINY]) == 0
    assert "best model -> " in capsys.readouterr().out
    best = PPO.load(out / "best_model.rlstm")
    assert best.num_timesteps in (32, 64, 96)
    rows = _rows(out)
    evals = [float(r["eval_return_mean"]) for r in rows]
    assert len(evals) == 3 and all(np.isfinite(evals))
    assert best.num_timesteps == int(rows[int(np.argmax(evals))]["timesteps"])


def test_plot_draws_groups_of_runs(tmp_path, capsys):
    for seed in (1, 2):
        assert cli.main(["train", "ppo", "CartPole-v1", "--timesteps", "256", "--seed",
                         str(seed), "--out", str(tmp_path / f"ppo-{seed}"), *TINY]) == 0
    assert cli.main(["train", "a2c", "CartPole-v1", "--timesteps", "64", "--out",
                     str(tmp_path / "a2c-1"), "--no-progress", "--eval-episodes", "1",
                     "--set", "n_envs=2", "--set", "n_steps=16"]) == 0
    png = tmp_path / "cmp.png"
    runs = [str(tmp_path / n) for n in ("ppo-1", "ppo-2", "a2c-1")]
    assert cli.main(["plot", *runs, "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from agents.logger import run_group
    assert [run_group(r) for r in runs] == ["ppo on CartPole-v1"] * 2 + ["a2c on CartPole-v1"]
    os.remove(os.path.join(runs[0], "run.json"))
    assert run_group(runs[0]) == "ppo" and run_group(runs[0] + "_3", "name") == "ppo"
    assert run_group(runs[0], "none") == "ppo-1"
    capsys.readouterr()
    assert cli.main(["plot", str(tmp_path / "nothing"), "--out", str(png)]) == 2
    assert "has no progress.csv" in capsys.readouterr().err
    assert cli.main(["plot", runs[1], "--column", "nope", "--out", str(png)]) == 2
    assert "has no column 'nope'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "progress.csv").write_text("timesteps,ep_return_mean\n")  # started, no row yet
    with pytest.warns(UserWarning, match="no logged values of 'ep_return_mean' yet; left out"):
        assert cli.main(["plot", runs[1], str(empty), "--out", str(png)]) == 0


def test_plot_runs_means_over_every_run_of_a_group(tmp_path, monkeypatch):
    from agents import logger
    for name, steps, values in (("a-1", [10, 20, 30], [0, 10, 20]),
                                ("a-2", [10, 20], [2, 4])):
        d = tmp_path / name
        d.mkdir()
        with open(d / "progress.csv", "w") as f:
            f.write("timesteps,ep_return_mean\n")
            f.writelines(f"{s},{v}\n" for s, v in zip(steps, values))
    seen = {}
    real = np.stack
    monkeypatch.setattr(logger.np, "stack", lambda a, *k: seen.setdefault("ys", real(a, *k)))
    logger.plot_runs([tmp_path / "a-1", tmp_path / "a-2"], tmp_path / "p.png", group_by="name")
    np.testing.assert_array_equal(seen["ys"], [[0, 10], [2, 4]])  # up to the shortest run


def test_a_new_python_run_starts_its_csv_afresh_and_a_loaded_one_continues(tmp_path):
    kw = dict(n_envs=2, n_steps=16, hidden_size=8, log_dir=str(tmp_path), seed=0)
    PPO("CartPole-v1", **kw).learn(64)
    assert len(_rows(tmp_path)) == 2
    with pytest.warns(UserWarning, match="holds an earlier run's rows"):
        PPO("CartPole-v1", **kw).learn(32)
    assert [int(r["timesteps"]) for r in _rows(tmp_path)] == [32]
    m = PPO.load(tmp_path / "checkpoint.rlstm", log_dir=str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.learn(32)
    assert [int(r["timesteps"]) for r in _rows(tmp_path)] == [32, 64]
    m.learn(32, reset_num_timesteps=True)  # a new series: the file starts again
    assert [int(r["timesteps"]) for r in _rows(tmp_path)] == [32]


def test_a_trainer_creates_no_folder_before_it_logs(tmp_path):
    m = PPO("CartPole-v1", n_envs=2, n_steps=16, hidden_size=8, log_dir=str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()
    m.learn(16)
    assert (tmp_path / "x" / "progress.csv").exists()


@pytest.fixture
def env_package(tmp_path, monkeypatch):
    """A package on sys.path that registers ``thirdparty/Corridor-v0`` when imported."""
    pkg = tmp_path / "pkgs" / "my_envs"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import gymnasium as gym
        gym.register("thirdparty/Corridor-v0", entry_point="gymnasium.envs.classic_control:"
                     "CartPoleEnv", max_episode_steps=50)
    """))
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    yield "my_envs"
    sys.modules.pop("my_envs", None)
    import gymnasium as gym
    gym.registry.pop("thirdparty/Corridor-v0", None)


def test_envs_from_another_package(tmp_path, capsys, env_package):
    capsys.readouterr()
    assert cli.main(["train", "ppo", "thirdparty/Corridor-v0", "--timesteps", "32", "--out",
                     str(tmp_path / "a"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "unknown Gymnasium id 'thirdparty/Corridor-v0'" in err and "--import" in err
    assert not (tmp_path / "a").exists()
    assert cli.main(["train", "ppo", "thirdparty/Corridor-v0", "--import", env_package,
                     "--timesteps", "32", "--out", str(tmp_path / "a"), *TINY]) == 0
    sys.modules.pop("my_envs")
    import gymnasium as gym
    gym.registry.pop("thirdparty/Corridor-v0")
    assert cli.main(["train", "ppo", f"{env_package}:thirdparty/Corridor-v0", "--timesteps",
                     "32", "--out", str(tmp_path / "b"), *TINY]) == 0
    m = PPO.load(tmp_path / "b" / "model.rlstm")
    assert m.env_id == "my_envs:thirdparty/Corridor-v0"  # loads again in a fresh process
    assert cli.main(["train", "ppo", "CartPole-v1", "--import", "no_such_module_xyz",
                     "--out", str(tmp_path / "c"), *TINY]) == 2
    assert "--import no_such_module_xyz: No module named" in capsys.readouterr().err
