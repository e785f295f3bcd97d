"""Garbage in, clear error out: GRU, ConvLSTM and ctc_loss given random shapes, dtypes and
values either raise TypeError/ValueError or return well-formed results. Nothing may crash."""
from __future__ import annotations

import numpy as np
from hypothesis import event, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from rlstm import ConvLSTM, GRU, ctc_loss

BAD = (TypeError, ValueError)
DTYPES = st.sampled_from(["float32", "float64", "int64", "bool", "complex64", "U1", "object"])


@st.composite
def anything(draw, shape):
    """An array of ``shape`` or of a nearby shape, of any dtype, maybe with NaN; or a list."""
    kind = draw(st.sampled_from(["good", "shape", "dtype", "nan", "list", "none", "scalar",
                                 "strided"]))
    if kind == "none":
        return None
    if kind == "scalar":
        return draw(st.sampled_from([0, 1.5, "x", True]))
    if kind == "shape":
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=len(shape) + 1, min_side=0,
                                      max_side=3))
    dtype = draw(DTYPES) if kind == "dtype" else "float64"
    if dtype in ("U1", "object"):
        return np.full(shape, "a", dtype=dtype)
    a = np.asarray(draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3)))).astype(dtype)
    if kind == "nan" and a.size:
        a.reshape(-1)[0] = np.nan
    if kind == "list":
        return a.tolist()
    if kind == "strided" and a.ndim and a.shape[-1] > 0:
        return np.repeat(a, 2, axis=-1)[..., ::2]
    return a


@settings(max_examples=150)
@given(data=st.data(), D=st.integers(0, 3), H=st.integers(1, 3), L=st.integers(1, 2),
       bi=st.booleans(), T=st.integers(0, 3), B=st.integers(0, 3))
def test_gru_never_crashes(data, D, H, L, bi, T, B):
    gru = GRU(D, H, L, bidirectional=bi, dtype=np.float64, seed=0)
    nd = 2 if bi else 1
    x = data.draw(anything((T, B, D)))
    h0 = data.draw(anything((L * nd, B, H)))
    try:
        y, h, cache = gru.forward(x, h0)
    except BAD:
        return
    event("gru forward ran")
    assert y.shape[2] == H * nd and np.isfinite(y).all() and np.isfinite(h).all()
    dy = data.draw(anything(y.shape))
    try:
        dx, dh0 = gru.backward(dy, cache, data.draw(anything(h.shape)))
    except BAD:
        return
    event("gru backward ran")
    assert dx.shape == y.shape[:2] + (D,) and np.isfinite(dx).all()
    if not bi:
        try:
            y_t, h_t = gru.step(data.draw(anything((B, D))), data.draw(anything((L, B, H))))
        except BAD:
            return
        event("gru step ran")
        assert y_t.shape[1] == H and np.isfinite(h_t).all()


@settings(max_examples=100)
@given(data=st.data(), C=st.integers(0, 2), F=st.integers(1, 2), per_pos=st.booleans(),
       T=st.integers(0, 2), B=st.integers(0, 2))
def test_convlstm_never_crashes(data, C, F, per_pos, T, B):
    m = ConvLSTM(C, F, 3, spatial_shape=(2, 3) if per_pos else None, dtype=np.float64, seed=0)
    x = data.draw(anything((T, B, C, 2, 3)))
    st0 = data.draw(st.one_of(st.none(), st.tuples(anything((1, B, F, 2, 3)),
                                                    anything((1, B, F, 2, 3)))))
    try:
        y, (h, c), cache = m.forward(x, st0)
    except BAD:
        return
    event("convlstm forward ran")
    assert y.shape[2] == F and np.isfinite(y).all()
    try:
        dx, _ = m.backward(data.draw(anything(y.shape)), cache)
    except BAD:
        return
    event("convlstm backward ran")
    assert np.isfinite(dx).all()
    try:
        y_t, _ = m.step(data.draw(anything((B, C, 2, 3))), (h, c))
    except BAD:
        return
    event("convlstm step ran")
    assert np.isfinite(y_t).all()


@settings(max_examples=150)
@given(data=st.data(), T=st.integers(0, 4), B=st.integers(0, 3), C=st.integers(0, 4))
def test_ctc_never_crashes_or_gives_nan(data, T, B, C):
    logits = data.draw(anything((T, B, C)))
    S = data.draw(st.integers(0, 3))
    targets = data.draw(st.one_of(
        hnp.arrays(np.int64, st.sampled_from([(B, S), (S,), (B, S, 1), ()]),
                   elements=st.integers(-1, C + 1)),
        anything((B, S))))
    il = data.draw(st.one_of(hnp.arrays(np.int64, B, elements=st.integers(-1, T + 1)),
                             anything((B,))))
    tl = data.draw(st.one_of(hnp.arrays(np.int64, B, elements=st.integers(-1, S + 1)),
                             anything((B,))))
    blank = data.draw(st.one_of(st.integers(-1, C), st.just(0.0)))
    try:
        losses, d = ctc_loss(logits, targets, il, tl, blank=blank)
    except BAD:
        return
    event("ctc ran")
    assert losses.shape == (B,) and not np.isnan(losses).any() and (losses >= -1e-6).all()
    assert d.shape == (T, B, C) and np.isfinite(d).all()
