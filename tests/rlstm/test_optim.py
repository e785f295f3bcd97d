"""rlstm.optim: SGD, Adam and clip_grad_norm by hand, against torch.optim, and end to end."""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import LSTM, clip_grad_norm
from rlstm.optim import SGD, Adam
from rlstm.serialization import load_arrays, save_arrays


def _pair(p, g, dtype=np.float64):
    return np.array(p, dtype=dtype), np.array(g, dtype=dtype)


# --------------------------------------------------------------------------- SGD by hand
def test_sgd_plain_step(dtype):
    p, g = _pair([1.0, 2.0, 3.0], [0.5, -1.0, 2.0], dtype)
    SGD(p, g, lr=0.1).step()
    np.testing.assert_allclose(p, [0.95, 2.1, 2.8], rtol=1e-6)
    assert p.dtype == dtype


def test_sgd_momentum_two_steps():
    p, g = _pair([1.0, -1.0], [1.0, 2.0])
    opt = SGD(p, g, lr=0.1, momentum=0.9)
    opt.step()                      # v = g = [1, 2];          p = [0.9, -1.2]
    np.testing.assert_allclose(p, [0.9, -1.2])
    g[...] = [-1.0, 0.0]
    opt.step()                      # v = 0.9 v + g = [-0.1, 1.8]; p = [0.91, -1.38]
    np.testing.assert_allclose(p, [0.91, -1.38])
    np.testing.assert_allclose(opt.velocity, [-0.1, 1.8])


def test_sgd_nesterov_two_steps():
    p, g = _pair([1.0], [1.0])
    opt = SGD(p, g, lr=0.1, momentum=0.5, nesterov=True)
    opt.step()                      # v = 1;   update = g + 0.5 v = 1.5;   p = 0.85
    np.testing.assert_allclose(p, [0.85])
    g[...] = 2.0
    opt.step()                      # v = 2.5; update = 2 + 1.25 = 3.25;   p = 0.525
    np.testing.assert_allclose(p, [0.525])


def test_sgd_weight_decay_is_decoupled():
    p, g = _pair([2.0, -4.0], [0.0, 1.0])
    SGD(p, g, lr=0.1, weight_decay=0.5).step()  # p * (1 - 0.05) - 0.1 g
    np.testing.assert_allclose(p, [1.9, -3.9])


# --------------------------------------------------------------------------- Adam by hand
def _adam_algorithm_1(p, grads, lr, b1, b2, eps, wd=0.0):
    """Kingma & Ba, Algorithm 1 (eps added to sqrt(v_hat)), with AdamW's decoupled decay."""
    p = p.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        p *= 1 - lr * wd
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        p -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
    return p


def test_adam_first_step_is_lr_times_sign():
    p, g = _pair([1.0, 1.0, 1.0], [3.0, -0.5, 0.0])
    Adam(p, g, lr=0.01).step()
    np.testing.assert_allclose(p, [0.99, 1.01, 1.0], rtol=0, atol=1e-8)


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_matches_algorithm_1(dtype, wd, rng):
    grads = [rng.standard_normal(6) for _ in range(5)]
    p0 = rng.standard_normal(6)
    want = _adam_algorithm_1(p0, grads, lr=0.05, b1=0.8, b2=0.99, eps=1e-8, wd=wd)
    p, g = p0.astype(dtype), np.zeros(6, dtype)
    opt = Adam(p, g, lr=0.05, betas=(0.8, 0.99), eps=1e-8, weight_decay=wd)
    for gt in grads:
        g[...] = gt
        opt.step()
    assert opt.t == 5
    np.testing.assert_allclose(p, want, rtol=1e-5 if dtype == np.float32 else 1e-9, atol=1e-7)


@pytest.mark.parametrize("n", [1, 7, 1000, 35_011])
def test_fused_adam_kernel_matches_algorithm_1_on_long_vectors(dtype, n, rng):
    """The kernel's vectorised loop and its tail, every length class, decay on."""
    grads = [rng.standard_normal(n) * 10.0 ** rng.integers(-4, 2) for _ in range(4)]
    p0 = rng.standard_normal(n)
    want = _adam_algorithm_1(p0, grads, lr=3e-3, b1=0.9, b2=0.999, eps=1e-5, wd=0.01)
    p, g = p0.astype(dtype), np.zeros(n, dtype)
    opt = Adam(p, g, lr=3e-3, eps=1e-5, weight_decay=0.01)
    for gt in grads:
        g[...] = gt
        opt.step()
    np.testing.assert_allclose(p, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-14)


def test_adam_matches_algorithm_1_for_tiny_gradients():
    p0 = np.array([1.0, -1.0])
    grads = [np.array([1e-8, -3e-8])] * 3
    want = _adam_algorithm_1(p0, grads, lr=0.1, b1=0.9, b2=0.999, eps=1e-8)
    p, g = p0.copy(), np.zeros(2)
    opt = Adam(p, g, lr=0.1)
    for gt in grads:
        g[...] = gt
        opt.step()
    np.testing.assert_allclose(p, want, rtol=1e-6)


def test_adam_moments_that_decay_to_subnormal_are_stored_as_zero(dtype):
    """A gradient that turns zero leaves moments decaying by beta each step; below the smallest
    normal number they are flushed to zero (subnormal arithmetic is ~100x slower), and the
    parameters still follow Algorithm 1."""
    tiny = np.finfo(dtype).tiny
    n = 64
    grads = [np.full(n, 1e-3)] + [np.zeros(n)] * 3
    p0 = np.linspace(-1, 1, n)
    want = _adam_algorithm_1(p0, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8)
    p, g = p0.astype(dtype), np.zeros(n, dtype)
    opt = Adam(p, g, lr=1e-3)
    for gt in grads:
        g[...] = gt
        opt.step()
    assert (opt.m != 0).all() and (opt.v != 0).all()           # still normal numbers here
    opt.m[: n // 2] = tiny * 1.05     # next step: 0.9 * m is subnormal
    opt.v[...] = tiny * 1.0005          # and 0.999 * v
    opt.m[n // 2:] = -tiny * 1.05
    before = p.copy()
    g[...] = 0
    opt.step()
    assert (opt.m == 0).all() and (opt.v == 0).all()
    np.testing.assert_array_equal(p, before)   # what was dropped is far below one ulp of p
    np.testing.assert_allclose(before, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-7 if dtype == np.float32 else 1e-14)
    # normal moments are untouched by the flush: one more step with a normal gradient
    g[...] = 1e-3
    opt.step()
    m_want = (np.asarray(0.1, dtype) * np.asarray(1e-3, dtype)).astype(dtype)
    np.testing.assert_allclose(opt.m, m_want, rtol=1e-6)


# --------------------------------------------------------------------------- clip_grad_norm
def test_clip_grad_norm_numbers(dtype):
    g = np.array([3.0, 4.0], dtype)
    norm = clip_grad_norm(g, 1.0)
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(g, [0.6, 0.8], rtol=1e-6)
    assert g.dtype == dtype
    small = np.array([0.3, 0.4], dtype)
    assert clip_grad_norm(small, 1.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(small, np.array([0.3, 0.4], dtype))  # untouched


def test_clip_grad_norm_on_a_module():
    lstm = LSTM(2, 3, dtype=np.float64)
    lstm.flat_grads[...] = 1.0
    n = lstm.num_params
    assert clip_grad_norm(lstm.flat_grads, 2.0) == pytest.approx(np.sqrt(n))
    assert np.linalg.norm(lstm.flat_grads) == pytest.approx(2.0, rel=1e-6)
    assert np.linalg.norm(lstm.grads["weight_hh_l0"]) == pytest.approx(2.0 * np.sqrt(36 / n),
                                                                      rel=1e-6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_clip_grad_norm_reports_and_keeps_a_non_finite_gradient(bad):
    g = np.array([1.0, bad, 2.0])
    norm = clip_grad_norm(g, 1.0)
    assert not np.isfinite(norm)
    np.testing.assert_array_equal(g[[0, 2]], [1.0, 2.0])


@pytest.mark.parametrize("grads,max_norm,exc,msg", [
    (np.ones(3), 0.0, ValueError, "max_norm must be a number > 0, got 0.0"),
    (np.ones(3), -1.0, ValueError, "max_norm must be a number > 0, got -1.0"),
    (np.ones(3), np.nan, ValueError, "max_norm must be a number > 0, got nan"),
    (np.ones(3), "1", TypeError, "max_norm must be a number > 0, got '1'"),
    ([1.0, 2.0], 1.0, TypeError, "float32/float64 NumPy array"),
    (np.ones(3, dtype=np.int64), 1.0, TypeError, "float32/float64 NumPy array"),
    (np.ones((2, 2)), 1.0, ValueError, "1-D contiguous"),
    (np.ones(6)[::2], 1.0, ValueError, "1-D contiguous"),
])
def test_clip_grad_norm_refuses(grads, max_norm, exc, msg):
    with pytest.raises(exc, match=msg):
        clip_grad_norm(grads, max_norm)


# --------------------------------------------------------------------------- refusals, state
@pytest.mark.parametrize("make", [lambda p, g: SGD(p, g, momentum=0.9),
                                  lambda p, g: Adam(p, g)])
def test_nan_gradient_is_refused_and_changes_nothing(make):
    p, g = _pair([1.0, 2.0], [0.1, 0.2])
    opt = make(p, g)
    opt.step()
    before = {k: np.array(v, copy=True) for k, v in opt.state_dict().items()}
    p_before = p.copy()
    g[1] = np.nan
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        opt.step()
    np.testing.assert_array_equal(p, p_before)
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)


@pytest.mark.parametrize("call,exc,msg", [
    (lambda p, g: SGD(p, g, lr=0), ValueError, r"SGD\.lr must be a number > 0, got 0"),
    (lambda p, g: Adam(p, g, lr=-1e-3), ValueError, r"Adam\.lr must be a number > 0"),
    (lambda p, g: Adam(p, g, lr=np.inf), ValueError, r"Adam\.lr must be a number > 0, got inf"),
    (lambda p, g: Adam(p, g, lr="0.1"), TypeError, r"Adam\.lr must be a number > 0, got '0\.1'"),
    (lambda p, g: Adam(p, g, weight_decay=np.nan), ValueError, r"Adam\.weight_decay must be a number >= 0"),
    (lambda p, g: SGD(p, g, momentum=1.0), ValueError, r"momentum must be a number in \[0, 1\)"),
    (lambda p, g: SGD(p, g, nesterov="no"), TypeError, r"SGD\.nesterov must be a bool"),
    (lambda p, g: SGD(p, g, weight_decay=-1), ValueError, "weight_decay must be a number >= 0"),
    (lambda p, g: Adam(p, g, betas=(1.0, 0.999)), ValueError, r"betas\[0\] must be a number in \[0, 1\)"),
    (lambda p, g: Adam(p, g, betas=(0.9,)), ValueError, r"betas must be two numbers"),
    (lambda p, g: Adam(p, g, eps=0), ValueError, "eps must be a number > 0"),
    (lambda p, g: Adam(p, g[:2]), ValueError, "params and grads must match"),
    (lambda p, g: Adam(p, g.astype(np.float32)), ValueError, "params and grads must match"),
    (lambda p, g: Adam(p.tolist(), g), TypeError, "float32/float64 NumPy array"),
    (lambda p, g: Adam(object()), TypeError, "module with flat_params/flat_grads"),
    (lambda p, g: Adam(p), TypeError, "module with flat_params/flat_grads"),
])
def test_optimizer_constructors_refuse_bad_arguments(call, exc, msg):
    p, g = _pair([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    with pytest.raises(exc, match=msg):
        call(p, g)


@pytest.mark.parametrize("cls,kw", [(SGD, dict(lr=0.1, momentum=0.9)),
                                    (Adam, dict(lr=0.01, weight_decay=0.01))])
def test_state_dict_round_trip_through_a_file(cls, kw, rng, tmp_path):
    """Resuming from a saved optimizer state gives exactly the same updates."""
    p1, g1 = rng.standard_normal(5), np.zeros(5)
    a = cls(p1, g1, **kw)
    for _ in range(3):
        g1[...] = rng.standard_normal(5)
        a.step()
    save_arrays(tmp_path / "opt.npz", a.state_dict(), kind="optimizer")
    arrays, _ = load_arrays(tmp_path / "opt.npz", kind="optimizer")
    p2, g2 = p1.copy(), np.zeros(5)
    b = cls(p2, g2, **{**kw, "lr": 123.0})
    b.load_state_dict(arrays)
    assert b.t == 3 and b.lr == a.lr
    for _ in range(3):
        g1[...] = g2[...] = rng.standard_normal(5)
        a.step()
        b.step()
    np.testing.assert_array_equal(p1, p2)


def test_load_state_dict_refuses_a_wrong_shape():
    p, g = _pair([1.0, 2.0, 3.0], [0.1, 0.2, 0.3])
    opt = Adam(p, g)
    state = {"t": np.asarray(4), "lr": np.asarray(1e-3), "m": np.ones(1), "v": np.ones(1)}
    with pytest.raises(ValueError, match="shape"):
        opt.load_state_dict(state)


def test_load_state_dict_refuses_a_missing_entry():
    p, g = _pair([1.0, 2.0, 3.0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="velocity"):
        SGD(p, g, momentum=0.9).load_state_dict({"t": np.asarray(1), "lr": np.asarray(0.1)})


# --------------------------------------------------------------------------- against torch
def test_sgd_and_adam_match_torch_optim(rng):
    torch = pytest.importorskip("torch")
    configs = [
        (lambda p, g: SGD(p, g, lr=0.05),
         lambda tp: torch.optim.SGD([tp], lr=0.05)),
        (lambda p, g: SGD(p, g, lr=0.05, momentum=0.9),
         lambda tp: torch.optim.SGD([tp], lr=0.05, momentum=0.9)),
        (lambda p, g: SGD(p, g, lr=0.05, momentum=0.9, nesterov=True),
         lambda tp: torch.optim.SGD([tp], lr=0.05, momentum=0.9, nesterov=True)),
        (lambda p, g: SGD(p, g, lr=0.05, weight_decay=0.1),  # no momentum: same as L2
         lambda tp: torch.optim.SGD([tp], lr=0.05, weight_decay=0.1)),
        (lambda p, g: Adam(p, g, lr=0.01, betas=(0.8, 0.95)),
         lambda tp: torch.optim.Adam([tp], lr=0.01, betas=(0.8, 0.95))),
        (lambda p, g: Adam(p, g, lr=0.01, weight_decay=0.1),
         lambda tp: torch.optim.AdamW([tp], lr=0.01, weight_decay=0.1)),
    ]
    for i, (ours, theirs) in enumerate(configs):
        p0 = rng.standard_normal(8)
        p, g = p0.copy(), np.zeros(8)
        opt = ours(p, g)
        tp = torch.tensor(p0, requires_grad=True)
        topt = theirs(tp)
        for _ in range(10):
            gt = rng.standard_normal(8)
            g[...] = gt
            opt.step()
            tp.grad = torch.tensor(gt)
            topt.step()
        assert np.abs(p - p0).max() > 1e-2
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-7, atol=1e-7,
                                   err_msg=f"config {i}")


def test_clip_grad_norm_matches_torch(rng):
    torch = pytest.importorskip("torch")
    for max_norm in (0.5, 100.0):
        g = rng.standard_normal(10) * 3
        t = torch.tensor(g.copy(), requires_grad=True)
        t.grad = torch.tensor(g.copy())
        tnorm = torch.nn.utils.clip_grad_norm_([t], max_norm)
        norm = clip_grad_norm(g, max_norm)
        assert norm == pytest.approx(float(tnorm), rel=1e-12)
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)


# --------------------------------------------------------------------------- end to end
def _recall_batch(rng, T, B, dtype):
    """Recall the first input: x[0, :, 0] is a random +-1 bit, channel 1 is noise."""
    bits = rng.choice([-1.0, 1.0], size=B)
    x = np.zeros((T, B, 2))
    x[0, :, 0] = bits
    x[:, :, 1] = rng.standard_normal((T, B))
    return x.astype(dtype), bits


def _train_recall(dtype, cut_memory: bool, steps=150, T=8, B=32, H=8):
    """LSTM + linear readout of h_T trained with Adam on mean squared error.

    Returns the loss at the start and on a fresh batch after training. With ``cut_memory``
    every row is reset at t=1, so the bit cannot reach the end: a control that cannot learn.
    """
    rng = np.random.default_rng(0)
    lstm = LSTM(2, H, dtype=dtype, seed=0)
    readout, dreadout = np.zeros(H + 1, dtype), np.zeros(H + 1, dtype)
    opt, opt_out = Adam(lstm, lr=0.02), Adam(readout, dreadout, lr=0.02)
    resets = np.zeros((T, B), bool)
    resets[1] = cut_memory

    def loss_and_grads(x, bits):
        y, _, cache = lstm.forward(x, None, resets)
        err = y[-1] @ readout[:H] + readout[H] - bits
        dpred = (2 * err / B).astype(dtype)
        dreadout[:H] = y[-1].T @ dpred
        dreadout[H] = dpred.sum()
        dy = np.zeros_like(y)
        dy[-1] = np.outer(dpred, readout[:H])
        lstm.zero_grad()
        lstm.backward(dy, cache)
        return float(np.mean(err ** 2))

    first = loss_and_grads(*_recall_batch(rng, T, B, dtype))
    for _ in range(steps):
        loss_and_grads(*_recall_batch(rng, T, B, dtype))
        clip_grad_norm(lstm.flat_grads, 1.0)
        opt.step()
        opt_out.step()
    return first, loss_and_grads(*_recall_batch(rng, T, B, dtype))


@pytest.mark.slow
def test_lstm_with_adam_learns_to_recall_the_first_input(dtype):
    # Measured: the held-out loss falls from 1.0 to 2.2e-5 in 150 steps (float32 and float64),
    # so the threshold leaves a 45x margin. The control with the memory cut ends at 1.01.
    first, last = _train_recall(dtype, cut_memory=False)
    assert first == pytest.approx(1.0, abs=0.05)
    assert last < 1e-3
    _, control = _train_recall(dtype, cut_memory=True)
    assert control > 0.5
