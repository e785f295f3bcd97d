"""Hypothesis fuzzing of rlstm.LSTM's public API.

Every call either raises ValueError/TypeError, exactly when the input is invalid by the API's
rules, or returns the reference's answer. Nothing may crash the interpreter. Shapes include
empty dimensions; values include NaN and inf; dtypes include ones that must be refused.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rlstm import LSTM
from rlstm.lstm import CELL_ACTIVATIONS, VARIANTS
from rlstm.reference import lstm as ref
from rlstm.reference import peephole_cell as ref_pc

BAD = (ValueError, TypeError)
REAL = ["float32", "float64", "float16", "int8", "int64", "uint8"]   # converted by the layer
NOT_REAL = ["bool", "complex64", "object", "str"]                      # refused
POISON = [np.nan, np.inf, -np.inf]
# Each input is broken with probability 1/4, so about half the calls are valid.
broken = st.sampled_from([False, False, False, True])


# --------------------------------------------------------------------------- strategies
def sizes(empty=False):
    """A small dimension; with ``empty``, 0 one time in five."""
    return st.sampled_from([2, 1, 3, 4] + ([0] if empty else []))


@st.composite
def arrays(draw, shape, broken=False, prefer="float64"):
    """An array meant to have ``shape`` and real, finite values, in any real dtype and layout
    (sometimes a nested list); half the time C-contiguous in dtype ``prefer`` (the layer's
    own dtype: its fast path). If ``broken``: a wrong shape, a dtype that is not real, or a NaN/inf.
    The tests decide validity from the value drawn, not from this flag."""
    how = draw(st.sampled_from(["poison", "poison", "dtype", "shape"])) if broken else None
    if how == "poison" and 0 in shape:
        how = "dtype"  # nowhere to put a NaN
    if how == "shape":
        shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))
    fast = how != "dtype" and draw(st.booleans())
    name = prefer if fast else draw(st.sampled_from(NOT_REAL if how == "dtype" else REAL))
    if name in ("float16", "float32", "float64", "complex64", "object", "str"):
        a = draw(hnp.arrays(np.float64, shape, elements=st.floats(-8, 8, width=16)))
        a = a.astype(name)
    else:
        lo = 0 if name in ("uint8", "bool") else -3
        a = draw(hnp.arrays(name, shape, elements=st.integers(lo, 1 if name == "bool" else 3)))
    if how == "poison":
        a = a.astype(np.float64 if a.dtype.kind in "iu" else a.dtype)
        a.reshape(-1)[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(POISON))
    layout = "c" if fast else draw(st.sampled_from(["c", "fortran", "strided", "list"]))
    if layout == "fortran":
        a = np.asfortranarray(a)
    elif layout == "strided" and a.ndim:
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    elif layout == "list" and a.ndim:
        return a.tolist()
    return a


@st.composite
def states(draw, shape, broken=False, prefer="float64"):
    """None or ``(h, c)`` (tuple or list) of valid arrays; if ``broken``: one bad array, or
    not a pair at all."""
    if not broken:
        kind = draw(st.sampled_from(["none", "tuple", "tuple", "list"]))
        if kind == "none":
            return None
        parts = [draw(arrays(shape, prefer=prefer)), draw(arrays(shape, prefer=prefer))]
        return parts if kind == "list" else tuple(parts)
    kind = draw(st.sampled_from(["bad h", "bad c", "single", "triple", "str"]))
    if kind == "single":
        return draw(arrays(shape, prefer=prefer))
    if kind == "triple":
        return tuple(draw(arrays(shape, prefer=prefer)) for _ in range(3))
    if kind == "str":
        return "hc"
    h = draw(arrays(shape, kind == "bad h", prefer))
    c = draw(arrays(shape, kind == "bad c", prefer))
    return h, c


@st.composite
def resets_masks(draw, T, B, broken=False):
    if not broken:
        kind = draw(st.sampled_from(["none", "bool", "bool", "int"]))
        if kind == "none":
            return None
        if kind == "int":
            return draw(hnp.arrays(np.int64, (T, B), elements=st.integers(0, 1)))
        return draw(hnp.arrays(np.bool_, (T, B)))
    kind = draw(st.sampled_from(["shape", "float", "two", "str"]))
    if kind == "shape":
        return draw(hnp.arrays(np.bool_, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                          max_side=4)))
    if kind == "two":
        return draw(hnp.arrays(np.int64, (T, B), elements=st.integers(0, 2)))
    return np.zeros((T, B), dtype=np.float64 if kind == "float" else "U1")


@st.composite
def layers(draw, bidirectional=st.booleans()):
    return LSTM(draw(sizes(empty=True)), draw(sizes()), draw(st.sampled_from([2, 1])),
                bidirectional=draw(bidirectional), variant=draw(st.sampled_from(VARIANTS)),
                cell_activation=draw(st.sampled_from(CELL_ACTIVATIONS)),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                seed=draw(st.integers(0, 2**32 - 1)))


# --------------------------------------------------------------------------- the API's rules
def _reference(lstm):
    """The reference module for the layer's variant (peephole_cell has its own)."""
    return ref_pc if lstm.variant == "peephole_cell" else ref


def _real(a):
    """What as_float_array accepts: real numbers (float/int), all finite."""
    try:
        a = np.asarray(a)
    except Exception:
        return None
    if a.dtype.kind not in "fiu" or not np.isfinite(a).all():
        return None
    return a


def _valid_array(a, shape):
    a = _real(a)
    return a is not None and a.shape == tuple(shape)


def _valid_state(state, shape):
    if state is None:
        return True
    return (isinstance(state, (tuple, list)) and len(state) == 2
            and all(_valid_array(s, shape) for s in state))


def _valid_resets(resets, T, B):
    if resets is None:
        return True
    a = np.asarray(resets)
    return (a.dtype.kind in "biu" and a.shape == (T, B)
            and (a.dtype.kind == "b" or bool(np.isin(a, (0, 1)).all())))


def _x_shape(x):
    a = _real(x)
    return None if a is None or a.ndim != 3 else a.shape


def _as64(a, dt):
    return None if a is None else np.asarray(a).astype(dt).astype(np.float64)


# --------------------------------------------------------------------------- the tests
def _arg(draw, good, bad):
    """A good value, or a bad one with probability 1/10 (7 arguments: ~half are valid)."""
    return draw(bad if draw(st.integers(0, 9)) == 0 else good)


@given(data=st.data())
def test_constructor_fuzz(data):
    draw = data.draw
    input_size = _arg(draw, st.integers(0, 4), st.sampled_from([-1, 2.0, True, None, "3"]))
    hidden_size = _arg(draw, st.integers(1, 4), st.sampled_from([0, -2, 1.0, False, "2"]))
    num_layers = _arg(draw, st.integers(1, 3), st.sampled_from([0, 2.5, None, np.float64(1)]))
    bidirectional = _arg(draw, st.booleans(), st.sampled_from([0, 1, "yes", None]))
    variant = _arg(draw, st.sampled_from(VARIANTS), st.sampled_from(["nope", "PEEPHOLE", "",
                                                                     None, 1]))
    cell_activation = _arg(draw, st.sampled_from(CELL_ACTIVATIONS),
                           st.sampled_from(["relu", "Tanh", None, 0]))
    dtype = _arg(draw, st.sampled_from([np.float32, np.float64, "float32", "f8"]),
                 st.sampled_from([np.float16, np.int32, np.complex128, object, "nope", None, 3]))

    def is_int(v, lo):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= lo
    valid = (is_int(input_size, 0) and is_int(hidden_size, 1) and is_int(num_layers, 1)
             and isinstance(bidirectional, bool) and variant in VARIANTS
             and cell_activation in CELL_ACTIVATIONS
             and dtype in (np.float32, np.float64, "float32", "f8"))
    try:
        lstm = LSTM(input_size, hidden_size, num_layers, bidirectional=bidirectional,
                    variant=variant, cell_activation=cell_activation, dtype=dtype, seed=0)
    except BAD:
        event("constructor refused")
        assert not valid
        return
    event("constructed")
    assert valid
    assert lstm.dtype == np.dtype(dtype)
    nd = 2 if bidirectional else 1
    per_dir = [4 * hidden_size * (input_size if k == 0 else nd * hidden_size)
               + (3 if variant == "peephole_cell" else 4) * hidden_size * hidden_size
               + 8 * hidden_size
               + (3 * hidden_size if variant == "peephole" else 0) for k in range(num_layers)]
    assert lstm.num_params == nd * sum(per_dir)
    assert np.isfinite(lstm.flat_params).all() and not lstm.flat_grads.any()


@settings(max_examples=100)
@given(data=st.data(), lstm=layers())
def test_forward_backward_fuzz(data, lstm, tol):
    L, H, D = lstm.num_layers * lstm.num_directions, lstm.hidden_size, lstm.input_size
    T, B = data.draw(sizes(empty=True)), data.draw(sizes(empty=True))
    x = data.draw(arrays((T, B, D), data.draw(broken), lstm.dtype.name))
    shape = _x_shape(x)
    if shape is not None:  # the state and resets follow x's (T, B)
        T, B = shape[:2]
    state = data.draw(states((L, B, H), data.draw(broken), lstm.dtype.name))
    resets = data.draw(resets_masks(T, B, data.draw(broken)))
    valid = (shape is not None and shape[2] == D and _valid_state(state, (L, B, H))
             and _valid_resets(resets, T, B))
    try:
        y, (h, c), cache = lstm.forward(x, state, resets)
    except BAD:
        event("forward refused")
        assert not valid
        return
    event("forward ran" + (" (T=0)" if T == 0 else "") + (" (B=0)" if B == 0 else ""))
    assert valid

    dt = lstm.dtype
    x64 = _as64(x, dt)
    s64 = None if state is None else tuple(_as64(s, dt) for s in state)
    r = None if resets is None else np.asarray(resets).astype(bool)
    p64 = {k: v.astype(np.float64) for k, v in lstm.params.items()}
    ry, (rh, rc), rcache = _reference(lstm).forward(p64, x64, s64, r, lstm.cell_activation)
    assert y.shape == (T, B, H * lstm.num_directions) and y.dtype == dt
    np.testing.assert_allclose(y, ry, **tol(dt))
    np.testing.assert_allclose(h, rh, **tol(dt))
    np.testing.assert_allclose(c, rc, **tol(dt))

    dy = data.draw(arrays(y.shape, data.draw(broken), dt.name))
    dstate = data.draw(states((L, B, H), data.draw(broken), dt.name))
    valid = _valid_array(dy, y.shape) and _valid_state(dstate, (L, B, H))
    lstm.zero_grad()
    try:
        dx, (dh0, dc0) = lstm.backward(dy, cache, dstate)
    except BAD:
        event("backward refused")
        assert not valid
        assert not lstm.flat_grads.any()  # a refused call changes nothing
        return
    event("backward ran")
    assert valid
    ds64 = None if dstate is None else tuple(_as64(s, dt) for s in dstate)
    rdx, (rdh0, rdc0), rgrads = _reference(lstm).backward(_as64(dy, dt), rcache, ds64)
    np.testing.assert_allclose(dx, rdx, **tol(dt))
    np.testing.assert_allclose(dh0, rdh0, **tol(dt))
    np.testing.assert_allclose(dc0, rdc0, **tol(dt))
    for name, g in rgrads.items():
        np.testing.assert_allclose(lstm.grads[name], g, **tol(dt), err_msg=name)


@settings(max_examples=100)
@given(data=st.data(), lstm=layers(bidirectional=broken))
def test_step_fuzz(data, lstm, tol):
    L, H, D = lstm.num_layers * lstm.num_directions, lstm.hidden_size, lstm.input_size
    B = data.draw(sizes(empty=True))
    x = data.draw(arrays((B, D), data.draw(broken), lstm.dtype.name))
    a = _real(x)
    if a is not None and a.ndim == 2:
        B = a.shape[0]
    state = data.draw(states((L, B, H), data.draw(broken), lstm.dtype.name))
    valid = (not lstm.bidirectional and _valid_array(x, (B, D))
             and _valid_state(state, (L, B, H)))
    try:
        h_t, (h, c) = lstm.step(x, state)
    except BAD:
        event("step refused")
        assert not valid
        return
    event("step ran")
    assert valid
    dt = lstm.dtype
    p64 = {k: v.astype(np.float64) for k, v in lstm.params.items()}
    s64 = None if state is None else tuple(_as64(s, dt) for s in state)
    ry, (rh, rc), _ = _reference(lstm).forward(p64, _as64(x, dt)[None], s64, None,
                                               lstm.cell_activation)
    np.testing.assert_allclose(h_t, ry[0], **tol(dt))
    np.testing.assert_allclose(h, rh, **tol(dt))
    np.testing.assert_allclose(c, rc, **tol(dt))


@given(data=st.data(), lstm=layers(), other=layers())
def test_backward_cache_fuzz(data, lstm, other):
    """Only this layer's own cache is accepted, whatever else is passed."""
    x = np.ones((2, 1, other.input_size))
    _, _, foreign = other.forward(x)
    bad = data.draw(st.sampled_from([foreign, None, 0, "cache", (1, 2), {"T": 2}, [foreign]]))
    dy = np.ones((2, 1, other.hidden_size * other.num_directions))
    with pytest.raises(ValueError, match="cache must be the cache returned by this layer"):
        lstm.backward(dy, bad)
    assert not lstm.flat_grads.any()
