"""rlstm.LSTM against the pure-NumPy reference, central differences, step() and __call__."""
from __future__ import annotations

import math

import numpy as np
import pytest


from rlstm import LSTM
from rlstm.reference import lstm as ref
from rlstm.reference.gradcheck import central_difference as _central_difference

# (T, B, D, H, num_layers, bidirectional, variant, cell_activation, reset probability, state)
CASES = [
    (1, 1, 1, 1, 1, False, "vanilla", "tanh", 0.0, False),
    (1, 4, 3, 5, 1, False, "vanilla", "tanh", 0.0, True),
    (7, 1, 3, 5, 1, False, "vanilla", "tanh", 0.0, True),
    (1, 1, 2, 3, 2, True, "vanilla", "tanh", 0.0, True),
    (6, 3, 4, 5, 2, False, "vanilla", "tanh", 0.3, True),
    (5, 2, 3, 4, 3, True, "vanilla", "tanh", 0.3, True),
    (5, 2, 3, 4, 1, True, "vanilla", "tanh", 1.0, True),      # every step resets
    (4, 3, 2, 6, 2, True, "peephole", "tanh", 0.3, True),
    (5, 2, 3, 4, 1, False, "peephole", "identity", 0.2, True),
    (5, 2, 3, 4, 2, True, "vanilla", "identity", 0.3, True),
    (3, 2, 0, 4, 2, True, "vanilla", "tanh", 0.3, True),      # D = 0: no input at all
    (3, 0, 3, 4, 2, True, "peephole", "tanh", 0.3, True),     # B = 0: an empty batch
    (20, 8, 16, 32, 2, True, "peephole", "tanh", 0.1, True),
    (33, 5, 7, 17, 1, False, "vanilla", "tanh", 0.05, True),
    (10, 1, 33, 64, 2, False, "peephole", "tanh", 0.1, True),  # B = 1: the GEMV paths
    (4, 3, 5, 37, 1, False, "vanilla", "identity", 0.2, True),  # H not a SIMD multiple
    (6, 16, 24, 128, 1, True, "vanilla", "tanh", 0.1, True),
]
CASE_IDS = ["T{}B{}D{}H{}L{}{}-{}-{}-r{}{}".format(*c[:5], "bi" if c[5] else "", *c[6:9],
                                                   "-s" if c[9] else "") for c in CASES]


def _run_both(case, dtype, make_inputs, params64, rng, dstate=True):
    """Forward and backward through the kernel and through the reference (float64)."""
    T, B, D, H, L, bi, variant, act, p_reset, with_state = case
    lstm = LSTM(D, H, L, bidirectional=bi, variant=variant, cell_activation=act,
                dtype=dtype, seed=0)
    x, state, resets = make_inputs(lstm, T, B, rng, state=with_state, resets=p_reset)
    nd = 2 if bi else 1
    dy = rng.standard_normal((T, B, H * nd)).astype(dtype)
    ds = (rng.standard_normal((L * nd, B, H)).astype(dtype),
          rng.standard_normal((L * nd, B, H)).astype(dtype)) if dstate else None

    y, (h, c), cache = lstm.forward(x, state, resets)
    lstm.zero_grad()
    dx, (dh0, dc0) = lstm.backward(dy, cache, ds)
    got = dict(y=y, h=h, c=c, dx=dx, dh0=dh0, dc0=dc0,
               **{"d" + k: g for k, g in lstm.grads.items()})

    up = (lambda a: None if a is None else tuple(np.asarray(v, np.float64) for v in a))
    ry, (rh, rc), rcache = ref.forward(params64(lstm), x.astype(np.float64), up(state),
                                       resets, cell_activation=act)
    rdx, (rdh0, rdc0), rgrads = ref.backward(dy.astype(np.float64), rcache, up(ds))
    want = dict(y=ry, h=rh, c=rc, dx=rdx, dh0=rdh0, dc0=rdc0,
                **{"d" + k: g for k, g in rgrads.items()})
    return lstm, got, want


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_backward_match_reference(case, dtype, tol, make_inputs, params64, rng,
                                           simd):
    lstm, got, want = _run_both(case, dtype, make_inputs, params64, rng)
    assert set(got) == set(want)
    assert len(want) == 6 + len(lstm.params)
    for name in want:
        assert got[name].dtype == dtype, name
        assert got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], **tol(dtype), err_msg=name)


@pytest.mark.parametrize("variant,act", [("vanilla", "tanh"), ("peephole", "tanh"),
                                         ("peephole", "identity")])
def test_one_cell_by_hand(variant, act, dtype, tol):
    """One unit, two steps, written out with math: anchors kernel and reference alike."""
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    f_act = math.tanh if act == "tanh" else (lambda c: c)
    lstm = LSTM(1, 1, variant=variant, cell_activation=act, dtype=dtype)
    lstm.params["weight_ih_l0"][:, 0] = [0.5, -0.3, 0.8, 0.2]    # i, f, g, o
    lstm.params["weight_hh_l0"][:, 0] = [0.1, 0.4, -0.6, 0.7]
    lstm.params["bias_ih_l0"][:] = [0.05, 0.1, -0.05, 0.0]
    lstm.params["bias_hh_l0"][:] = [0.0, 0.2, 0.1, -0.1]
    if variant == "peephole":
        lstm.params["peephole_l0"][:] = [0.3, -0.2, 0.5]            # p_i, p_f, p_o
    P = {k: [float(e) for e in v.ravel()] for k, v in lstm.params.items()}  # as stored
    p = P.get("peephole_l0", [0.0, 0.0, 0.0])
    h, c, want = 0.25, -0.5, []
    for x in (1.0, -2.0):
        z = [P["weight_ih_l0"][k] * x + P["weight_hh_l0"][k] * h + P["bias_ih_l0"][k]
             + P["bias_hh_l0"][k] for k in range(4)]
        i, f, g = sig(z[0] + p[0] * c), sig(z[1] + p[1] * c), math.tanh(z[2])
        c = f * c + i * g
        o = sig(z[3] + p[2] * c)
        h = o * f_act(c)
        want.append(h)
    y, (hn, cn) = lstm(np.array([[[1.0]], [[-2.0]]]), (np.full((1, 1, 1), 0.25),
                                                       np.full((1, 1, 1), -0.5)))
    np.testing.assert_allclose(y.ravel(), want, **tol(dtype))
    np.testing.assert_allclose(cn.ravel(), [c], **tol(dtype))
    ry, _, _ = ref.forward({k: v.astype(np.float64) for k, v in lstm.params.items()},
                           np.array([[[1.0]], [[-2.0]]]), (np.full((1, 1, 1), 0.25),
                                                            np.full((1, 1, 1), -0.5)),
                           cell_activation=act)
    np.testing.assert_allclose(ry.ravel(), want, rtol=1e-12)


def test_reference_is_not_trivially_satisfied(make_inputs, params64, rng):
    """Guard against a vacuous comparison: outputs and every gradient are far from zero."""
    lstm, got, want = _run_both(CASES[7], np.float64, make_inputs, params64, rng)
    for name, v in want.items():
        assert np.abs(v).max() > 1e-2, name


def test_backward_without_dstate_matches_reference(dtype, tol, make_inputs, params64, rng):
    _, got, want = _run_both(CASES[5], dtype, make_inputs, params64, rng, dstate=False)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], **tol(dtype), err_msg=name)


# --------------------------------------------------------------------------- central differences
GRADCHECK_CASES = [
    # (T, B, D, H, num_layers, bidirectional, variant, cell_activation, reset probability)
    (4, 2, 3, 3, 1, False, "vanilla", "tanh", 0.0),
    (5, 2, 2, 3, 2, False, "vanilla", "tanh", 0.3),
    (4, 2, 2, 3, 2, True, "vanilla", "tanh", 0.3),
    (4, 2, 2, 2, 2, True, "peephole", "tanh", 0.3),
    (4, 3, 2, 3, 1, False, "peephole", "identity", 0.3),
    (3, 2, 2, 3, 1, True, "vanilla", "identity", 0.0),
]


@pytest.mark.parametrize("case", GRADCHECK_CASES,
                         ids=["T{}B{}D{}H{}L{}{}-{}-{}-r{}".format(*c[:5], "bi" if c[5] else "",
                                                                 *c[6:]) for c in GRADCHECK_CASES])
def test_gradients_by_central_differences(case, make_inputs, rng, simd):
    T, B, D, H, L, bi, variant, act, p_reset = case
    lstm = LSTM(D, H, L, bidirectional=bi, variant=variant, cell_activation=act,
                dtype=np.float64, seed=1)
    # Parameters larger than the default init make every gate matter (no near-linear regime).
    lstm.flat_params[...] = rng.uniform(-1, 1, lstm.num_params)
    x, (h0, c0), resets = make_inputs(lstm, T, B, rng, state=True, resets=p_reset)
    if resets is not None:  # make sure a reset happens mid-sequence in both directions' view
        resets[T // 2, 0] = True
    wy = rng.standard_normal((T, B, H * lstm.num_directions))
    wh, wc = rng.standard_normal(h0.shape), rng.standard_normal(c0.shape)

    def loss():
        y, (h, c) = lstm(x, (h0, c0), resets)
        return float((wy * y).sum() + (wh * h).sum() + (wc * c).sum())

    _, _, cache = lstm.forward(x, (h0, c0), resets)
    lstm.zero_grad()
    dx, (dh0, dc0) = lstm.backward(wy, cache, (wh, wc))
    checks = {"x": (dx, x), "h0": (dh0, h0), "c0": (dc0, c0),
              "flat_params": (lstm.flat_grads.copy(), lstm.flat_params)}
    for name, (analytic, arr) in checks.items():
        numeric = _central_difference(loss, arr)
        assert np.abs(analytic).max() > 1e-3, name
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


def test_reference_gradients_by_central_differences(rng):
    """The reference stands on its own: its backward matches central differences too, so a
    disagreement with the kernel says which one is wrong."""
    params = {k: v for k, v in LSTM(2, 3, 2, bidirectional=True, variant="peephole",
                                     dtype=np.float64, seed=1).state_dict().items()}
    for k in params:
        params[k][...] = rng.uniform(-1, 1, params[k].shape)
    x = rng.standard_normal((4, 2, 2))
    h0, c0 = rng.standard_normal((2, 4, 2, 3))
    resets = np.array([[0, 0], [1, 0], [0, 1], [0, 0]], dtype=bool)
    wy = rng.standard_normal((4, 2, 6))
    wh, wc = rng.standard_normal((2, 4, 2, 3))

    def loss():
        y, (h, c), _ = ref.forward(params, x, (h0, c0), resets, "identity")
        return float((wy * y).sum() + (wh * h).sum() + (wc * c).sum())

    _, _, cache = ref.forward(params, x, (h0, c0), resets, "identity")
    dx, (dh0, dc0), grads = ref.backward(wy, cache, (wh, wc))
    checks = [("x", dx, x), ("h0", dh0, h0), ("c0", dc0, c0)]
    checks += [(k, grads[k], params[k]) for k in params]
    for name, analytic, arr in checks:
        np.testing.assert_allclose(analytic, _central_difference(loss, arr), rtol=1e-6,
                                   atol=1e-8, err_msg=name)


def test_central_difference_catches_a_wrong_gradient(make_inputs, rng):
    """The check above can fail: a gradient off by 1e-4 in one entry is detected."""
    lstm = LSTM(2, 3, dtype=np.float64, seed=1)
    x, state, _ = make_inputs(lstm, 3, 2, rng)
    _, _, cache = lstm.forward(x, state)
    dx, _ = lstm.backward(np.ones((3, 2, 3)), cache)
    numeric = _central_difference(lambda: float(lstm(x, state)[0].sum()), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)
    dx[1, 1, 0] += 1e-4
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-8)


# --------------------------------------------------------------------------- step and __call__
@pytest.mark.parametrize("variant,act", [("vanilla", "tanh"), ("peephole", "tanh"),
                                         ("peephole", "identity"), ("vanilla", "identity")])
@pytest.mark.parametrize("B", [1, 5, 16, 37])   # 16, 37: the gate products on the micro-kernel
def test_step_equals_forward_step_by_step(variant, act, B, dtype, tol, make_inputs, rng,
                                          simd):
    lstm = LSTM(4, 6, 3, variant=variant, cell_activation=act, dtype=dtype, seed=2)
    T = 6
    x, state, _ = make_inputs(lstm, T, B, rng)
    y, (hn, cn) = lstm(x, state)
    s = state
    for t in range(T):
        h_t, s = lstm.step(x[t], s)
        assert h_t.shape == (B, 6) and h_t.dtype == dtype
        np.testing.assert_allclose(h_t, y[t], **tol(dtype), err_msg=f"t={t}")
        np.testing.assert_array_equal(h_t, s[0][-1])
    np.testing.assert_allclose(s[0], hn, **tol(dtype))
    np.testing.assert_allclose(s[1], cn, **tol(dtype))


def test_step_from_none_state_is_step_from_zeros(dtype, rng):
    lstm = LSTM(3, 4, 2, dtype=dtype, seed=3)
    x = rng.standard_normal((2, 3)).astype(dtype)
    h1, (h, c) = lstm.step(x, None)
    h2, (h_, c_) = lstm.step(x, lstm.initial_state(2))
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(c, c_)
    assert np.abs(h1).max() > 1e-3


def test_step_does_not_modify_its_state(rng):
    lstm = LSTM(3, 4, 2, dtype=np.float64, seed=3)
    h0, c0 = rng.standard_normal((2, 1, 4)), rng.standard_normal((2, 1, 4))
    keep = h0.copy(), c0.copy()
    lstm.step(rng.standard_normal((1, 3)), (h0, c0))
    np.testing.assert_array_equal(h0, keep[0])
    np.testing.assert_array_equal(c0, keep[1])


def test_results_do_not_depend_on_the_blas_thread_count(dtype, tol, make_inputs, rng):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    lstm = LSTM(32, 64, 2, bidirectional=True, dtype=dtype, seed=5)
    x, state, resets = make_inputs(lstm, 8, 16, rng, resets=0.1)
    dy = rng.standard_normal((8, 16, 128)).astype(dtype)
    runs = []
    for threads in (1, 2):
        with threadpoolctl.threadpool_limits(threads, user_api="blas"):
            y, _, cache = lstm.forward(x, state, resets)
            lstm.zero_grad()
            dx, _ = lstm.backward(dy, cache)
        runs.append((y, dx, lstm.flat_grads.copy()))
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, **tol(dtype))


def test_step_returns_fresh_arrays(dtype, rng):
    """Outputs of one step are not overwritten by the next (no reused internal buffers)."""
    lstm = LSTM(3, 4, 2, dtype=dtype, seed=3)
    x = rng.standard_normal((2, 3)).astype(dtype)
    h1, s1 = lstm.step(x, None)
    keep = h1.copy(), s1[0].copy(), s1[1].copy()
    h2, s2 = lstm.step(x, s1)
    assert not np.shares_memory(h1, h2) and not np.shares_memory(s1[0], s2[0])
    for a, b in zip((h1, s1[0], s1[1]), keep):
        np.testing.assert_array_equal(a, b)
    assert np.abs(h2 - h1).max() > 1e-4


def test_step_and_forward_follow_in_place_parameter_updates(dtype, rng):
    """step()'s compiled plan reads flat_params live: in-place updates, load_state_dict,
    set_flat_params and bind() are all seen, exactly as forward() sees them."""
    lstm = LSTM(3, 4, 2, variant="peephole", dtype=dtype, seed=3)
    x = rng.standard_normal((1, 2, 3)).astype(dtype)

    def agree():
        h_step, _ = lstm.step(x[0], None)
        y, _ = lstm(x)
        np.testing.assert_allclose(h_step, y[0], rtol=1e-5, atol=1e-6)
        return h_step

    before = agree()
    lstm.flat_params[...] *= 2
    after_scale = agree()
    assert np.abs(after_scale - before).max() > 1e-3
    lstm.set_flat_params(LSTM(3, 4, 2, variant="peephole", dtype=dtype, seed=4).flat_params)
    after_set = agree()
    assert np.abs(after_set - after_scale).max() > 1e-3
    big_p, big_g = np.zeros(lstm.num_params + 5, dtype), np.zeros(lstm.num_params + 5, dtype)
    lstm.bind(big_p[5:], big_g[5:])
    np.testing.assert_array_equal(agree(), after_set)  # values were carried over
    big_p[5:] *= -1
    assert np.abs(agree() - after_set).max() > 1e-3
    with pytest.raises(ValueError, match="contiguous 1-D"):
        lstm.bind(big_p, big_g)


def test_call_equals_forward(dtype, make_inputs, rng):
    lstm = LSTM(3, 5, 2, bidirectional=True, variant="peephole", dtype=dtype, seed=4)
    x, state, resets = make_inputs(lstm, 6, 3, rng, resets=0.3)
    y1, (h1, c1), _ = lstm.forward(x, state, resets)
    y2, (h2, c2) = lstm(x, state, resets)
    np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(c1, c2)


def test_forward_and_backward_are_deterministic(dtype, make_inputs, rng):
    """The same call twice gives bit-identical results (ES workers rely on it)."""
    lstm = LSTM(5, 16, 2, bidirectional=True, variant="peephole", dtype=dtype, seed=4)
    x, state, resets = make_inputs(lstm, 9, 7, rng, resets=0.2)
    dy = rng.standard_normal((9, 7, 32)).astype(dtype)
    runs = []
    for _ in range(2):
        y, (h, c), cache = lstm.forward(x, state, resets)
        lstm.zero_grad()
        dx, (dh0, dc0) = lstm.backward(dy, cache)
        runs.append((y, h, c, dx, dh0, dc0, lstm.flat_grads.copy()))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_forward_does_not_modify_inputs(make_inputs, rng):
    lstm = LSTM(3, 4, 2, bidirectional=True, dtype=np.float64, seed=5)
    x, (h0, c0), resets = make_inputs(lstm, 5, 2, rng, resets=0.3)
    copies = [a.copy() for a in (x, h0, c0, resets)]
    _, _, cache = lstm.forward(x, (h0, c0), resets)
    dy = rng.standard_normal((5, 2, 8))
    dh = rng.standard_normal(h0.shape)
    dc = rng.standard_normal(h0.shape)
    dcopies = [a.copy() for a in (dy, dh, dc)]
    lstm.backward(dy, cache, (dh, dc))
    for a, b in zip((x, h0, c0, resets, dy, dh, dc), copies + dcopies):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- resets, semantics
def test_reset_splits_the_sequence_in_two(dtype, tol, rng):
    """With every row reset at t, a bidirectional run equals two independent runs.

    This checks the reset convention of both directions without the reference: the forward
    direction restarts at t, the reverse direction restarts at t - 1.
    """
    lstm = LSTM(3, 4, 2, bidirectional=True, dtype=dtype, seed=6)
    T, B, t = 7, 3, 3
    x = rng.standard_normal((T, B, 3)).astype(dtype)
    resets = np.zeros((T, B), dtype=bool)
    resets[t] = True
    y, _ = lstm(x, None, resets)
    y_a, _ = lstm(x[:t])
    y_b, _ = lstm(x[t:])
    np.testing.assert_allclose(y, np.concatenate([y_a, y_b]), **tol(dtype))
    y_no_reset, _ = lstm(x)
    assert np.abs(y - y_no_reset).max() > 1e-3  # the reset did change something


def test_reset_at_t0_ignores_the_initial_state(dtype, make_inputs, rng):
    lstm = LSTM(3, 4, 2, dtype=dtype, seed=7)
    x, state, _ = make_inputs(lstm, 4, 2, rng)
    resets = np.zeros((4, 2), dtype=bool)
    resets[0, 1] = True
    y, _, cache = lstm.forward(x, state, resets)
    y0, _ = lstm(x, None)
    np.testing.assert_array_equal(y[:, 1], y0[:, 1])
    assert np.abs(y[:, 0] - y0[:, 0]).max() > 1e-3
    _, (dh0, dc0) = lstm.backward(np.ones_like(y), cache)
    assert np.all(dh0[:, 1] == 0) and np.all(dc0[:, 1] == 0)
    assert np.abs(dh0[:, 0]).max() > 1e-3


def test_resets_accept_ints_and_lists(rng):
    lstm = LSTM(2, 3, dtype=np.float64, seed=8)
    x = rng.standard_normal((3, 2, 2))
    mask = [[False, True], [True, False], [False, False]]
    y_bool, _ = lstm(x, None, np.array(mask))
    y_int, _ = lstm(x, None, np.array(mask, dtype=np.int64))
    y_list, _ = lstm(x, None, mask)
    np.testing.assert_array_equal(y_bool, y_int)
    np.testing.assert_array_equal(y_bool, y_list)


@pytest.mark.parametrize("scale", [1e-40, 1e3, 1e4, 1e10, 1e30])
def test_extreme_inputs_stay_finite_and_exact(scale, dtype, tol, params64, rng, simd):
    """Huge pre-activations must not overflow sigmoid/tanh into NaN; subnormal ones must not
    lose accuracy. Gradients are compared relative to their largest entry."""
    lstm = LSTM(3, 5, 2, bidirectional=True, variant="peephole", dtype=dtype, seed=9)
    x = (rng.standard_normal((6, 2, 3)) * scale).astype(dtype)
    y, (h, c), cache = lstm.forward(x)
    dx, _ = lstm.backward(np.ones_like(y), cache)
    assert np.isfinite(y).all() and np.isfinite(c).all() and np.isfinite(dx).all()
    assert np.isfinite(lstm.flat_grads).all()
    ry, (rh, rc), rcache = ref.forward(params64(lstm), x.astype(np.float64))
    rdx, _, rgrads = ref.backward(np.ones(ry.shape), rcache)
    np.testing.assert_allclose(y, ry, **tol(dtype))
    np.testing.assert_allclose(c, rc, **tol(dtype))
    rel = 1e-4 if dtype == np.float32 else 1e-12
    for name, want in [("dx", rdx)] + [("d" + k, g) for k, g in rgrads.items()]:
        got = dx if name == "dx" else lstm.grads[name[1:]]
        assert np.abs(got - want).max() <= rel * max(1.0, np.abs(want).max()), name


# --------------------------------------------------------------------------- parameters
def test_parameter_names_shapes_and_views():
    lstm = LSTM(3, 5, 2, bidirectional=True, variant="peephole", dtype=np.float64, seed=0)
    want = {}
    for k in range(2):
        for sfx in (f"_l{k}", f"_l{k}_reverse"):
            d = 3 if k == 0 else 10
            want.update({f"weight_ih{sfx}": (20, d), f"weight_hh{sfx}": (20, 5),
                         f"bias_ih{sfx}": (20,), f"bias_hh{sfx}": (20,),
                         f"peephole{sfx}": (15,)})
    assert {k: v.shape for k, v in lstm.params.items()} == want
    assert {k: v.shape for k, v in lstm.grads.items()} == want
    assert lstm.num_params == sum(int(np.prod(s)) for s in want.values())
    for name, p in lstm.params.items():
        assert np.shares_memory(p, lstm.flat_params), name
        assert np.shares_memory(lstm.grads[name], lstm.flat_grads), name
    lstm.flat_params[...] = 0.5
    assert all(np.all(p == 0.5) for p in lstm.params.values())
    lstm.params["bias_hh_l1_reverse"][3] = 7.0
    assert np.count_nonzero(lstm.flat_params == 7.0) == 1


def test_default_init_is_pytorch_uniform_and_seeded():
    a = LSTM(3, 16, 2, seed=11)
    b = LSTM(3, 16, 2, seed=11)
    c = LSTM(3, 16, 2, seed=12)
    np.testing.assert_array_equal(a.flat_params, b.flat_params)
    assert not np.array_equal(a.flat_params, c.flat_params)
    k = 1 / np.sqrt(16)
    assert np.abs(a.flat_params).max() <= k
    assert np.abs(a.flat_params).max() > 0.9 * k
    assert a.flat_params.dtype == np.float32 and a.dtype == np.float32


def test_gradients_accumulate_until_zero_grad(dtype, make_inputs, rng):
    lstm = LSTM(3, 4, 2, bidirectional=True, dtype=dtype, seed=10)
    x, state, resets = make_inputs(lstm, 4, 2, rng, resets=0.3)
    dy = rng.standard_normal((4, 2, 8)).astype(dtype)
    _, _, cache = lstm.forward(x, state, resets)
    lstm.zero_grad()
    lstm.backward(dy, cache)
    once = lstm.flat_grads.copy()
    assert np.abs(once).max() > 1e-3
    lstm.backward(dy, cache)
    np.testing.assert_allclose(lstm.flat_grads, 2 * once, rtol=1e-5)
    lstm.zero_grad()
    assert not lstm.flat_grads.any()


def test_state_dict_round_trip():
    a = LSTM(3, 4, 2, bidirectional=True, variant="peephole", seed=1)
    b = LSTM(3, 4, 2, bidirectional=True, variant="peephole", seed=2)
    sd = a.state_dict()
    sd["weight_ih_l0"][...] = 99  # a copy, not a view
    assert not np.any(a.params["weight_ih_l0"] == 99)
    b.load_state_dict(a.state_dict())
    np.testing.assert_array_equal(a.flat_params, b.flat_params)


# --------------------------------------------------------------------------- regressions
def test_step_refuses_a_nan_state():
    """step()'s compiled fast path (exact dtype, C-contiguous tuple state) checks h and c."""
    lstm = LSTM(3, 4, 2, dtype=np.float64, seed=0)
    for poison in (np.nan, np.inf):
        for i in (0, 1):
            state = list(lstm.initial_state(2))
            state[i][1, 0, 2] = poison
            with pytest.raises(ValueError, match="NaN or inf"):
                lstm.forward(np.zeros((1, 2, 3)), tuple(state))
            with pytest.raises(ValueError, match="NaN or inf"):
                lstm.step(np.zeros((2, 3)), tuple(state))


def test_empty_sequence_returns_the_initial_state(rng):
    """T = 0: nothing runs, the state passes through (it used to be uninitialised memory)."""
    lstm = LSTM(3, 4, 2, dtype=np.float64, seed=0)
    h0, c0 = rng.standard_normal((2, 2, 4)), rng.standard_normal((2, 2, 4))
    x = np.zeros((0, 2, 3))
    try:
        y, (h, c), _ = lstm.forward(x, (h0, c0))
    except ValueError:
        return  # refusing an empty sequence is also acceptable
    assert y.shape == (0, 2, 4)
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(c, c0)
    y, (h, c) = lstm(x, (h0, c0))
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(c, c0)


# --------------------------------------------------------------------------- known defects
def test_backward_is_unaffected_by_changing_the_inputs_after_forward(make_inputs, rng):
    lstm = LSTM(3, 4, dtype=np.float64, seed=0)
    x, state, _ = make_inputs(lstm, 5, 2, rng)
    dy = rng.standard_normal((5, 2, 4))
    _, _, cache = lstm.forward(x, state)
    lstm.backward(dy, cache)
    want = lstm.flat_grads.copy()
    lstm.zero_grad()
    _, _, cache = lstm.forward(x, state)
    x[...] = 0  # e.g. a rollout buffer refilled for the next batch
    state[0][...] = 0
    state[1][...] = 0
    lstm.backward(dy, cache)
    np.testing.assert_array_equal(lstm.flat_grads, want)


def test_forget_bias_shifts_only_the_initial_forget_gate_biases(tmp_path):
    import rlstm
    H = 5
    base = rlstm.LSTM(3, H, 2, bidirectional=True, seed=7)
    fb = rlstm.LSTM(3, H, 2, bidirectional=True, seed=7, forget_bias=1.0)
    for name, p in fb.params.items():
        want = base.params[name].copy()
        if name.startswith("bias_ih"):
            want[H:2 * H] += 1.0
        np.testing.assert_array_equal(p, want, err_msg=name)
    rlstm.save(fb, tmp_path / "fb.rlstm")
    assert rlstm.load(tmp_path / "fb.rlstm").forget_bias == 1.0
    for bad in (None, "1", True, float("nan")):
        with pytest.raises(TypeError, match="forget_bias"):
            rlstm.LSTM(3, H, forget_bias=bad)


@pytest.mark.parametrize("L,bi", [(1, False), (2, True)])
def test_backward_without_input_grad_gives_the_same_parameter_gradients(L, bi, dtype,
                                                                        make_inputs, rng):
    lstm = LSTM(5, 6, L, bidirectional=bi, variant="peephole", dtype=dtype, seed=3)
    x, state, resets = make_inputs(lstm, 4, 3, rng, resets=0.2)
    dy = rng.standard_normal((4, 3, 6 * lstm.num_directions)).astype(dtype)
    y, _, cache = lstm.forward(x, state, resets)
    lstm.zero_grad()
    dx, (dh0, dc0) = lstm.backward(dy, cache)
    grads = lstm.flat_grads.copy()
    lstm.zero_grad()
    none, (dh0_, dc0_) = lstm.backward(dy, cache, input_grad=False)
    assert none is None and np.abs(dx).max() > 0
    np.testing.assert_array_equal(lstm.flat_grads, grads)
    np.testing.assert_array_equal(dh0_, dh0)
    np.testing.assert_array_equal(dc0_, dc0)
