"""Evolino: least-squares readouts, supervised sequences, ES on the core with a policy-gradient
readout."""
import numpy as np
import pytest


def test_evolino_readout_is_least_squares():
    from agents.es import fit_readout
    rng = np.random.default_rng(0)
    F = rng.normal(size=(200, 5))
    W = rng.normal(size=(6, 2))
    Y = F @ W[:-1] + W[-1]
    np.testing.assert_allclose(fit_readout(F, Y, ridge=0.0), W, atol=1e-10)


def test_evolino_sequence_learns_and_round_trips(tmp_path):
    from agents.es import EvolinoSequence
    t = np.arange(201, dtype=np.float64)
    s = np.sin(0.2 * t) + np.sin(0.311 * t)
    X, Y = s[:-1, None, None], s[1:, None, None]
    m = EvolinoSequence(1, 1, hidden_size=8, population_size=16, washout=30, seed=0,
                        noise_table_size=100_000)
    m.fit(X, Y, generations=20)
    assert m.history[-1] < 0.5 * m.history[0] and m.history[-1] < 1e-2
    pred, _ = m.predict(X)
    assert np.mean((pred[30:] - Y[30:]) ** 2) == pytest.approx(m.history[-1], rel=1e-9)
    m.save(tmp_path / "evo.npz")
    m2 = EvolinoSequence.load(tmp_path / "evo.npz")
    np.testing.assert_array_equal(m2.predict(X)[0], pred)
    m.fit(X, Y, generations=2)
    m2.fit(X, Y, generations=2)
    np.testing.assert_array_equal(m.theta, m2.theta)  # resume continues the same run
    with pytest.raises(ValueError, match="shape"):
        m.fit(X, Y[:, :, [0, 0]])


def test_evolino_rl_only_evolves_the_core_and_moves_the_readout(small):
    from agents.es import Evolino
    m = Evolino("CartPole-v1", seed=0, backend="serial", **small)
    before = m.center.copy()
    m._advance(0.0)
    changed = m.center != before
    assert changed[m.readout_mask].any()      # the policy-gradient step moved the readout
    assert changed[~m.readout_mask].any()     # ES moved the core
    np.testing.assert_array_equal(m._grad[m.readout_mask], 0.0)  # ES never touches the readout


@pytest.mark.slow
def test_evolino_solves_cartpole():
    from agents.es import Evolino
    m = Evolino("CartPole-v1", seed=0, backend="process", n_workers=2, reward_threshold=490)
    m.learn(1_000_000)
    m.close()
    from agents import evaluate
    assert evaluate(m, "CartPole-v1", n_episodes=10, deterministic=True, seed=1000)[0] >= 475
