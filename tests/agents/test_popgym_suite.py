"""benchmarks/popgym_suite.py's pure parts (task list, MMER, the clear-win rule, the report
table), its memoryless baseline, and POPGym's envs as the suite builds them (skipped without
popgym)."""
from __future__ import annotations

import numpy as np
import pytest

import rlstm
from agents.hyperparams import POPGYM_BUDGET, POPGYM_FAMILIES, POPGYM_LEVELS, tuned


@pytest.fixture(scope="module")
def suite(load_script):
    return load_script("benchmarks/popgym_suite.py")


def test_task_list_is_every_family_at_every_level_in_popgym_order(suite):
    tasks = suite.task_list()
    assert len(tasks) == len(POPGYM_FAMILIES) * len(POPGYM_LEVELS) == 32
    assert tasks[:3] == [("Autoencode", "Easy"), ("Autoencode", "Medium"),
                         ("RepeatPrevious", "Easy")]
    assert suite.task_list(["RepeatFirst", "CountRecallMedium"], ["Easy", "Medium"]) == [
        ("RepeatFirst", "Easy"), ("RepeatFirst", "Medium"), ("CountRecall", "Medium")]
    assert suite.task_id("MineSweeper", "Hard") == "popgym-MineSweeperHard-v0"
    with pytest.raises(ValueError, match="unknown POPGym env"):
        suite.task_list(["RepeatFrist"])
    with pytest.raises(ValueError, match="unknown level"):
        suite.task_list(None, ["Extreme"])


def test_every_task_has_the_suite_budget_and_settings(suite):
    for family, level in suite.task_list():
        settings, budget = tuned("ppo", suite.task_id(family, level))
        assert budget == POPGYM_BUDGET
        assert settings == suite.settings_for(family, level)
    assert suite.settings_for("RepeatFirst", "Easy", {"n_epochs": 3})["n_epochs"] == 3


def test_mmer_is_the_best_logged_mean_skipping_gaps(suite):
    assert suite.mmer([None, -0.5, 0.25, float("nan"), 0.1]) == 0.25
    assert suite.mmer([None, None]) is None


def test_summary_and_the_clear_win_rule(suite):
    s = suite.summary([0.5, 0.7, None, 0.6])
    assert s == pytest.approx({"mean": 0.6, "std": np.std([0.5, 0.7, 0.6]), "min": 0.5,
                               "max": 0.7, "n": 3})
    assert suite.summary([None]) is None
    base = suite.summary([0.1, 0.2, 0.3])
    assert suite.beats(suite.summary([0.4, 0.5, 0.6]), base)
    assert not suite.beats(suite.summary([0.25, 0.5, 0.6]), base)     # a seed below its best
    assert suite.beats(suite.summary([0.31, 0.32, 0.33]), base)       # 0.12 up, no overlap
    assert not suite.beats(suite.summary([0.31, 0.32, 0.33]), base, margin=0.15)
    assert not suite.beats(suite.summary([0.32]), suite.summary([0.3]))  # < 0.05 up
    assert suite.beats(None, base) is None


def _record(agent, seed, final, **more):
    rec = {"family": "RepeatFirst", "level": "Easy", "agent": agent, "seed": seed,
           "budget": 0 if agent == "random" else 1_000_000, "final": final, "wall": 100.0,
           "sps": 10_000.0, "mmer": None, "greedy": None}
    rec.update(more)
    return rec


def test_report_table_rows_and_aggregate(suite):
    records = [_record("rlstm", s, f, greedy=f + 0.01, mmer=f + 0.02, wall=90.0 + s)
               for s, f in enumerate([0.9, 0.95, 1.0])]
    records += [_record("memoryless", s, -0.4 + 0.1 * s) for s in range(3)]
    records += [_record("random", 0, -0.5),
                {**_record("rlstm", 0, 0.2, mmer=0.3), "family": "Autoencode"},
                {**_record("memoryless", 0, 0.19), "family": "Autoencode"}]
    table = suite.format_table(records).splitlines()
    assert table[0].startswith("| task | seeds | budget | rlstm final |")
    # POPGym's order: Autoencode before RepeatFirst
    assert table[2] == ("| AutoencodeEasy | 0 | 1000k | 0.20 | – | 0.30 | 0.19 | – | **no** "
                        "| 10,000 | 100 s |")
    assert table[3] == ("| RepeatFirstEasy | 0, 1, 2 | 1000k | 0.95 (0.90…1.00) | "
                        "0.96 (0.91…1.01) | 0.97 (0.92…1.02) | -0.30 (-0.40…-0.20) | -0.50 "
                        "| yes | 10,000 | 91 s |")
    assert table[-1].startswith("Mean rlstm MMER over these 2 tasks: 0.635 ")
    assert "GRU 0.349" in table[-1]


def test_sb3_table_gives_the_wall_clock_ratio(suite):
    records = [_record("rlstm", 0, 0.9, wall=20.0), _record("sb3", 0, 0.8, wall=300.0,
                                                             sps=1_000.0)]
    # rlstm's other seeds, and a run at another budget, stay out of the comparison
    records += [_record("rlstm", 1, 0.1, wall=1.0), _record("rlstm", 0, 0.2, wall=2.0,
                                                             budget=30_000)]
    rows = suite.format_sb3(records).splitlines()
    assert len(rows) == 3
    assert rows[2] == ("| RepeatFirstEasy | 1000k | 0 | 0.90 | 0.80 | 10,000 | 1,000 | 20 s "
                       "| 300 s | 15.0× |")
    assert suite.format_sb3(records[:1]).startswith("No task has both")
    assert suite.format_sb3([records[1], records[2]]).startswith("No task has both")


def test_memoryless_cores_forget_every_step_and_are_restored(suite):
    lstm = rlstm.LSTM(3, 5, seed=0)
    forward, step = rlstm.LSTM.forward, rlstm.LSTM.step
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    y_mem, _ = lstm(x)
    with suite.memoryless_cores():
        y, _, _ = lstm.forward(x)
        h, state = lstm.step(x[1], lstm.step(x[0])[1])
    assert not np.allclose(y, y_mem)            # the state carried something
    for t in range(4):                         # every step as if it were the first
        np.testing.assert_allclose(y[t], lstm(x[t:t + 1])[0][0], rtol=1e-6)
    np.testing.assert_allclose(h, lstm(x[1:2])[0][0], rtol=1e-6)
    assert (rlstm.LSTM.forward, rlstm.LSTM.step) == (forward, step)  # restored
    np.testing.assert_allclose(lstm.forward(x)[0], y_mem)


# ------------------------------------------------------------------ with POPGym installed
def test_envs_are_wrapped_as_the_paper_runs_them(suite):
    pytest.importorskip("popgym")
    from gymnasium import spaces
    env = suite.make_env("RepeatPrevious", "Easy")
    assert isinstance(env.observation_space, spaces.Tuple)
    obs, _ = env.reset(seed=0)
    assert obs[-1] == 1 and obs[-2] == 0     # first step flag, null previous action
    obs, *_ = env.step(3)
    assert obs[-1] == 0 and obs[-2] == 3
    with pytest.raises(ValueError, match="no popgym-RepeatPreviousExtreme-v0"):
        suite.make_env("RepeatPrevious", "Extreme")


def test_returns_are_popgyms_own_normalised_returns(suite):
    """POPGym scales each env's reward so that an episode's return lies in [-1, 1]: the suite
    reports the envs' own returns (random play on RepeatPrevious scores about -0.5)."""
    pytest.importorskip("popgym")
    res = suite.random_returns("RepeatPrevious", "Easy", 20, seed=0)
    assert -0.8 < res["final"] < -0.2
    env = suite.make_env("PositionOnlyCartPole", "Easy")
    env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        _, r, terminated, truncated, _ = env.step(1)
        total += r
        done = terminated or truncated
    assert 0 < total < 1


def test_a_suite_run_trains_and_records_everything(suite):
    pytest.importorskip("popgym")
    job = {"family": "RepeatPrevious", "level": "Easy", "agent": "rlstm", "seed": 0,
           "budget": 512, "eval_episodes": 2,
           "settings": {**suite.settings_for("RepeatPrevious", "Easy"), "n_envs": 2,
                        "n_steps": 32, "seq_len": 16, "n_epochs": 1, "hidden_size": 8}}
    rec = suite.run_job(job)
    assert rec["steps"] == 512 and rec["env"] == "popgym-RepeatPreviousEasy-v0"
    assert -1 <= rec["final"] <= 1 and -1 <= rec["greedy"] <= 1
    assert rec["mmer"] is not None and rec["sps"] > 0 and rec["wall"] > 0
    again = suite.run_job(job)                 # deterministic from the seed
    assert (again["final"], again["mmer"]) == (rec["final"], rec["mmer"])
    forward = rlstm.LSTM.forward
    ml = suite.run_job({**job, "agent": "memoryless"})
    assert ml["steps"] == 512 and ml["mmer"] is not None
    assert rlstm.LSTM.forward is forward
