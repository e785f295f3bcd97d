"""The variants' examples learn what they claim (slow: full training runs, ~25 s of CPU)."""
from __future__ import annotations

import pathlib
import runpy

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.slow
def test_sequence_ctc_label_error_rate_falls_far_below_chance():
    g = runpy.run_path(str(EXAMPLES / "sequence_ctc.py"), run_name="example")
    assert g["chance_err"] > 0.7
    assert g["final"] < 0.1


@pytest.mark.slow
def test_peephole_lstm_times_better_than_vanilla():
    g = runpy.run_path(str(EXAMPLES / "peephole_timing.py"), run_name="example")
    vanilla, peephole = g["results"].values()
    mean = (lambda runs: sum(r[0] for r in runs) / len(runs))
    assert mean(peephole) < 0.5 * mean(vanilla)
    assert sum(r[1] > 0.99 for r in peephole) >= 2 > sum(r[1] > 0.99 for r in vanilla)
