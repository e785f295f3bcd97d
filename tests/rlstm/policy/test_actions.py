"""rlstm.policy.actions.ActionHeads: column slices, mask checks, deterministic modes and nested
packing, act/log_prob_entropy agreement, backward by central differences (z, log_std, latent)."""
import numpy as np
import pytest
from gymnasium import spaces

from rlstm.policy.actions import ActionHeads
from rlstm.policy.heads import LOG_2PI, Bernoulli, Categorical, DiagGaussian, MultiCategorical
from rlstm.reference.gradcheck import central_difference

# gymnasium sorts the keys: aim (Box 1x2), item (MultiDiscrete 2+3), move (Discrete 3, bits 2)
NESTED = spaces.Dict({"move": spaces.Tuple((spaces.Discrete(3, start=1), spaces.MultiBinary(2))),
                      "aim": spaces.Box(-1, 1, (1, 2), np.float32),
                      "item": spaces.MultiDiscrete([2, 3], start=[0, -1])})


def random_mask(rng, N, heads):
    """A random boolean mask that allows at least one action of every block."""
    mask = rng.random((N, heads.n_mask)) < 0.5
    blocks = [(0, 2), (2, 5), (5, 8)]  # item[0], item[1], move[0]
    for a, b in blocks:
        rows = ~mask[:, a:b].any(axis=1)
        mask[rows, a + rng.integers(0, b - a, rows.sum())] = True
    return mask


def test_slices_add_up_in_action_space_order():
    heads = ActionHeads(NESTED)
    assert [type(h) for h in heads.heads] == [DiagGaussian, MultiCategorical, Categorical,
                                              Bernoulli]
    assert heads.slices == [(slice(0, 2), slice(0, 0), slice(0, 2)),
                            (slice(2, 7), slice(0, 5), slice(2, 2)),
                            (slice(7, 10), slice(5, 8), slice(2, 2)),
                            (slice(10, 12), slice(8, 8), slice(2, 2))]
    assert (heads.n_out, heads.n_mask, heads.n_log_std) == (12, 8, 2) and not heads.sde
    for h, (zs, ms, ls) in zip(heads.heads, heads.slices, strict=True):
        assert (zs.stop - zs.start, ms.stop - ms.start, ls.stop - ls.start) == (
            h.n_out, h.n_mask, h.n_log_std)
    sde = ActionHeads(spaces.Tuple((spaces.Box(-1, 1, (2,)), spaces.Discrete(2),
                                    spaces.Box(-1, 1, (1,)))), sde_latent=4)
    assert sde.sde and sde.n_log_std == 3 and sde.slices[2][2] == slice(2, 3)


def test_check_mask():
    heads = ActionHeads(NESTED)
    assert heads.check_mask(None, (2,)) is None
    m = heads.check_mask(np.ones((2, 3, 8), np.int64), (2, 3))
    assert m.dtype == bool and m.shape == (6, 8) and m.all()
    with pytest.raises(TypeError, match=r"action_masks must be boolean \(True = allowed\), got "
                                        r"dtype float64"):
        heads.check_mask(np.ones((2, 8)), (2,), "action_masks")
    with pytest.raises(ValueError, match=r"action_mask must have shape \(2, 8\) \(one column "
                                         r"per discrete action"):
        heads.check_mask(np.ones((2, 7), bool), (2,))
    for block in ((0, 2), (2, 5), (5, 8)):  # each categorical block of each head
        bad = np.ones((2, 8), bool)
        bad[1, block[0]:block[1]] = False
        with pytest.raises(ValueError, match="forbids every action of a head in some row"):
            heads.check_mask(bad, (2,))
    with pytest.raises(ValueError, match="no Discrete or MultiDiscrete part to mask"):
        ActionHeads(spaces.Box(-1, 1, (2,))).check_mask(np.ones((1, 2), bool), (1,))


def test_deterministic_actions_are_each_heads_mode_packed_like_the_space():
    heads = ActionHeads(NESTED)
    z = np.array([[0.3, -0.2, 1.0, 2.0, 0.0, 3.0, 1.0, 0.1, 0.5, 0.2, 2.0, -1.0],
                  [-0.4, 0.9, 2.0, 1.0, 4.0, 0.0, 0.0, 3.0, 1.0, 2.0, -0.5, 0.5]])
    log_std = np.array([-0.5, 0.2])
    a, logp = heads.act(z, None, log_std, None, deterministic=True)
    assert sorted(a) == ["aim", "item", "move"] and isinstance(a["move"], tuple)
    np.testing.assert_array_equal(a["aim"], z[:, None, 0:2])            # the mean
    np.testing.assert_array_equal(a["item"], [[1, 0], [0, -1]])         # argmax + start
    np.testing.assert_array_equal(a["move"][0], [2, 1])                 # argmax + 1
    np.testing.assert_array_equal(a["move"][1], [[1, 0], [0, 1]])       # z > 0
    assert a["move"][1].dtype == np.int8 and a["move"][0].dtype.kind == "i"

    def log_softmax(v):
        return v - np.log(np.exp(v).sum())
    expected = [np.sum(-log_std - 0.5 * LOG_2PI)
                + log_softmax(z[r, 2:4])[[1, 0][r]] + log_softmax(z[r, 4:7])[[1, 0][r]]
                + log_softmax(z[r, 7:10])[[1, 0][r]]
                + np.sum(np.where([[1, 0], [0, 1]][r], z[r, 10:12], 0)
                         - np.logaddexp(0, z[r, 10:12])) for r in range(2)]
    np.testing.assert_allclose(logp, expected, rtol=1e-12)
    # with a mask, the mode is the best allowed action
    mask = np.ones((2, 8), bool)
    mask[0, 3] = mask[0, 6] = False   # row 0's modes: item[1] 0 -> 1, move[0] 2 -> 3
    a, _ = heads.act(z, mask, log_std, None, deterministic=True)
    np.testing.assert_array_equal(a["item"], [[1, 1], [0, -1]])
    np.testing.assert_array_equal(a["move"][0], [3, 1])


def test_a_single_space_gives_its_leaf_not_a_structure():
    heads = ActionHeads(spaces.Discrete(4, start=2))
    a, logp = heads.act(np.array([[0.0, 1.0, 3.0, 2.0]]), None, None, None, True)
    assert isinstance(a, np.ndarray) and a.tolist() == [4] and logp.shape == (1,)
    one = ActionHeads(spaces.Tuple((spaces.Discrete(4),)))
    a, _ = one.act(np.array([[0.0, 1.0, 3.0, 2.0]]), None, None, None, True)
    assert isinstance(a, tuple) and a[0].tolist() == [2]


@pytest.mark.parametrize("N", [1, 7])  # one env (the scalar fast path) and a batch
@pytest.mark.parametrize("masked", [False, True])
def test_log_prob_entropy_agrees_with_the_log_probs_of_act(N, masked):
    rng = np.random.default_rng(N + 10 * masked)
    heads = ActionHeads(NESTED)
    z = rng.standard_normal((N, heads.n_out)) * 2
    log_std = rng.normal(-0.3, 0.3, heads.n_log_std)
    mask = random_mask(rng, N, heads) if masked else None
    for _ in range(5):
        actions, logp = heads.act(z, mask, log_std, rng, deterministic=False)
        if masked:
            assert mask[np.arange(N), actions["item"][:, 0]].all()
            assert mask[np.arange(N), 5 + actions["move"][0] - 1].all()
        leaves = heads.check_actions(actions, (N,))
        lp, ent, _ = heads.log_prob_entropy(z, leaves, mask, log_std)
        np.testing.assert_allclose(lp, logp, rtol=1e-12, atol=1e-12)
        assert lp.shape == ent.shape == (N,) and np.isfinite(ent).all()


def test_check_actions_refuses_the_wrong_structure():
    heads = ActionHeads(NESTED)
    good = heads.act(np.zeros((2, 12)), None, np.zeros(2), None, True)[0]
    with pytest.raises(ValueError, match=r"actions is missing keys \['move'\]"):
        heads.check_actions({k: v for k, v in good.items() if k != "move"}, (2,))
    with pytest.raises(TypeError, match=r"actions\['move'\] must be a tuple of 2 parts"):
        heads.check_actions({**good, "move": good["move"][:1]}, (2,))
    with pytest.raises(ValueError, match=r"actions\['item'\] holds actions outside"):
        heads.check_actions({**good, "item": good["item"] + 5}, (2,))


def test_backward_matches_central_differences():
    rng = np.random.default_rng(3)
    heads = ActionHeads(NESTED)
    N = 5
    z = rng.standard_normal((N, heads.n_out)) * 1.5
    log_std = rng.normal(-0.2, 0.3, heads.n_log_std)
    mask = random_mask(rng, N, heads)
    actions, _ = heads.act(z, mask, log_std, rng, deterministic=False)
    leaves = heads.check_actions(actions, (N,))
    c1, c2 = rng.standard_normal((2, N))

    def f():
        lp, ent, _ = heads.log_prob_entropy(z, leaves, mask, log_std)
        return float(np.sum(c1 * lp + c2 * ent))

    _, _, caches = heads.log_prob_entropy(z, leaves, mask, log_std)
    dz = np.full_like(z, np.nan)  # backward writes every column
    dlog_std = np.ones(heads.n_log_std)  # ... and adds into dlog_std
    assert heads.backward(c1, c2, caches, dz, dlog_std) is None
    np.testing.assert_allclose(dz, central_difference(f, z), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dlog_std - 1, central_difference(f, log_std), rtol=1e-6,
                               atol=1e-8)
    masked_cols = np.zeros_like(z, bool)
    masked_cols[:, 2:10] = ~mask
    assert not dz[masked_cols].any()  # forbidden logits get no gradient


def test_gsde_heads_sum_their_latent_gradients():
    rng = np.random.default_rng(4)
    H, N = 4, 3
    space = spaces.Tuple((spaces.Box(-1, 1, (2,)), spaces.Discrete(3), spaces.Box(-1, 1, (1,))))
    heads = ActionHeads(space, sde_latent=H)
    z = rng.standard_normal((N, heads.n_out))
    log_std = rng.normal(-0.3, 0.3, (H, heads.n_log_std))
    latent = np.tanh(rng.standard_normal((N, H)))
    noise = rng.standard_normal((N, H, heads.n_log_std))
    actions, logp = heads.act(z, None, log_std, rng, False, latent=latent, sde_noise=noise)
    again, _ = heads.act(z, None, log_std, np.random.default_rng(99), False, latent=latent,
                         sde_noise=noise)
    np.testing.assert_array_equal(actions[0], again[0])  # Box parts follow the given noise
    leaves = heads.check_actions(actions, (N,))
    lp, _, _ = heads.log_prob_entropy(z, leaves, None, log_std, latent=latent)
    np.testing.assert_allclose(lp, logp, rtol=1e-12)
    c1, c2 = rng.standard_normal((2, N))

    def f():
        lp, ent, _ = heads.log_prob_entropy(z, leaves, None, log_std, latent=latent)
        return float(np.sum(c1 * lp + c2 * ent))

    _, _, caches = heads.log_prob_entropy(z, leaves, None, log_std, latent=latent)
    dz, dlog_std = np.empty_like(z), np.zeros_like(log_std)
    dlatent = heads.backward(c1, c2, caches, dz, dlog_std, latent=latent)
    np.testing.assert_allclose(dz, central_difference(f, z), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dlog_std, central_difference(f, log_std), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dlatent, central_difference(f, latent), rtol=1e-6, atol=1e-8)
    assert heads.backward(c1, c2, caches, dz, dlog_std) is None  # without the latent: none
