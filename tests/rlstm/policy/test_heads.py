"""The action heads: log-probabilities and entropies against scipy, sampling frequencies."""
import numpy as np
from gymnasium import spaces
from rlstm.policy import LSTMPolicy

BOX = spaces.Box(-1, 1, (3,), np.float32)


def test_categorical_sampling_frequencies_match_probabilities():
    p = LSTMPolicy(BOX, spaces.Discrete(4), hidden_size=4, seed=0, action_init_scale=0.0)
    p.params["action.bias"][...] = [0.0, 1.0, -1.0, 0.5]
    B = 40000
    a, _, lp, _ = p.act(np.zeros((B, 3), np.float32), None, None, rng=np.random.default_rng(0))
    probs = np.exp([0.0, 1.0, -1.0, 0.5]) / np.exp([0.0, 1.0, -1.0, 0.5]).sum()
    freq = np.bincount(a, minlength=4) / B
    assert np.all(np.abs(freq - probs) < 4 * np.sqrt(probs * (1 - probs) / B)), (freq, probs)
    np.testing.assert_allclose(lp, np.log(probs)[a], rtol=1e-5)


def test_head_log_probs_and_entropies_match_scipy():
    from scipy import stats
    from rlstm.policy.heads import Bernoulli, Categorical, DiagGaussian, MultiCategorical
    rng = np.random.default_rng(0)
    N = 6
    z = rng.standard_normal((N, 3)) * 2
    h = DiagGaussian(spaces.Box(-1, 1, (3,)))
    log_std = np.array([-0.5, 0.0, 0.7])
    a = rng.standard_normal((N, 3))
    lp, ent, _ = h.log_prob_entropy(z, a, None, log_std)
    np.testing.assert_allclose(lp, stats.norm.logpdf(a, z, np.exp(log_std)).sum(1), rtol=1e-12)
    np.testing.assert_allclose(ent, stats.norm.entropy(0, np.exp(log_std)).sum(), rtol=1e-12)
    h = Bernoulli(spaces.MultiBinary(3))
    bits = rng.integers(0, 2, (N, 3))
    lp, ent, _ = h.log_prob_entropy(z, bits.astype(float), None, None)
    q = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(lp, stats.bernoulli.logpmf(bits, q).sum(1), rtol=1e-10)
    np.testing.assert_allclose(ent, stats.bernoulli.entropy(q).sum(1), rtol=1e-10)
    h = Categorical(spaces.Discrete(3))
    k = rng.integers(0, 3, N)
    lp, ent, _ = h.log_prob_entropy(z, k, None, None)
    pr = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(lp, np.log(pr[np.arange(N), k]), rtol=1e-12)
    np.testing.assert_allclose(ent, stats.entropy(pr, axis=1), rtol=1e-12)
    h = MultiCategorical(spaces.MultiDiscrete([2, 1]))
    k2 = np.stack([rng.integers(0, 2, N), np.zeros(N, int)], 1)
    lp, ent, _ = h.log_prob_entropy(z, k2, None, None)
    pr2 = np.exp(z[:, :2]) / np.exp(z[:, :2]).sum(1, keepdims=True)
    np.testing.assert_allclose(lp, np.log(pr2[np.arange(N), k2[:, 0]]), rtol=1e-12)
    np.testing.assert_allclose(ent, stats.entropy(pr2, axis=1), rtol=1e-12)
