"""rlstm.ConvLSTM against the NumPy reference (and the reference's convolution against torch),
central differences with resets, step(), __call__, stacking and errors."""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import ConvLSTM
from rlstm.reference import convlstm as ref
from rlstm.reference.gradcheck import central_difference

# (T, B, C, F, kernel, (height, width), layers, peephole, per-position peepholes, p_reset)
CASES = [
    (1, 1, 1, 1, 1, (1, 1), 1, False, False, 0.0),
    (4, 2, 2, 3, 3, (4, 5), 1, True, True, 0.3),
    (3, 3, 3, 2, (3, 1), (5, 3), 2, True, False, 0.3),
    (5, 2, 1, 4, 5, (3, 4), 2, True, True, 0.2),
    (3, 2, 2, 3, 3, (4, 4), 1, False, False, 1.0),
]
IDS = ["T{}B{}C{}F{}k{}-{}x{}-L{}".format(*c[:5], *c[5], c[6])
       + ("-peep" + ("pos" if c[8] else "shared") if c[7] else "") + f"-r{c[9]}" for c in CASES]


def _setup(case, dtype, rng, scale=0.5):
    T, B, C, F, k, hw, L, peep, per_pos, p_reset = case
    m = ConvLSTM(C, F, k, peephole=peep, spatial_shape=hw if per_pos else None, num_layers=L,
                 dtype=dtype, seed=0)
    m.flat_params[...] = rng.uniform(-scale, scale, m.num_params)
    x = rng.standard_normal((T, B, C) + hw).astype(dtype)
    st = tuple(rng.standard_normal((L, B, F) + hw).astype(dtype) for _ in range(2))
    rs = (rng.random((T, B)) < p_reset) if p_reset else None
    if rs is not None and T > 2:
        rs[T // 2, 0] = True
    return m, x, st, rs


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_backward_match_reference(case, dtype, tol, rng, simd):
    m, x, st, rs = _setup(case, dtype, rng)
    y, (h, c), cache = m.forward(x, st, rs)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ds = tuple(rng.standard_normal(h.shape).astype(dtype) for _ in range(2))
    m.zero_grad()
    dx, (dh0, dc0) = m.backward(dy, cache, ds)
    up = (lambda a: a.astype(np.float64))
    ry, (rh, rc), rcache = ref.forward({k: up(v) for k, v in m.params.items()}, up(x),
                                       tuple(map(up, st)), rs)
    rdx, (rdh0, rdc0), rgrads = ref.backward(up(dy), rcache, tuple(map(up, ds)))
    got = dict(y=y, h=h, c=c, dx=dx, dh0=dh0, dc0=dc0, **{"d" + k: g for k, g in m.grads.items()})
    want = dict(y=ry, h=rh, c=rc, dx=rdx, dh0=rdh0, dc0=rdc0,
                **{"d" + k: g for k, g in rgrads.items()})
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == dtype and got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], **tol(dtype), err_msg=name)
        if not (case[-1] == 1.0 and name in ("dh0", "dc0", "dweight_hh_l0")):  # all reset: 0
            assert np.abs(want[name]).max() > 1e-3, name


def test_reference_convolution_is_torchs(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((6, 3, 3, 5))
    want = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=(1, 2))
    np.testing.assert_allclose(ref.conv2d_same(x, w), want.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [CASES[1], CASES[2]], ids=[IDS[1], IDS[2]])
def test_gradients_by_central_differences(case, rng):
    m, x, (h0, c0), rs = _setup(case, np.float64, rng, scale=1.0)
    y, (h, c), cache = m.forward(x, (h0, c0), rs)
    wy, wh, wc = (rng.standard_normal(a.shape) for a in (y, h, c))

    def loss():
        y, (h, c) = m(x, (h0, c0), rs)
        return float((wy * y).sum() + (wh * h).sum() + (wc * c).sum())

    m.zero_grad()
    dx, (dh0, dc0) = m.backward(wy, cache, (wh, wc))
    sub = np.random.default_rng(0)
    for name, analytic, arr in [("x", dx, x), ("h0", dh0, h0), ("c0", dc0, c0),
                                ("params", m.flat_grads.copy(), m.flat_params)]:
        idx = sub.choice(arr.size, min(arr.size, 60), replace=False)
        if name == "params":  # every peephole entry, plus a sample of the rest
            idx = np.union1d(idx, [i for i, n in enumerate(_param_names(m)) if "peep" in n])
        numeric = central_difference(loss, arr, indices=idx)
        assert np.abs(numeric).max() > 1e-3, name
        np.testing.assert_allclose(analytic.reshape(-1)[idx], numeric, rtol=1e-6, atol=1e-8,
                                   err_msg=name)


def _param_names(m):
    return [name for name, p in m.params.items() for _ in range(p.size)]


def test_step_call_and_shared_peephole_shape(dtype, tol, rng):
    m = ConvLSTM(2, 3, 3, num_layers=2, dtype=dtype, seed=1)
    assert m.params["peephole_o_l1"].shape == (3, 1, 1)
    assert m.params["weight_ih_l1"].shape == (12, 3, 3, 3)
    m.flat_params[...] = rng.uniform(-0.5, 0.5, m.num_params)
    x = rng.standard_normal((4, 2, 2, 5, 6)).astype(dtype)
    y, (h, c), _ = m.forward(x)
    y2, (h2, c2) = m(x)
    np.testing.assert_array_equal(y, y2)
    s = None
    for t in range(4):
        y_t, s = m.step(x[t], s)
        np.testing.assert_allclose(y_t, y[t], **tol(dtype))
    np.testing.assert_allclose(s[1], c, **tol(dtype))
    # any image size works with shared peepholes; padding keeps it
    assert m(x[:, :, :, :3, :2])[0].shape == (4, 2, 3, 3, 2)


def test_reset_splits_the_sequence(dtype, tol, rng):
    m = ConvLSTM(1, 2, 3, spatial_shape=(3, 3), dtype=dtype, seed=2)
    m.flat_params[...] = rng.uniform(-0.5, 0.5, m.num_params)
    x = rng.standard_normal((6, 2, 1, 3, 3)).astype(dtype)
    rs = np.zeros((6, 2), bool)
    rs[2] = True
    y, _ = m(x, None, rs)
    np.testing.assert_allclose(y, np.concatenate([m(x[:2])[0], m(x[2:])[0]]), **tol(dtype))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: ConvLSTM(2, 3, 2), ValueError, "odd"),
    (lambda: ConvLSTM(2, 3, (3, 3, 3)), TypeError, "kernel_size"),
    (lambda: ConvLSTM(2, 0, 3), ValueError, "hidden_channels"),
    (lambda: ConvLSTM(2, 3, 3, peephole=1), TypeError, "peephole"),
    (lambda: ConvLSTM(2, 3, 3, spatial_shape=(0, 3)), ValueError, "spatial_shape"),
    (lambda: ConvLSTM(2, 3, 3, dtype=np.int64), ValueError, "dtype"),
    (lambda: ConvLSTM(2, 3, 3)(np.zeros((2, 1, 3, 4, 4))), ValueError, "in_channels=2"),
    (lambda: ConvLSTM(2, 3, 3)(np.zeros((2, 1, 2, 4))), ValueError, "5 dimensions"),
    (lambda: ConvLSTM(2, 3, 3, spatial_shape=(4, 4))(np.zeros((2, 1, 2, 4, 5))), ValueError,
     "spatial_shape"),
    (lambda: ConvLSTM(2, 3, 3)(np.zeros((2, 1, 2, 4, 4)), np.zeros((1, 1, 3, 4, 4))),
     TypeError, r"\(h, c\)"),
    (lambda: ConvLSTM(2, 3, 3)(np.zeros((2, 1, 2, 4, 4)), (np.zeros((1, 1, 3, 4, 4)),) * 2,
                               np.ones((3, 1), bool)), ValueError, "resets"),
    (lambda: ConvLSTM(2, 3, 3).backward(np.zeros((2, 1, 3, 4, 4)), None), ValueError, "cache"),
    (lambda: ConvLSTM(2, 3, 3).initial_state(2), ValueError, "spatial_shape"),
])
def test_bad_input_gets_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_cache_does_not_see_later_changes_to_the_state(rng):
    m = ConvLSTM(2, 1, 3, dtype=np.float64, seed=0)   # F = 1: channel-last is a plain view
    m.flat_params[...] = rng.uniform(-0.5, 0.5, m.num_params)
    x = rng.standard_normal((3, 2, 2, 4, 4))
    st = tuple(rng.standard_normal((1, 2, 1, 4, 4)) for _ in range(2))
    dy = rng.standard_normal((3, 2, 1, 4, 4))
    _, _, cache = m.forward(x, st)
    want = m.backward(dy, cache)[0]
    _, _, cache = m.forward(x, st)
    st[1][...] += 1.0
    np.testing.assert_array_equal(m.backward(dy, cache)[0], want)


def test_save_and_load(tmp_path, rng):
    import rlstm
    for hw in [(4, 5), None]:
        m = ConvLSTM(2, 3, (3, 1), spatial_shape=hw, num_layers=2, dtype=np.float64, seed=0)
        m.flat_params[...] = rng.uniform(-1, 1, m.num_params)
        rlstm.save(m, tmp_path / "c.npz")
        m2 = rlstm.load(tmp_path / "c.npz")
        assert isinstance(m2, ConvLSTM) and m2.spatial_shape == m.spatial_shape
        np.testing.assert_array_equal(m2.flat_params, m.flat_params)
        x = rng.standard_normal((2, 1, 2, 4, 5))
        np.testing.assert_array_equal(m2(x)[0], m(x)[0])
