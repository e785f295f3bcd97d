"""benchmarks/memory_curve.py's table helpers (the runs themselves are benchmarks, not tests)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def curve(load_script):
    return load_script("benchmarks/memory_curve.py")


def test_span_is_min_to_max_or_one_number(curve):
    assert curve._span([112.4, 84.2, 97.0]) == "84–112"
    assert curve._span([1487.2]) == "1,487"
    assert curve._span([99.6, 100.4]) == "100"     # they round alike
