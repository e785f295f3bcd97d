"""The supervised-training examples run and reach their numbers (small settings; slow)."""
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_adding_problem_is_solved(tmp_path):
    res = load("adding_problem").main(["--T", "100", "--epochs", "30", "--target", "0.005",
                                       "--out", str(tmp_path / "m.rlstm")])
    assert res["test_mse"] < 0.01 < 0.1 < res["baseline"]


@pytest.mark.slow
def test_time_series_beats_baselines(tmp_path):
    res = load("time_series").main(["--epochs", "8", "--out", str(tmp_path / "ts.png")])
    assert res["lstm"] < 0.7 * min(res["persistence"], res["seasonal"])
    assert (tmp_path / "ts.png").stat().st_size > 10_000


@pytest.mark.slow
def test_anomaly_detection_finds_most_events(tmp_path):
    res = load("anomaly_detection").main(["--epochs", "40", "--out", str(tmp_path / "a.png")])
    assert res["events_detected"] >= 0.6 * res["events"]
    assert res["false_alarms"] < 60
