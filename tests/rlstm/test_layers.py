"""Layers the policy is built from: Linear, MLP, Conv2d, ConvEncoder (references + gradients)."""
import numpy as np
import pytest
from gymnasium import spaces

from rlstm.layers import MLP, Conv2d, ConvEncoder, Linear
from rlstm.policy import LSTMPolicy
from rlstm.reference.gradcheck import central_difference as central


@pytest.mark.parametrize("k,s", [(3, 1), (3, 2), (2, 2), (1, 1)])
def test_conv2d_matches_loops_and_central_differences(k, s):
    rng = np.random.default_rng(0)
    c = Conv2d(2, 3, k, s, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 2, 7, 6))
    y = c.forward(x)
    W, b = c.params["weight"], c.params["bias"]
    ref = np.zeros_like(y)
    for n, o, i, j in np.ndindex(y.shape):
        ref[n, o, i, j] = (x[n, :, s * i:s * i + k, s * j:s * j + k] * W[o]).sum() + b[o]
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    c.zero_grad()
    dx = c.backward(dy, x)
    f = lambda: np.sum(c.forward(x) * dy)  # noqa: E731
    np.testing.assert_allclose(c.flat_grads, central(f, c.flat_params), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(dx, central(f, x), rtol=1e-6, atol=1e-8)


def test_linear_and_mlp_gradients():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 3))
    for m in (Linear(3, 2, dtype=np.float64, seed=0),
              MLP(3, (4, 2), activation="tanh", dtype=np.float64, seed=0),
              MLP(3, (5,), activation="relu", dtype=np.float64, seed=0)):
        fwd = (lambda: m._forward(x)) if isinstance(m, Linear) else (lambda: m.forward(x)[0])
        dy = rng.standard_normal(fwd().shape)
        m.zero_grad()
        if isinstance(m, Linear):
            dx = m.backward(dy, x)
        else:
            dx = m.backward(dy, m.forward(x)[1], need_dx=True)
        f = lambda: np.sum(fwd() * dy)  # noqa: E731
        np.testing.assert_allclose(m.flat_grads, central(f, m.flat_params), rtol=1e-6,
                                   atol=1e-8)
        np.testing.assert_allclose(dx, central(f, x), rtol=1e-6, atol=1e-8)
    mlp = MLP(3, (4, 2), seed=0)
    assert np.shares_memory(mlp.layers[1].params["weight"], mlp.flat_params)


def test_conv_encoder_shapes_and_layout():
    e = ConvEncoder((84, 84, 4), seed=0)
    assert [(k, v.shape) for k, v in e.params.items()] == [
        ("conv0.weight", (16, 4, 8, 8)), ("conv0.bias", (16,)),
        ("conv1.weight", (32, 16, 4, 4)), ("conv1.bias", (32,))]
    assert e.out_features == 32 * 9 * 9
    small = ConvEncoder((3, 4, 1), seed=0)
    assert small.out_features == 32 * 1 * 2  # 3x4 -> 1x2 (3x3) -> 1x2 (kernel shrunk to 1)
    x = np.random.default_rng(0).random((2, 84, 84, 4)).astype(np.float32)
    f, _ = e.forward(x)
    g, _ = ConvEncoder((4, 84, 84), channels_first=True, seed=0).forward(
        np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.testing.assert_allclose(f, g, rtol=1e-6)


def test_image_policy_uses_conv_and_scales_pixels():
    img = spaces.Box(0, 255, (40, 40, 3), np.uint8)
    p = LSTMPolicy(img, spaces.Discrete(3), hidden_size=8, seed=0)
    assert "image0.conv0.weight" in p.params and p.params["image0.conv0.weight"].shape == (
        16, 3, 8, 8)
    assert p.core.input_size == p.image_nets[0].out_features
    obs = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    a, v, lp, st = p.act(obs, None, None)
    feats = p.image_nets[0].forward(obs.astype(np.float32) / 255)[0]
    y, _ = p.core.step(feats, None)
    np.testing.assert_allclose(v, p.value_net(y)[:, 0], rtol=1e-5)
    flat = LSTMPolicy(img, spaces.Discrete(3), hidden_size=8, seed=0, image_encoder="flatten")
    assert flat.core.input_size == 40 * 40 * 3 and not flat.image_nets
    with pytest.raises(ValueError, match="image_encoder"):
        LSTMPolicy(img, spaces.Discrete(3), image_encoder="resnet")
