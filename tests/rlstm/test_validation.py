"""Bad input: the validation helpers and every public entry point of rlstm.LSTM.

Everything wrong must be a ValueError or TypeError whose message says what was expected;
input that is merely inconvenient (another real dtype, non-contiguous, read-only) is converted
and gives the right answer.
"""
from __future__ import annotations

import numpy as np
import pytest

from rlstm import LSTM
from rlstm.validation import (as_float_array, as_resets, check_choice, check_dtype, check_int,
                               check_shape)


# --------------------------------------------------------------------------- the helpers
@pytest.mark.parametrize("dt", [np.float32, np.float64, "float32", "f8", np.dtype("float64")])
def test_check_dtype_accepts_float32_and_float64(dt):
    assert check_dtype(dt) in (np.dtype(np.float32), np.dtype(np.float64))
    assert check_dtype(dt) == np.dtype(dt)


@pytest.mark.parametrize("dt,exc", [(np.int32, ValueError), (np.float16, ValueError),
                                    (np.complex128, ValueError), (object, ValueError),
                                    ("nope", TypeError), (3.5, TypeError), ([1], TypeError)])
def test_check_dtype_refuses_everything_else(dt, exc):
    with pytest.raises(exc, match="float32 or np.float64"):
        check_dtype(dt)


def test_check_int():
    assert check_int("n", 3) == 3 and type(check_int("n", np.int64(3))) is int
    assert check_int("n", 0, minimum=0) == 0
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_int("n", 0)
    for bad in (True, 2.0, "2", None, np.float64(2)):
        with pytest.raises(TypeError, match="n must be an int"):
            check_int("n", bad)


def test_check_choice():
    assert check_choice("v", "a", ("a", "b")) == "a"
    for bad in ("c", None, 1, ["a"]):
        with pytest.raises(ValueError, match=r"v must be one of \('a', 'b'\)"):
            check_choice("v", bad, ("a", "b"))


def test_check_shape():
    check_shape(np.zeros((2, 3)), (2, 3), "a")
    with pytest.raises(ValueError, match=r"a must have shape \(3, 2\), got \(2, 3\)"):
        check_shape(np.zeros((2, 3)), (3, 2), "a")


def test_as_float_array_converts_real_input():
    f64 = np.dtype(np.float64)
    a = np.arange(6.0).reshape(2, 3)
    assert as_float_array(a, f64, "x") is a  # already right: no copy
    for x in (a.astype(np.int32), a.astype(np.float32), a.astype(np.uint8), a.tolist(),
              np.asfortranarray(a), a.T.copy().T):
        out = as_float_array(x, f64, "x", ndim=2)
        assert out.dtype == f64 and out.flags.c_contiguous
        np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("x,exc,msg", [
    (np.ones(3, dtype=complex), TypeError, "real numbers"),
    (np.ones(3, dtype=bool), TypeError, "real numbers"),
    (np.array(["a", "b"]), TypeError, "real numbers"),
    (np.array([1.0, None], dtype=object), TypeError, "real numbers"),
    ([[1.0, 2.0], [3.0]], TypeError, "x must be an array of real numbers"),
    ("abc", TypeError, "real numbers"),
    (np.array([1.0, np.nan]), ValueError, "NaN or inf"),
    (np.array([1.0, -np.inf]), ValueError, "NaN or inf"),
])
def test_as_float_array_refuses(x, exc, msg):
    with pytest.raises(exc, match=msg):
        as_float_array(x, np.dtype(np.float32), "x")


def test_as_float_array_checks_ndim():
    with pytest.raises(ValueError, match=r"x must have 3 dimensions, got shape \(2, 2\)"):
        as_float_array(np.ones((2, 2)), np.dtype(np.float32), "x", ndim=3)


def test_as_float_array_finite_false_lets_nan_through():
    out = as_float_array([np.nan, 1.0], np.dtype(np.float64), "x", finite=False)
    assert np.isnan(out[0]) and out[1] == 1


def test_as_resets():
    assert as_resets(None, 2, 3) is None
    out = as_resets([[True, False, True], [False, False, True]], 2, 3)
    assert out.dtype == np.uint8 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, [[1, 0, 1], [0, 0, 1]])
    np.testing.assert_array_equal(as_resets(np.eye(2, dtype=np.int64)[:, ::-1], 2, 2),
                                  [[0, 1], [1, 0]])
    with pytest.raises(TypeError, match=r"boolean array of shape \(T, B\) = \(2, 3\)"):
        as_resets(np.zeros((2, 3)), 2, 3)
    with pytest.raises(ValueError, match=r"shape \(T, B\) = \(2, 3\), got \(3, 2\)"):
        as_resets(np.zeros((3, 2), bool), 2, 3)
    with pytest.raises(ValueError, match="only 0/1"):
        as_resets(np.full((2, 3), 2), 2, 3)
    with pytest.raises(ValueError, match="only 0/1"):
        as_resets(np.full((2, 3), -1), 2, 3)


# --------------------------------------------------------------------------- the constructor
@pytest.mark.parametrize("kwargs,exc,msg", [
    (dict(input_size=-1), ValueError, "input_size must be >= 0"),
    (dict(input_size=2.0), TypeError, "input_size must be an int"),
    (dict(input_size="3"), TypeError, "input_size must be an int"),
    (dict(hidden_size=0), ValueError, "hidden_size must be >= 1"),
    (dict(hidden_size=True), TypeError, "hidden_size must be an int"),
    (dict(hidden_size=None), TypeError, "hidden_size must be an int"),
    (dict(num_layers=0), ValueError, "num_layers must be >= 1"),
    (dict(num_layers=1.5), TypeError, "num_layers must be an int"),
    (dict(bidirectional="yes"), TypeError, "bidirectional must be a bool"),
    (dict(bidirectional=1), TypeError, "bidirectional must be a bool"),
    (dict(variant="nope"), ValueError, "variant must be one of"),
    (dict(variant=None), ValueError, "variant must be one of"),
    (dict(cell_activation="relu"), ValueError, "cell_activation must be one of"),
    (dict(dtype=np.int32), ValueError, "dtype must be np.float32 or np.float64"),
    (dict(dtype=np.float16), ValueError, "dtype must be np.float32 or np.float64"),
    (dict(dtype=np.complex64), ValueError, "dtype must be np.float32 or np.float64"),
    (dict(dtype="nope"), TypeError, "dtype must be np.float32 or np.float64"),
    (dict(seed="abc"), (TypeError, ValueError), None),
    (dict(seed=-1), ValueError, None),
])
def test_constructor_refuses_bad_arguments(kwargs, exc, msg):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(exc, match=msg):
        LSTM(args.pop("input_size"), args.pop("hidden_size"), **args)


def test_constructor_accepts_numpy_scalars_and_bools():
    lstm = LSTM(np.int64(3), np.int32(4), np.uint8(2), bidirectional=np.bool_(True),
                dtype="float64")
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers) == (3, 4, 2)
    assert lstm.bidirectional is True and lstm.dtype == np.float64


# --------------------------------------------------------------------------- forward / __call__
@pytest.fixture
def lstm():
    return LSTM(3, 4, 2, bidirectional=True, dtype=np.float64, seed=0)


GOOD_X = np.random.default_rng(0).standard_normal((5, 2, 3))


@pytest.mark.parametrize("x,exc,msg", [
    (GOOD_X[0, 0], ValueError, r"x must have 3 dimensions .*got shape \(3,\)"),
    (GOOD_X[0, :, :2], ValueError, r"x of one unbatched sequence must have shape \(T, "
                                   r"input_size=3\), got \(2, 2\)"),
    (GOOD_X[None], ValueError, "x must have 3 dimensions"),
    (np.float64(1.0), ValueError, "x must have 3 dimensions"),
    (GOOD_X[..., :2], ValueError, r"x must have shape \(T, B, input_size=3\), got \(5, 2, 2\)"),
    (GOOD_X.astype(complex), TypeError, "real numbers"),
    (GOOD_X > 0, TypeError, "real numbers"),
    (GOOD_X.astype(object), TypeError, "real numbers"),
    (GOOD_X.astype(str), TypeError, "real numbers"),
    ("hello", TypeError, "real numbers"),
    (None, TypeError, "real numbers"),
    ([[[1.0, 2.0, 3.0]], [[1.0, 2.0]]], TypeError, "x must be an array of real numbers"),
    (np.where(GOOD_X > 1, np.nan, GOOD_X), ValueError, "NaN or inf"),
    (np.where(GOOD_X > 1, np.inf, GOOD_X), ValueError, "NaN or inf"),
])
def test_forward_refuses_bad_x(lstm, x, exc, msg):
    for call in (lstm.forward, lstm):
        with pytest.raises(exc, match=msg):
            call(x)


@pytest.mark.parametrize("make", [
    lambda x: np.asfortranarray(x),
    lambda x: np.repeat(x, 2, axis=2)[:, :, ::2],           # strided
    lambda x: x[::-1].copy()[::-1],                          # negative strides
    lambda x: np.ascontiguousarray(x.transpose(1, 0, 2)).transpose(1, 0, 2),
    lambda x: x.astype(np.float32),                          # another real dtype: converted
    lambda x: np.lib.stride_tricks.as_strided(x, writeable=False),  # read-only
])
def test_forward_copies_awkward_x_and_gives_the_right_answer(lstm, make, rng):
    x = rng.standard_normal((5, 2, 3))
    if make(x).dtype == np.float32:
        x = x.astype(np.float32).astype(np.float64)  # exactly representable either way
    y_ref, (h_ref, c_ref), cache_ref = lstm.forward(np.ascontiguousarray(x))
    odd = make(x)
    np.testing.assert_array_equal(odd, x)
    y, (h, c), cache = lstm.forward(odd)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(h, h_ref)
    dy = rng.standard_normal(y.shape)
    lstm.zero_grad()
    dx_ref, _ = lstm.backward(dy, cache_ref)
    g_ref = lstm.flat_grads.copy()
    lstm.zero_grad()
    dx, _ = lstm.backward(make(dy) if make(x).dtype != np.float32 else dy, cache)
    np.testing.assert_array_equal(dx, dx_ref)
    np.testing.assert_array_equal(lstm.flat_grads, g_ref)


def test_awkward_state_and_resets_are_copied(lstm, rng):
    x = rng.standard_normal((5, 2, 3))
    h0, c0 = rng.standard_normal((4, 2, 4)), rng.standard_normal((4, 2, 4))
    resets = rng.random((5, 2)) < 0.3
    y_ref, (h_ref, _) = lstm(x, (h0, c0), resets)
    odd_state = [np.asfortranarray(h0), np.asfortranarray(c0)]  # a list works as well
    odd_state[0].flags.writeable = False
    y, (h, _) = lstm(x, odd_state, np.asfortranarray(resets))
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(h, h_ref)
    y32, _ = lstm(x, (h0.astype(np.float32), c0.astype(np.int8)), resets.astype(np.int32))
    assert y32.dtype == np.float64


@pytest.mark.parametrize("state,exc,msg", [
    (np.zeros((4, 2, 4)), TypeError, r"state must be a tuple \(h, c\)"),
    ((np.zeros((4, 2, 4)),), TypeError, r"state must be a tuple \(h, c\)"),
    ((np.zeros((4, 2, 4)),) * 3, TypeError, r"state must be a tuple \(h, c\)"),
    ("hc", TypeError, r"state must be a tuple \(h, c\)"),
    ({"h": 1, "c": 2}, TypeError, r"state must be a tuple \(h, c\)"),
    ((np.zeros((2, 2, 4)), np.zeros((4, 2, 4))), ValueError,
     r"state\[0\] \(h\) must have shape \(4, 2, 4\), got \(2, 2, 4\)"),
    ((np.zeros((4, 2, 4)), np.zeros((4, 3, 4))), ValueError, r"state\[1\] \(c\) must have shape"),
    ((np.zeros((4, 2, 4)), np.zeros((4, 2))), ValueError, r"state\[1\] \(c\) must have shape"),
    ((np.zeros((4, 2, 4)), None), TypeError, r"state\[1\] \(c\)"),
    ((np.zeros((4, 2, 4), complex), np.zeros((4, 2, 4))), TypeError, r"state\[0\] \(h\)"),
    ((np.full((4, 2, 4), np.nan), np.zeros((4, 2, 4))), ValueError, "NaN or inf"),
    ((np.zeros((4, 2, 4)), np.full((4, 2, 4), -np.inf)), ValueError, "NaN or inf"),
])
def test_forward_refuses_bad_state(lstm, state, exc, msg):
    with pytest.raises(exc, match=msg):
        lstm.forward(GOOD_X, state)
    with pytest.raises(exc, match=msg):
        lstm(GOOD_X, state)


@pytest.mark.parametrize("resets,exc,msg", [
    (np.zeros((5, 3), bool), ValueError, r"resets must have shape \(T, B\) = \(5, 2\)"),
    (np.zeros((5,), bool), ValueError, r"resets must have shape \(T, B\) = \(5, 2\)"),
    (np.zeros((5, 2, 1), bool), ValueError, r"resets must have shape"),
    (np.zeros((5, 2)), TypeError, "resets must be a boolean array"),
    (np.full((5, 2), 2), ValueError, "only 0/1"),
    (np.full((5, 2), "a"), TypeError, "resets must be a boolean array"),
    (True, ValueError, "resets must have shape"),
])
def test_forward_refuses_bad_resets(lstm, resets, exc, msg):
    with pytest.raises(exc, match=msg):
        lstm.forward(GOOD_X, None, resets)


# --------------------------------------------------------------------------- backward
def test_backward_refuses_a_foreign_or_missing_cache(lstm):
    twin = LSTM(3, 4, 2, bidirectional=True, dtype=np.float64, seed=0)
    y, _, cache = twin.forward(GOOD_X)
    for bad in (cache, None, {"T": 5}, (y, cache)):
        with pytest.raises(ValueError, match="cache must be the cache returned by this layer"):
            lstm.backward(np.ones_like(y), bad)
    assert not lstm.flat_grads.any()


def test_backward_refuses_a_cache_of_another_shape(lstm):
    y_long, _, cache_long = lstm.forward(GOOD_X)
    y_short, _, cache_short = lstm.forward(GOOD_X[:2])
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 2, 8\), got \(5, 2, 8\)"):
        lstm.backward(np.ones_like(y_long), cache_short)
    with pytest.raises(ValueError, match=r"dy must have shape \(5, 2, 8\)"):
        lstm.backward(np.ones_like(y_short), cache_long)
    assert not lstm.flat_grads.any()


@pytest.mark.parametrize("dy,exc,msg", [
    (np.ones((5, 2, 4)), ValueError, r"dy must have shape \(5, 2, 8\)"),
    (np.ones((5, 2)), ValueError, "dy must have 3 dimensions"),
    (np.ones((5, 2, 8), complex), TypeError, "dy must hold real numbers"),
    (np.full((5, 2, 8), np.nan), ValueError, "dy contains NaN or inf"),
    ("dy", TypeError, "dy must hold real numbers"),
])
def test_backward_refuses_bad_dy(lstm, dy, exc, msg):
    _, _, cache = lstm.forward(GOOD_X)
    with pytest.raises(exc, match=msg):
        lstm.backward(dy, cache)
    assert not lstm.flat_grads.any()


@pytest.mark.parametrize("dstate,exc,msg", [
    (np.zeros((4, 2, 4)), TypeError, r"dstate must be a tuple \(h, c\)"),
    ((np.zeros((4, 2, 4)), np.zeros((4, 1, 4))), ValueError, r"dstate\[1\] \(c\) must have shape"),
    ((np.full((4, 2, 4), np.inf), np.zeros((4, 2, 4))), ValueError, "NaN or inf"),
])
def test_backward_refuses_bad_dstate(lstm, dstate, exc, msg):
    y, _, cache = lstm.forward(GOOD_X)
    with pytest.raises(exc, match=msg):
        lstm.backward(np.ones_like(y), cache, dstate)


def test_call_keeps_no_cache(lstm):
    out = lstm(GOOD_X)
    assert len(out) == 2
    with pytest.raises(ValueError, match="cache"):
        lstm.backward(np.ones_like(out[0]), out[1])


# --------------------------------------------------------------------------- step / initial_state
def test_step_refuses_bad_input():
    lstm = LSTM(3, 4, 2, dtype=np.float64, seed=0)
    with pytest.raises(ValueError, match="step\\(\\) needs a unidirectional LSTM"):
        LSTM(3, 4, bidirectional=True).step(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"x_t must have 2 dimensions, got shape \(3,\)"):
        lstm.step(np.zeros(3))
    with pytest.raises(ValueError, match="x_t must have 2 dimensions"):
        lstm.step(np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match=r"x_t must have shape \(B, input_size=3\), got \(1, 4\)"):
        lstm.step(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        lstm.step(np.full((1, 3), np.nan))
    with pytest.raises(TypeError, match="real numbers"):
        lstm.step(np.zeros((1, 3), complex))
    with pytest.raises(ValueError, match=r"state\[0\] \(h\) must have shape \(2, 1, 4\)"):
        lstm.step(np.zeros((1, 3)), lstm.initial_state(2))
    with pytest.raises(TypeError, match=r"state must be a tuple \(h, c\)"):
        lstm.step(np.zeros((1, 3)), lstm.initial_state(1)[0])


def test_step_accepts_awkward_input(rng):
    lstm = LSTM(3, 4, 2, dtype=np.float64, seed=0)
    x = rng.standard_normal((2, 6))[:, ::2]  # non-contiguous
    h_ref, _ = lstm.step(np.ascontiguousarray(x))
    h, _ = lstm.step(x)
    np.testing.assert_array_equal(h, h_ref)
    h_list, _ = lstm.step(x.tolist(), [s.tolist() for s in lstm.initial_state(2)])
    np.testing.assert_array_equal(h_list, h_ref)


def test_initial_state():
    lstm = LSTM(3, 4, 2, bidirectional=True, dtype=np.float64)
    h, c = lstm.initial_state(5)
    assert h.shape == c.shape == (4, 5, 4) and h.dtype == np.float64
    assert not h.any() and not c.any()
    h[...] = 1
    assert not c.any()  # two separate arrays
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        lstm.initial_state(0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        lstm.initial_state(2.0)


# --------------------------------------------------------------------------- state dicts
def test_load_state_dict_refuses_bad_entries_and_changes_nothing():
    lstm = LSTM(3, 4, dtype=np.float64, seed=0)
    before = lstm.flat_params.copy()
    good = lstm.state_dict()

    def bad(**change):
        d = {k: v + 1 for k, v in good.items()}  # valid entries that would change the layer
        d.update(change)
        return {k: v for k, v in d.items() if v is not None}

    cases = [
        (bad(bias_hh_l0=None), ValueError, r"missing keys \['bias_hh_l0'\]"),
        (bad(weight_ih_l1=np.zeros((16, 4))), ValueError, r"unexpected keys \['weight_ih_l1'\]"),
        (bad(weight_hh_l0=np.zeros((4, 16))), ValueError,
         r"state_dict\['weight_hh_l0'\] must have shape \(16, 4\), got \(4, 16\)"),
        (bad(bias_ih_l0=np.full(16, np.nan)), ValueError, r"\['bias_ih_l0'\] contains NaN or inf"),
        (bad(bias_ih_l0=np.zeros(16, complex)), TypeError, "must be real numbers"),
        (bad(bias_ih_l0=np.array(["x"] * 16)), TypeError, "must be real numbers"),
        ([("bias_ih_l0", np.zeros(16))], TypeError, "state_dict must be a mapping"),
        (None, TypeError, "state_dict must be a mapping"),
    ]
    for d, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            lstm.load_state_dict(d)
        np.testing.assert_array_equal(lstm.flat_params, before)


def test_load_state_dict_non_strict_loads_what_matches():
    lstm = LSTM(3, 4, dtype=np.float64, seed=0)
    lstm.load_state_dict({"bias_ih_l0": np.arange(16), "something_else": np.zeros(3)},
                         strict=False)
    np.testing.assert_array_equal(lstm.params["bias_ih_l0"], np.arange(16))


def test_set_flat_params():
    lstm = LSTM(3, 4, dtype=np.float32, seed=0)
    lstm.set_flat_params(np.arange(lstm.num_params, dtype=np.float64))
    assert lstm.params["weight_ih_l0"][0, 1] == 1
    with pytest.raises(ValueError, match=rf"must have shape \({lstm.num_params},\)"):
        lstm.set_flat_params(np.zeros(3))
    with pytest.raises(ValueError, match="finite real numbers"):
        lstm.set_flat_params(np.full(lstm.num_params, np.nan))
    with pytest.raises(ValueError, match="finite real numbers"):
        lstm.set_flat_params(np.zeros(lstm.num_params, complex))
