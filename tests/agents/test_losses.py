"""The policy-gradient loss terms: hand-computed clipping, masks, gradients against finite
differences."""
import gymnasium as gym
import numpy as np
import pytest

from agents.losses import policy_gradient_loss
from rlstm.policy import LSTMPolicy


def test_clipped_surrogate_hand_computed():
    # ratios 1.5 (A=+1) and 0.5 (A=-1), clip 0.2: both terms are clipped -> no gradient
    old = np.log(np.array([[2 / 3, 2.0]]))
    lp = np.zeros((1, 2))
    adv = np.array([[1.0, -1.0]])
    loss, stats, dlp, dent, dv = policy_gradient_loss(
        lp, np.zeros((1, 2)), np.zeros((1, 2)), old, adv, np.zeros((1, 2)), np.zeros((1, 2)),
        np.ones((1, 2), bool), 0.2, None, 0.0, 0.5)
    assert stats["pg_loss"] == pytest.approx(-(1.2 - 0.8) / 2)
    np.testing.assert_allclose(dlp, 0.0)
    assert stats["clip_fraction"] == 1.0
    # ratios 0.9 (A=+1, inside) and 1.5 (A=-1: min picks the unclipped -1.5): gradient -A r / n
    old = np.log(np.array([[1 / 0.9, 1 / 1.5]]))
    loss, stats, dlp, _, _ = policy_gradient_loss(
        lp, np.zeros((1, 2)), np.zeros((1, 2)), old, adv, np.zeros((1, 2)), np.zeros((1, 2)),
        np.ones((1, 2), bool), 0.2, None, 0.0, 0.5)
    assert stats["pg_loss"] == pytest.approx(-(0.9 - 1.5) / 2)
    np.testing.assert_allclose(dlp, [[-0.9 / 2, 1.5 / 2]])


def test_masked_entries_do_not_count():
    rng = np.random.default_rng(0)
    a = [rng.normal(size=(3, 2)) for _ in range(7)]
    mask = np.array([[1, 1], [1, 0], [0, 1]], bool)
    out_full = policy_gradient_loss(*a, mask, 0.2, 0.3, 0.01, 0.5)
    b = [x.copy() for x in a]
    for x in b:
        x[~mask] = 1e3  # garbage where masked
    out_garbage = policy_gradient_loss(*b, mask, 0.2, 0.3, 0.01, 0.5)
    assert out_full[0] == pytest.approx(out_garbage[0])
    for g in out_garbage[2:]:
        assert np.all(g[~mask] == 0)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
@pytest.mark.parametrize("shared_core", [True, False])
def test_ppo_loss_gradient_matches_finite_differences(env_id, shared_core):
    env = gym.make(env_id)
    pol = LSTMPolicy(env.observation_space, env.action_space, hidden_size=5, dtype=np.float64,
                     seed=1, shared_core=shared_core)
    rng = np.random.default_rng(2)
    T, B = 6, 3
    obs = rng.normal(size=(T, B) + env.observation_space.shape)
    if env_id == "CartPole-v1":
        actions = rng.integers(0, 2, size=(T, B))
    else:
        actions = rng.normal(size=(T, B, 1))
    starts = np.zeros((T, B), bool)
    starts[0, 0] = starts[3, 1] = starts[2, 2] = True  # resets inside the chunk
    state0 = tuple(rng.normal(size=s.shape) * 0.5 for s in pol.initial_state(B))
    lp0, _, v0, _ = pol.evaluate(obs, actions, state0, starts)
    old_lp = lp0 + rng.normal(scale=0.3, size=(T, B))  # ratios away from 1: some clipped
    old_v = v0 + rng.normal(scale=0.3, size=(T, B))
    adv = rng.normal(size=(T, B))
    ret = rng.normal(size=(T, B))
    mask = rng.random((T, B)) > 0.2

    def loss_and_grads():
        lp, ent, v, cache = pol.evaluate(obs, actions, state0, starts)
        loss, _, dlp, dent, dv = policy_gradient_loss(lp, ent, v, old_lp, adv, ret, old_v, mask,
                                                      0.2, 0.2, 0.05, 0.5)
        return loss, (dlp, dent, dv, cache)

    _, (dlp, dent, dv, cache) = loss_and_grads()
    pol.zero_grad()
    pol.backward(dlp, dent, dv, cache)
    analytic = pol.flat_grads.copy()
    eps = 1e-6
    idx = np.random.default_rng(3).choice(pol.num_params, size=min(300, pol.num_params),
                                          replace=False)
    numeric = np.empty(idx.size)
    for j, i in enumerate(idx):
        old = pol.flat_params[i]
        pol.flat_params[i] = old + eps
        lp_, _ = loss_and_grads()
        pol.flat_params[i] = old - eps
        lm_, _ = loss_and_grads()
        pol.flat_params[i] = old
        numeric[j] = (lp_ - lm_) / (2 * eps)
    np.testing.assert_allclose(analytic[idx], numeric, rtol=1e-5, atol=1e-8)
    assert np.abs(analytic[idx]).max() > 1e-3  # the check is not vacuous
