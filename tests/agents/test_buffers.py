"""GAE(lambda) against hand-computed numbers; sequence chunking for truncated BPTT."""
import numpy as np
import pytest

from agents.buffers import RolloutBuffer, compute_gae


def test_gae_hand_computed_termination_and_truncation():
    # gamma = lambda = 0.5, so the advantage carry is 0.25.
    rewards = np.array([[1, 1], [2, 1], [3, 1], [4, 1]], dtype=float)
    values = np.array([[10, 2], [20, 4], [30, 6], [40, 8]], dtype=float)
    terminated = np.array([[0, 0], [1, 0], [0, 0], [0, 1]], dtype=bool)
    truncated = np.array([[0, 0], [0, 1], [0, 0], [0, 0]], dtype=bool)
    final_values = np.zeros((4, 2))
    final_values[1, 1] = 100.0  # V(final obs) of env 1's truncated episode
    last_values = np.array([50.0, 7.0])
    adv, ret = compute_gae(rewards, values, terminated, truncated, final_values, last_values,
                           gamma=0.5, gae_lambda=0.5)
    # env 0: t3: 4 + .5*50 - 40 = -11; t2: 3 + .5*40 - 30 = -7 -> -7 + .25*-11 = -9.75
    #        t1 terminated: 2 - 20 = -18; t0: 1 + .5*20 - 10 = 1 -> 1 + .25*-18 = -3.5
    # env 1: t3 terminated: 1 - 8 = -7; t2: 1 + .5*8 - 6 = -1 -> -1 + .25*-7 = -2.75
    #        t1 truncated, bootstrap 100: 1 + .5*100 - 4 = 47; t0: 1 + .5*4 - 2 = 1 -> 12.75
    expected = np.array([[-3.5, 12.75], [-18, 47], [-9.75, -2.75], [-11, -7]])
    np.testing.assert_allclose(adv, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ret, expected + values, rtol=0, atol=1e-12)


def test_truncation_is_not_termination():
    r = np.ones((1, 1))
    v = np.full((1, 1), 2.0)
    fv = np.full((1, 1), 3.0)
    a_trunc, _ = compute_gae(r, v, [[False]], [[True]], fv, [9.0], 0.9, 0.95)
    a_term, _ = compute_gae(r, v, [[True]], [[False]], fv, [9.0], 0.9, 0.95)
    assert a_trunc[0, 0] == pytest.approx(1 + 0.9 * 3 - 2)
    assert a_term[0, 0] == pytest.approx(1 - 2)


def test_gae_lambda_one_is_discounted_return_minus_value():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(6, 3))
    v = rng.normal(size=(6, 3))
    z = np.zeros((6, 3), dtype=bool)
    last = rng.normal(size=3)
    adv, ret = compute_gae(r, v, z, z, np.zeros((6, 3)), last, gamma=0.9, gae_lambda=1.0)
    disc = 0.9 ** np.arange(7)
    mc = np.array([(r[t:] * disc[:6 - t, None]).sum(0) + disc[6 - t] * last for t in range(6)])
    np.testing.assert_allclose(ret, mc, rtol=1e-12)
    np.testing.assert_allclose(adv, mc - v, rtol=1e-12)


def test_next_step_autoreset_steps_are_masked_and_cut():
    # env truncated at t=0; t=1 is the NEXT_STEP reset step (valid False) whose value is
    # V(final obs): the trainer copies it into final_values[0].
    r = np.array([[1.0], [0.0], [1.0]])
    v = np.array([[1.0], [5.0], [2.0]])
    trunc = np.array([[True], [False], [False]])
    term = np.zeros((3, 1), dtype=bool)
    valid = np.array([[True], [False], [True]])
    fv = np.zeros((3, 1))
    fv[0, 0] = 5.0
    adv, _ = compute_gae(r, v, term, trunc, fv, [4.0], gamma=0.5, gae_lambda=1.0, valid=valid)
    np.testing.assert_allclose(adv[:, 0], [1 + 0.5 * 5 - 1, 0.0, 1 + 0.5 * 4 - 2])


def _filled_buffer(T=8, B=3, L=4):
    buf = RolloutBuffer(T, B, L, gamma=0.99, gae_lambda=0.95)
    for t in range(T):
        if t % L == 0:
            h = np.full((2, B, 5), float(t)) + np.arange(B)[None, :, None] / 10
            buf.add_state((h, -h))
        obs = {"a": np.full((B, 2), t) + np.arange(B)[:, None] * 100, "b": np.arange(B) + t}
        buf.add(obs, np.arange(B) * 1000 + t, np.ones(B), t == 0, np.zeros(B), np.zeros(B),
                np.zeros(B, bool), np.zeros(B, bool))
    buf.compute_returns_and_advantages(np.zeros(B))
    return buf


def test_sequences_layout_and_states():
    T, B, L = 8, 3, 4
    buf = _filled_buffer(T, B, L)
    seq = buf.sequences()
    assert seq["actions"].shape == (L, 2 * B)
    # sequence k * B + b is steps [k L, (k+1) L) of env b
    for k in range(2):
        for b in range(B):
            s = k * B + b
            steps = np.arange(k * L, (k + 1) * L)
            np.testing.assert_array_equal(seq["actions"][:, s], b * 1000 + steps)
            np.testing.assert_array_equal(seq["obs"]["a"][:, s, 0], b * 100 + steps)
            h, c = seq["states"]
            assert h.shape == (2, 2 * B, 5)
            np.testing.assert_allclose(h[:, s], k * L + b / 10)
            np.testing.assert_allclose(c[:, s], -(k * L + b / 10))


def test_minibatches_cover_every_sequence_once():
    buf = _filled_buffer()
    rng = np.random.default_rng(0)
    seen = []
    for mb in buf.minibatches(2, rng):
        h, _ = mb["states"]
        assert mb["actions"].shape[1] == h.shape[1] == 3
        # the state rows travel with their sequences
        first_steps = mb["actions"][0] % 1000
        np.testing.assert_allclose(h[0, :, 0], first_steps + (mb["actions"][0] // 1000) / 10)
        seen += list(mb["actions"][0])
    assert sorted(seen) == sorted(buf.sequences()["actions"][0])


def test_complete_episode_mask():
    buf = RolloutBuffer(4, 2, 2, 0.99, 1.0)
    buf.terminated[1, 0] = True
    buf.truncated[3, 1] = True
    np.testing.assert_array_equal(buf.complete_episode_mask(),
                                  [[1, 1], [1, 1], [0, 1], [0, 1]])


def test_buffer_validation():
    with pytest.raises(ValueError, match="multiple of seq_len"):
        RolloutBuffer(10, 2, 4, 0.99, 0.95)
    with pytest.raises(TypeError, match="n_envs"):
        RolloutBuffer(8, 2.0, 4, 0.99, 0.95)
    buf = RolloutBuffer(4, 1, 2, 0.99, 0.95)
    with pytest.raises(RuntimeError, match="add_state"):
        buf.add(np.zeros((1, 2)), np.zeros(1), 0, True, 0, 0, False, False)
