"""The examples learn what they claim (slow: full training runs)."""
from __future__ import annotations

import pytest


@pytest.mark.slow
def test_sequence_ctc_label_error_rate_falls_far_below_chance(load_example):
    res = load_example("sequence_ctc").main(["--steps", "200"])
    assert res["chance"] > 0.7 and res["before"] > 0.7
    assert res["final"] < 0.1


@pytest.mark.slow
def test_peephole_lstm_times_better_than_vanilla(load_example):
    res = load_example("peephole_timing").main([])
    mean = (lambda runs: sum(r[0] for r in runs) / len(runs))
    assert mean(res["peephole"]) < 0.5 * mean(res["vanilla"])
    assert sum(r[1] > 0.99 for r in res["peephole"]) >= 2 > sum(r[1] > 0.99
                                                                for r in res["vanilla"])


@pytest.mark.slow
def test_adding_problem_is_solved(tmp_path, load_example):
    res = load_example("adding_problem").main(["--T", "100", "--epochs", "30", "--target",
                                               "0.005", "--out", str(tmp_path / "m.rlstm")])
    assert res["test_mse"] < 0.01 < 0.1 < res["baseline"]


@pytest.mark.slow
def test_time_series_beats_baselines(tmp_path, load_example):
    res = load_example("time_series").main(["--epochs", "8", "--out",
                                            str(tmp_path / "ts.png")])
    assert res["lstm"] < 0.7 * min(res["persistence"], res["seasonal"])
    assert (tmp_path / "ts.png").stat().st_size > 10_000


@pytest.mark.slow
def test_anomaly_detection_finds_most_events(tmp_path, load_example):
    res = load_example("anomaly_detection").main(["--epochs", "40", "--out",
                                                  str(tmp_path / "a.png")])
    assert res["events_detected"] >= 0.6 * res["events"]
    assert res["false_alarms"] < 60


@pytest.mark.slow
def test_variable_length_training_with_lengths_beats_reading_the_padding(load_example):
    for argv in ([], ["--bidirectional"]):
        res = load_example("variable_length").main(argv)
        assert res["with lengths"] > 0.9
        assert res["with lengths"] > res["reading the padding"] + 0.1
