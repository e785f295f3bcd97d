"""rlstm.GRU against the pure-NumPy reference, central differences, step(), __call__, errors."""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import GRU
from rlstm.reference import gru as ref
from rlstm.reference.gradcheck import central_difference

# (T, B, D, H, num_layers, bidirectional, reset probability)
CASES = [
    (1, 1, 1, 1, 1, False, 0.0),
    (7, 1, 3, 5, 1, False, 0.0),
    (6, 3, 4, 5, 2, False, 0.3),
    (5, 2, 3, 4, 3, True, 0.3),
    (5, 2, 3, 4, 1, True, 1.0),
    (3, 2, 0, 4, 2, True, 0.3),       # D = 0
    (20, 8, 16, 32, 2, True, 0.1),
]
IDS = ["T{}B{}D{}H{}L{}{}-r{}".format(*c[:5], "bi" if c[5] else "", c[6]) for c in CASES]


def _inputs(gru, T, B, rng, p_reset):
    dt = gru.dtype
    x = rng.standard_normal((T, B, gru.input_size)).astype(dt)
    h0 = rng.standard_normal(gru._state_shape(B)).astype(dt)
    rs = (rng.random((T, B)) < p_reset) if p_reset else None
    return x, h0, rs


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_backward_match_reference(case, dtype, tol, rng, simd):
    T, B, D, H, L, bi, p_reset = case
    gru = GRU(D, H, L, bidirectional=bi, dtype=dtype, seed=0)
    x, h0, rs = _inputs(gru, T, B, rng, p_reset)
    dy = rng.standard_normal((T, B, H * gru.num_directions)).astype(dtype)
    dhn = rng.standard_normal(h0.shape).astype(dtype)
    y, hn, cache = gru.forward(x, h0, rs)
    gru.zero_grad()
    dx, dh0 = gru.backward(dy, cache, dhn)

    p64 = {k: v.astype(np.float64) for k, v in gru.params.items()}
    ry, rhn, rcache = ref.forward(p64, x.astype(np.float64), h0.astype(np.float64), rs)
    rdx, rdh0, rgrads = ref.backward(dy.astype(np.float64), rcache, dhn.astype(np.float64))
    got = dict(y=y, hn=hn, dx=dx, dh0=dh0, **{"d" + k: g for k, g in gru.grads.items()})
    want = dict(y=ry, hn=rhn, dx=rdx, dh0=rdh0, **{"d" + k: g for k, g in rgrads.items()})
    assert set(got) == set(want) and len(want) == 4 + len(gru.params)
    for name in want:
        assert got[name].dtype == dtype and got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], **tol(dtype), err_msg=name)
    if T * B * H >= 100:  # not a vacuous comparison
        assert all(np.abs(v).max() > 1e-2 for v in want.values())


@pytest.mark.parametrize("L,bi", [(1, False), (2, False), (2, True)])
def test_gradients_by_central_differences(L, bi, rng):
    T, B, D, H = 5, 3, 2, 3
    gru = GRU(D, H, L, bidirectional=bi, dtype=np.float64, seed=1)
    gru.flat_params[...] = rng.uniform(-1, 1, gru.num_params)
    x, h0, rs = _inputs(gru, T, B, rng, 0.3)
    rs[T // 2, 0] = True
    wy = rng.standard_normal((T, B, H * gru.num_directions))
    wh = rng.standard_normal(h0.shape)

    def loss():
        y, h = gru(x, h0, rs)
        return float((wy * y).sum() + (wh * h).sum())

    _, _, cache = gru.forward(x, h0, rs)
    gru.zero_grad()
    dx, dh0 = gru.backward(wy, cache, wh)
    for name, analytic, arr in [("x", dx, x), ("h0", dh0, h0),
                                ("params", gru.flat_grads.copy(), gru.flat_params)]:
        numeric = central_difference(loss, arr)
        assert np.abs(analytic).max() > 1e-3, name
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("B", [1, 4])
def test_step_equals_forward(B, dtype, tol, rng, simd):
    gru = GRU(3, 5, 3, dtype=dtype, seed=2)
    x, h0, _ = _inputs(gru, 6, B, rng, 0)
    y, hn = gru(x, h0)
    h = h0
    for t in range(6):
        y_t, h = gru.step(x[t], h)
        assert y_t.shape == (B, 5) and y_t.dtype == dtype
        np.testing.assert_allclose(y_t, y[t], **tol(dtype))
    np.testing.assert_allclose(h, hn, **tol(dtype))
    y0, h_none = gru.step(x[0], None)
    np.testing.assert_array_equal(y0, gru.step(x[0], gru.initial_state(B))[0])


def test_call_equals_forward_and_reset_splits_sequence(dtype, tol, rng):
    gru = GRU(3, 4, 2, bidirectional=True, dtype=dtype, seed=3)
    T, B = 7, 3
    x = rng.standard_normal((T, B, 3)).astype(dtype)
    rs = np.zeros((T, B), dtype=bool)
    rs[3] = True
    y1, h1, _ = gru.forward(x, None, rs)
    y2, h2 = gru(x, None, rs)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(h1, h2)
    ya, _ = gru(x[:3])
    yb, _ = gru(x[3:])
    np.testing.assert_allclose(y1, np.concatenate([ya, yb]), **tol(dtype))
    assert np.abs(gru(x)[0] - y1).max() > 1e-3


def test_empty_sequence_keeps_state(rng):
    gru = GRU(2, 3, 2, dtype=np.float64, seed=0)
    h0 = rng.standard_normal((2, 4, 3))
    y, hn = gru(np.zeros((0, 4, 2)), h0)
    assert y.shape == (0, 4, 3)
    np.testing.assert_array_equal(hn, h0)


def test_params_are_views_and_names_are_pytorchs():
    gru = GRU(3, 4, 2, bidirectional=True, seed=0)
    assert set(gru.params) == {f"{w}_l{k}{s}" for w in ("weight_ih", "weight_hh", "bias_ih",
                                                        "bias_hh")
                               for k in (0, 1) for s in ("", "_reverse")}
    assert gru.params["weight_ih_l1"].shape == (12, 8)
    gru.flat_params[...] = 0.5
    assert (gru.params["weight_hh_l0_reverse"] == 0.5).all()


@pytest.mark.parametrize("call,exc,match", [
    (lambda g: GRU(0, 0), ValueError, "hidden_size"),
    (lambda g: GRU(2, 3, bidirectional=1), TypeError, "bidirectional"),
    (lambda g: GRU(2, 3, dtype=np.int32), ValueError, "dtype"),
    (lambda g: g(np.zeros((2, 1, 3))), ValueError, "input_size=2"),
    (lambda g: g(np.zeros((2, 1, 1, 2))), ValueError, "3 dimensions"),  # (T, D) is unbatched
    (lambda g: g(np.full((2, 1, 2), np.nan)), ValueError, "NaN"),
    (lambda g: g(np.array([["a"]])), TypeError, "real numbers"),
    (lambda g: g(np.zeros((2, 1, 2)), (np.zeros((1, 1, 3)),)), TypeError, "single array"),
    (lambda g: g(np.zeros((2, 1, 2)), np.zeros((1, 2, 3))), ValueError, "shape"),
    (lambda g: g(np.zeros((2, 1, 2)), None, np.zeros((3, 1), bool)), ValueError, "resets"),
    (lambda g: g.backward(np.zeros((2, 1, 3)), None), ValueError, "cache"),
    (lambda g: g.step(np.zeros((1, 3))), ValueError, "input_size=2"),
    (lambda g: g.initial_state(0), ValueError, "batch_size"),
])
def test_bad_input_gets_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(GRU(2, 3, seed=0))


def test_backward_checks_dy_shape_and_bidirectional_step():
    gru = GRU(2, 3, bidirectional=True, seed=0)
    _, _, cache = gru.forward(np.zeros((2, 1, 2)))
    with pytest.raises(ValueError, match="dy"):
        gru.backward(np.zeros((2, 1, 3)), cache)
    with pytest.raises(ValueError, match="unidirectional"):
        gru.step(np.zeros((1, 2)))


def test_cache_does_not_see_later_changes_to_the_input(rng):
    gru = GRU(2, 3, dtype=np.float64, seed=0)
    x = rng.standard_normal((4, 2, 2))
    _, _, cache = gru.forward(x)
    dx1, _ = gru.backward(np.ones((4, 2, 3)), cache)
    gru.zero_grad()
    _, _, cache = gru.forward(x)
    x += 1.0
    dx2, _ = gru.backward(np.ones((4, 2, 3)), cache)
    np.testing.assert_array_equal(dx1, dx2)


def test_step_fast_path_follows_bind_and_converts_other_inputs(rng):
    gru = GRU(3, 4, 2, seed=5)
    x = rng.standard_normal((2, 3)).astype(np.float32)
    h = rng.standard_normal((2, 2, 4)).astype(np.float32)
    want, want_h = gru.step(x, h)
    flat, grads = np.zeros(gru.num_params + 7, np.float32), np.zeros(gru.num_params + 7,
                                                                        np.float32)
    gru.bind(flat[7:], grads[7:])                       # the compiled plan must follow
    got, got_h = gru.step(x, h)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_h, want_h)
    got64, _ = gru.step(x.astype(np.float64).tolist(), h.astype(np.float64))  # converted
    np.testing.assert_allclose(got64, want, rtol=1e-6)
    flat[7:] = 0                                          # parameters updated in place
    np.testing.assert_array_equal(gru.step(x, h)[1], 0.5 * h)  # z = 1/2, n = 0


@pytest.mark.parametrize("where", ["x", "h"])
def test_step_refuses_nan(where, rng):
    gru = GRU(3, 4, seed=0)
    x = np.zeros((2, 3), np.float32)
    h = np.zeros((1, 2, 4), np.float32)
    (x if where == "x" else h)[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gru.step(x, h)


def test_backward_without_input_grad_gives_the_same_parameter_gradients(dtype):
    rng = np.random.default_rng(0)
    gru = GRU(5, 6, 2, bidirectional=True, dtype=dtype, seed=3)
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    dy = rng.standard_normal((4, 3, 12)).astype(dtype)
    y, _, cache = gru.forward(x, resets=rng.random((4, 3)) < 0.3)
    gru.zero_grad()
    dx, dh0 = gru.backward(dy, cache)
    grads = gru.flat_grads.copy()
    gru.zero_grad()
    none, dh0_ = gru.backward(dy, cache, input_grad=False)
    assert none is None and np.abs(dx).max() > 0
    np.testing.assert_array_equal(gru.flat_grads, grads)
    np.testing.assert_array_equal(dh0_, dh0)
