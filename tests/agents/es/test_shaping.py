"""Fitness shaping: centered ranks and NES utilities by hand."""
import numpy as np
import pytest

from agents.es import centered_ranks, nes_utilities


def test_centered_ranks_hand_cases():
    np.testing.assert_allclose(centered_ranks([1.0, 5.0, 3.0]), [-0.5, 0.5, 0.0])
    np.testing.assert_allclose(centered_ranks([[1.0, 2.0], [3.0, 0.0]]),
                               [[-1 / 6, 1 / 6], [0.5, -0.5]])
    np.testing.assert_array_equal(centered_ranks([7.0]), [0.0])
    r = centered_ranks(np.random.default_rng(0).normal(size=11))
    assert r.sum() == pytest.approx(0.0) and r.min() == -0.5 and r.max() == 0.5


def test_nes_utilities_hand_case():
    u = nes_utilities(4)
    raw = np.array([np.log(3), np.log(3) - np.log(2), 0.0, 0.0])
    np.testing.assert_allclose(u, raw / raw.sum() - 0.25)
    assert u.sum() == pytest.approx(0.0)
