"""EvalCallback and CheckpointCallback: evaluations logged in the same row, early stop, best
model."""
import csv
import os

import pytest

from agents import PPO, CheckpointCallback, EvalCallback


def test_callbacks_and_csv_log(tmp_path, tiny):
    ev = EvalCallback("CartPole-v1", eval_freq=16, n_episodes=2, reward_threshold=1.0,
                      best_model_path=str(tmp_path / "best.rlstm"))
    ck = CheckpointCallback(16, tmp_path / "ck.rlstm")
    m = PPO("CartPole-v1", seed=0, log_dir=str(tmp_path), **tiny)
    m.learn(160, callback=[ev, ck])
    assert m.num_timesteps == 16  # the first evaluation passed the threshold: stopped
    assert len(ev.results) == 1 and ev.results[0][1] >= 1.0
    assert os.path.exists(tmp_path / "best.rlstm") and os.path.exists(tmp_path / "ck.rlstm")
    with open(tmp_path / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and float(rows[0]["timesteps"]) == 16
    assert float(rows[0]["eval_return_mean"]) == pytest.approx(ev.results[0][1])
