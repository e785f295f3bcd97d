"""The variants' examples learn what they claim (slow: full training runs, ~25 s of CPU)."""
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
