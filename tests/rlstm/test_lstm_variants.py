"""LSTM(variant="peephole_cell") against its NumPy reference, central differences, step().

The "peephole" variant and cell_activation="identity" are covered by tests/test_lstm.py.
"""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import LSTM
from rlstm.reference import peephole_cell as ref
from rlstm.reference.gradcheck import central_difference

# (T, B, D, H, num_layers, bidirectional, cell_activation, reset probability)
CASES = [
    (1, 1, 1, 1, 1, False, "tanh", 0.0),
    (7, 3, 3, 5, 1, False, "tanh", 0.0),
    (6, 3, 4, 5, 2, False, "identity", 0.3),
    (5, 2, 3, 4, 3, True, "tanh", 0.3),
    (5, 2, 3, 4, 1, True, "identity", 1.0),
    (3, 2, 0, 4, 2, True, "tanh", 0.3),
    (20, 8, 16, 32, 2, True, "tanh", 0.1),
]
IDS = ["T{}B{}D{}H{}L{}{}-{}-r{}".format(*c[:5], "bi" if c[5] else "", *c[6:]) for c in CASES]


def _make(case, dtype, rng, scale=None):
    T, B, D, H, L, bi, act, p_reset = case
    lstm = LSTM(D, H, L, bidirectional=bi, variant="peephole_cell", cell_activation=act,
                dtype=dtype, seed=0)
    if scale:
        lstm.flat_params[...] = rng.uniform(-scale, scale, lstm.num_params)
    shape = (L * lstm.num_directions, B, H)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    st = (rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype))
    rs = (rng.random((T, B)) < p_reset) if p_reset else None
    if rs is not None and T > 2:
        rs[T // 2, 0] = True
    return lstm, x, st, rs


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_backward_match_reference(case, dtype, tol, rng):
    lstm, x, st, rs = _make(case, dtype, rng)
    y, (h, c), cache = lstm.forward(x, st, rs)
    dy = rng.standard_normal(y.shape).astype(dtype)
    ds = tuple(rng.standard_normal(h.shape).astype(dtype) for _ in range(2))
    lstm.zero_grad()
    dx, (dh0, dc0) = lstm.backward(dy, cache, ds)
    up = (lambda a: a.astype(np.float64))
    ry, (rh, rc), rcache = ref.forward({k: up(v) for k, v in lstm.params.items()}, up(x),
                                       tuple(map(up, st)), rs, case[6])
    rdx, (rdh0, rdc0), rgrads = ref.backward(up(dy), rcache, tuple(map(up, ds)))
    got = dict(y=y, h=h, c=c, dx=dx, dh0=dh0, dc0=dc0,
               **{"d" + k: g for k, g in lstm.grads.items()})
    want = dict(y=ry, h=rh, c=rc, dx=rdx, dh0=rdh0, dc0=rdc0,
                **{"d" + k: g for k, g in rgrads.items()})
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == dtype and got[name].shape == want[name].shape, name
        np.testing.assert_allclose(got[name], want[name], **tol(dtype), err_msg=name)
    np.testing.assert_array_equal(dh0, 0)  # h_0 feeds nothing in this variant


def test_parameters_are_named_and_shaped():
    lstm = LSTM(3, 4, 2, bidirectional=True, variant="peephole_cell")
    assert lstm.params["weight_ch_l1_reverse"].shape == (12, 4)
    assert lstm.params["weight_ih_l1"].shape == (16, 8)
    assert not any(k.startswith("weight_hh") for k in lstm.params)
    assert lstm.num_params == 2 * (16 * 3 + 12 * 4 + 32) + 2 * (16 * 8 + 12 * 4 + 32)


@pytest.mark.parametrize("case", [CASES[2], CASES[3]], ids=[IDS[2], IDS[3]])
def test_gradients_by_central_differences(case, rng):
    lstm, x, (h0, c0), rs = _make(case, np.float64, rng, scale=1.0)
    wy = rng.standard_normal((x.shape[0], x.shape[1], lstm.hidden_size * lstm.num_directions))
    wh, wc = rng.standard_normal(h0.shape), rng.standard_normal(c0.shape)

    def loss():
        y, (h, c) = lstm(x, (h0, c0), rs)
        return float((wy * y).sum() + (wh * h).sum() + (wc * c).sum())

    _, _, cache = lstm.forward(x, (h0, c0), rs)
    lstm.zero_grad()
    dx, (dh0, dc0) = lstm.backward(wy, cache, (wh, wc))
    for name, analytic, arr in [("x", dx, x), ("h0", dh0, h0), ("c0", dc0, c0),
                                ("params", lstm.flat_grads.copy(), lstm.flat_params)]:
        numeric = central_difference(loss, arr)
        if name != "h0":
            assert np.abs(analytic).max() > 1e-3, name
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("act", ["tanh", "identity"])
@pytest.mark.parametrize("B", [1, 4])
def test_step_equals_forward(act, B, dtype, tol, rng):
    lstm, x, st, _ = _make((6, B, 4, 5, 3, False, act, 0.0), dtype, rng)
    y, (hn, cn) = lstm(x, st)
    s = st
    for t in range(6):
        y_t, s = lstm.step(x[t], s)
        np.testing.assert_allclose(y_t, y[t], **tol(dtype), err_msg=f"t={t}")
    np.testing.assert_allclose(s[0], hn, **tol(dtype))
    np.testing.assert_allclose(s[1], cn, **tol(dtype))


def test_variant_error_lists_the_choices():
    with pytest.raises(ValueError, match="peephole_cell"):
        LSTM(2, 3, variant="peephole-cell")
    lstm = LSTM(2, 3, variant="peephole_cell")
    with pytest.raises(ValueError, match="weight_hh_l0"):
        lstm.load_state_dict({k.replace("weight_ch", "weight_hh"): v
                              for k, v in lstm.state_dict().items()})
