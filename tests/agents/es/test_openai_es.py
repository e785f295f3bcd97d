"""OpenAI-ES: the antithetic gradient estimate by hand and on a linear objective."""
import numpy as np

from agents.es import NoiseTable, es_gradient


def test_antithetic_gradient_hand_case():
    noise = NoiseTable(size=10, seed=0)
    t = noise.table.astype(np.float64)
    # returns: pair 0 (+1, -2) -> ranks of [1, 2, 3, 0] are [1, 2, 3, 0] / 3 - 0.5
    g = es_gradient(noise, [0, 4], [1.0, 3.0], [2.0, 0.0], 3)
    w = np.array([(1 / 3 - 0.5) - (2 / 3 - 0.5), (1.0 - 0.5) - (0 - 0.5)])  # [-1/3, 1]
    want = (w[0] * t[0:3] + w[1] * t[4:7]) / 4
    np.testing.assert_allclose(g, want, rtol=1e-12)
    np.testing.assert_allclose(w, [-1 / 3, 1.0])


def test_antithetic_estimate_points_uphill():
    # f(theta) = a . theta: ranks are monotone in eps . a, so g must correlate with a
    noise = NoiseTable(size=200_000, seed=1)
    a = np.array([3.0, -1.0, 0.5, 0.0])
    rng = np.random.default_rng(0)
    idx = noise.sample_index(rng, 4, 500)
    eps = noise.batch(idx, 4).astype(np.float64)
    g = es_gradient(noise, idx, eps @ a, -(eps @ a), 4)
    cos = g @ a / np.linalg.norm(g) / np.linalg.norm(a)
    assert cos > 0.95
