"""rlstm.policy.inputs.PolicyInputs: encode (shapes, dtypes, errors), image and plain columns,
features through the image nets and their gradients, batch_size."""
import numpy as np
import pytest
from gymnasium import spaces

from rlstm.layers import ConvEncoder
from rlstm.policy.inputs import PolicyInputs
from rlstm.policy.spaces import MASK_KEY
from rlstm.reference.gradcheck import central_difference

BOX = spaces.Box(-1, 1, (3,), np.float32)
# images in front of and behind the plain columns, and an action mask that is not encoded
IMAGES = spaces.Dict({"a_img": spaces.Box(0, 255, (5, 5, 1), np.uint8),
                      "b_vec": spaces.Box(-1, 1, (2,), np.float32),
                      "c_img": spaces.Box(0, 255, (4, 4, 2), np.uint8),
                      MASK_KEY: spaces.MultiBinary(3)})


def image_obs(B, rng):
    return {"a_img": rng.integers(0, 256, (B, 5, 5, 1), dtype=np.uint8),
            "b_vec": rng.uniform(-1, 1, (B, 2)),
            "c_img": rng.integers(0, 256, (B, 4, 4, 2), dtype=np.uint8),
            MASK_KEY: np.ones((B, 3), bool)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_box_encode_converts_to_contiguous_rows_of_the_policy_dtype(dtype):
    inputs = PolicyInputs(spaces.Box(-1, 1, (2, 3), np.float32), dtype)
    x = np.arange(24, dtype=np.float64).reshape(4, 2, 3)[::2]  # strided, another dtype
    out = inputs.encode(x, (2,))
    assert out.dtype == dtype and out.flags.c_contiguous and out.shape == (2, 6)
    np.testing.assert_array_equal(out, x.reshape(2, 6))
    seq = inputs.encode(np.zeros((3, 2, 2, 3), np.int64), (3, 2))  # (T, B) rows
    assert seq.shape == (6, 6) and seq.dtype == dtype
    np.testing.assert_array_equal(inputs.encode(x.tolist(), (2,)), out)


@pytest.mark.parametrize("obs,exc,match", [
    (np.zeros(3), ValueError, r"obs_seq must have shape \(2, 3\), got \(3,\)"),
    (np.zeros((2, 4)), ValueError, r"obs_seq must have shape \(2, 3\), got \(2, 4\)"),
    (np.zeros((2, 3), "U1"), TypeError, "obs_seq must hold real numbers, got dtype <U1"),
    (np.full((2, 3), "a"), TypeError, "obs_seq must hold real numbers"),
    (np.array([[0.0, np.nan, 0.0], [0.0, 0.0, 0.0]]), ValueError, "obs_seq contains NaN or inf"),
    (np.array([[0.0, -np.inf, 0.0], [0.0, 0.0, 0.0]]), ValueError, "NaN or inf"),
])
def test_box_encode_refusals_name_the_argument(obs, exc, match):
    with pytest.raises(exc, match=match):
        PolicyInputs(BOX, np.float32).encode(obs, (2,), "obs_seq")


@pytest.mark.parametrize("space,obs,expected", [
    (spaces.Discrete(3, start=1), np.array([3, 1]), [[0, 0, 1], [1, 0, 0]]),
    (spaces.MultiDiscrete([2, 2]), np.array([[1, 0], [0, 1]]), [[0, 1, 1, 0], [1, 0, 0, 1]]),
    (spaces.MultiBinary(3), np.array([[1, 0, 1], [0, 0, 0]]), [[1, 0, 1], [0, 0, 0]]),
    (spaces.Tuple((spaces.Discrete(2), BOX)), (np.array([1, 0]), np.full((2, 3), 0.5)),
     [[0, 1, 0.5, 0.5, 0.5], [1, 0, 0.5, 0.5, 0.5]]),
])
def test_discrete_and_structured_spaces_encode_as_spaces_do(space, obs, expected):
    inputs = PolicyInputs(space, np.float64)
    out = inputs.encode(obs, (2,))
    np.testing.assert_array_equal(out, expected)
    assert inputs.obs_dim == out.shape[1] and inputs.feature_dim == inputs.obs_dim
    assert inputs.image_nets == [] and inputs.plain_columns.tolist() == list(range(out.shape[1]))
    feats, caches = inputs.features(out)
    assert feats is out and caches == []


def test_discrete_encode_refuses_values_outside_the_space():
    inputs = PolicyInputs(spaces.Discrete(3), np.float32)
    with pytest.raises(ValueError, match="obs holds values outside the space"):
        inputs.encode(np.array([3]), (1,))
    with pytest.raises(TypeError, match="must hold integers"):
        inputs.encode(np.array([1.0]), (1,))


def test_image_and_plain_columns():
    inputs = PolicyInputs(IMAGES, np.float64, seed=0)
    # encoded order: a_img (25 columns), b_vec (2), c_img (32); the action mask is left out
    assert inputs.obs_dim == 25 + 2 + 32 and inputs.has_action_mask
    assert inputs.image_columns == [(0, 25), (27, 59)]
    assert inputs.plain_columns.tolist() == [25, 26]
    assert [net.image_shape for net in inputs.image_nets] == [(5, 5, 1), (4, 4, 2)]
    assert inputs.feature_dim == 2 + sum(net.out_features for net in inputs.image_nets)
    flat = PolicyInputs(IMAGES, np.float64, image_encoder="flatten", seed=0)
    assert flat.image_nets == [] and flat.image_columns == []
    assert flat.feature_dim == flat.obs_dim == 59
    assert flat.plain_columns.tolist() == list(range(59))
    x = flat.encode(image_obs(2, np.random.default_rng(0)), (2,))
    assert x.min() >= 0 and x[:, :25].max() <= 1.0  # pixels / 255


def test_features_are_plain_columns_then_each_image_net():
    rng = np.random.default_rng(1)
    inputs = PolicyInputs(IMAGES, np.float64, seed=0)
    obs = image_obs(3, rng)
    x = inputs.encode(obs, (3,))
    feats, caches = inputs.features(x)
    assert feats.shape == (3, inputs.feature_dim) and len(caches) == 2
    net_a, net_c = inputs.image_nets
    expected = np.concatenate([obs["b_vec"],
                               net_a.forward(obs["a_img"] / 255.0)[0],
                               net_c.forward(obs["c_img"] / 255.0)[0]], axis=1)
    np.testing.assert_allclose(feats, expected, rtol=1e-12, atol=1e-14)
    # other weights for the same architecture (what a population evaluator passes)
    others = [ConvEncoder(n.image_shape, dtype=np.float64, seed=9 + k)
              for k, n in enumerate(inputs.image_nets)]
    feats2, _ = inputs.features(x, nets=others)
    np.testing.assert_allclose(feats2[:, 2:2 + net_a.out_features],
                               others[0].forward(obs["a_img"] / 255.0)[0], rtol=1e-12)
    assert not np.allclose(feats2, feats)


def test_backward_gives_the_image_nets_gradients():
    rng = np.random.default_rng(2)
    inputs = PolicyInputs(IMAGES, np.float64, seed=0)
    x = inputs.encode(image_obs(2, rng), (2,))
    w = rng.standard_normal((2, inputs.feature_dim))

    def objective():
        return float(np.sum(w * inputs.features(x)[0]))

    _, caches = inputs.features(x)
    for net in inputs.image_nets:
        net.zero_grad()
    inputs.backward(w, caches)
    for net in inputs.image_nets:
        idx = rng.choice(net.num_params, 300, replace=False)
        idx[:2] = [0, net.num_params - 1]
        numeric = central_difference(objective, net.flat_params, indices=idx)
        np.testing.assert_allclose(net.flat_grads[idx], numeric, rtol=1e-6, atol=1e-9)
        assert np.abs(net.flat_grads).max() > 1e-3
    # the plain columns' gradient goes nowhere: only the image nets have parameters here
    before = [n.flat_grads.copy() for n in inputs.image_nets]
    w_plain = np.zeros_like(w)
    w_plain[:, :2] = 1.0
    inputs.backward(w_plain, caches)
    for net, g in zip(inputs.image_nets, before, strict=True):
        np.testing.assert_array_equal(net.flat_grads, g)


def test_image_nets_are_seeded():
    a, b = PolicyInputs(IMAGES, np.float32, seed=3), PolicyInputs(IMAGES, np.float32, seed=3)
    c = PolicyInputs(IMAGES, np.float32, seed=4)
    for na, nb, nc in zip(a.image_nets, b.image_nets, c.image_nets, strict=True):
        np.testing.assert_array_equal(na.flat_params, nb.flat_params)
        assert not np.array_equal(na.flat_params, nc.flat_params)


@pytest.mark.parametrize("space,obs,B", [
    (BOX, np.zeros((5, 3)), 5),
    (spaces.Discrete(3), np.array([0, 1]), 2),
    (spaces.Tuple((spaces.Discrete(3), BOX)), (np.zeros(4, int), np.zeros((4, 3))), 4),
    (spaces.Dict({MASK_KEY: spaces.MultiBinary(2), "pos": BOX}),
     {"pos": np.zeros((6, 3)), MASK_KEY: np.ones((6, 2))}, 6),
    (spaces.Dict({"pos": BOX}), {"other": np.zeros((6, 3))}, 1),  # left to encode to name
    (spaces.Tuple((BOX,)), [], 1),
])
def test_batch_size_from_the_first_leaf(space, obs, B):
    assert PolicyInputs(space, np.float32).batch_size(obs) == B


@pytest.mark.parametrize("space,obs", [(BOX, np.zeros(3)), (spaces.Discrete(3), 1),
                                       (BOX, np.zeros((1, 2, 3)))])
def test_batch_size_refuses_unbatched_observations(space, obs):
    with pytest.raises(ValueError, match=r"obs must be batched: shape \(B,\) \+ .* \(add a "
                                         r"leading axis for one env\)"):
        PolicyInputs(space, np.float32).batch_size(obs)


def test_constructor_refusals():
    with pytest.raises(ValueError, match=r"image_encoder must be one of \('conv', 'flatten'\)"):
        PolicyInputs(IMAGES, np.float32, image_encoder="pixels")
    with pytest.raises(ValueError, match="encodes to zero features"):
        PolicyInputs(spaces.Dict({MASK_KEY: spaces.MultiBinary(2)}), np.float32)
