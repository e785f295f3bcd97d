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


# ------------------------------------------------------------- the compiled image path
from rlstm.reference import conv as conv_ref  # noqa: E402


@pytest.mark.parametrize("k,s,C,O", [(3, 1, 3, 5), (4, 2, 2, 3), (8, 4, 4, 16), (1, 1, 1, 1)])
def test_conv2d_kernel_matches_the_reference(k, s, C, O, dtype, tol, simd):
    rng = np.random.default_rng(1)
    c = Conv2d(C, O, k, s, dtype=dtype, seed=2)
    x = rng.standard_normal((3, C, 13, 11)).astype(dtype)
    W, b = (c.params[n].astype(np.float64) for n in ("weight", "bias"))
    y = c.forward(x)
    want = conv_ref.conv2d_forward(x.astype(np.float64), W, b, s)
    np.testing.assert_allclose(y, want, **tol(dtype))
    dy = rng.standard_normal(y.shape).astype(dtype)
    c.zero_grad()
    dx = c.backward(dy, x)
    rdx, rdW, rdb = conv_ref.conv2d_backward(dy.astype(np.float64), x.astype(np.float64), W, s)
    np.testing.assert_allclose(dx, rdx, **tol(dtype))
    np.testing.assert_allclose(c.grads["weight"], rdW, **tol(dtype))
    np.testing.assert_allclose(c.grads["bias"], rdb, **tol(dtype))


@pytest.mark.parametrize("shape,channels_first", [((9, 8, 3), False), ((3, 9, 8), True),
                                                  ((40, 44, 2), False), ((2, 3, 2), False)])
def test_conv_encoder_kernels_match_the_reference(shape, channels_first, dtype, tol, simd):
    rng = np.random.default_rng(2)
    enc = ConvEncoder(shape, (4, 5), channels_first=channels_first, dtype=dtype, seed=3)
    x = rng.random((6,) + shape).astype(dtype)
    layers = [(c.params["weight"].astype(np.float64), c.params["bias"].astype(np.float64),
               c.stride) for c in enc.layers]
    feats, cache = enc.forward(x.reshape(6, -1))
    want, acts = conv_ref.conv_encoder_forward(x.astype(np.float64), layers, channels_first)
    assert feats.shape == (6, enc.out_features) and np.abs(want).max() > 0
    np.testing.assert_allclose(feats, want, **tol(dtype))
    dfeat = rng.standard_normal(feats.shape).astype(dtype)
    enc.zero_grad()
    enc.backward(dfeat, cache)
    _, grads = conv_ref.conv_encoder_backward(dfeat.astype(np.float64), layers, acts)
    for conv, (dW, db) in zip(enc.layers, grads):
        np.testing.assert_allclose(conv.grads["weight"], dW, **tol(dtype))
        np.testing.assert_allclose(conv.grads["bias"], db, **tol(dtype))


def test_conv_reference_gradients_by_central_differences():
    rng = np.random.default_rng(3)
    layers = [(rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3), 1),
              (rng.standard_normal((4, 3, 2, 2)), rng.standard_normal(4), 2)]
    x = rng.random((2, 9, 8, 2))
    feats, acts = conv_ref.conv_encoder_forward(x, layers)
    dfeat = rng.standard_normal(feats.shape)
    dx, grads = conv_ref.conv_encoder_backward(dfeat, layers, acts)
    f = lambda: np.sum(conv_ref.conv_encoder_forward(x, layers)[0] * dfeat)  # noqa: E731
    np.testing.assert_allclose(dx.transpose(0, 2, 3, 1), central(f, x), rtol=1e-6, atol=1e-8)
    for (W, b, _), (dW, db) in zip(layers, grads):
        np.testing.assert_allclose(dW, central(f, W), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(db, central(f, b), rtol=1e-6, atol=1e-8)


def test_conv_encoder_gradients_by_central_differences():
    rng = np.random.default_rng(4)
    enc = ConvEncoder((10, 9, 2), (3, 4), dtype=np.float64, seed=5)
    x = rng.random((3, 10 * 9 * 2))
    feats, cache = enc.forward(x)
    dfeat = rng.standard_normal(feats.shape)
    enc.zero_grad()
    enc.backward(dfeat, cache)
    f = lambda: np.sum(enc.forward(x)[0] * dfeat)  # noqa: E731
    np.testing.assert_allclose(enc.flat_grads, central(f, enc.flat_params), rtol=1e-6,
                               atol=1e-8)
