"""Accuracy of the kernels' vectorisable exp / sigmoid / tanh (rlstm/_fastmath.h) against libm."""
import numpy as np
import pytest

from rlstm import _kernels


def _eval(x):
    out = [np.empty_like(x) for _ in range(3)]
    _kernels.activations(x, *out)
    return out


def _ulp_error(approx, exact, dtype):
    """Error in units in the last place of the exact value (float64/longdouble reference)."""
    exact = np.asarray(exact, dtype=np.float64)
    spacing = np.spacing(np.abs(exact).astype(dtype)).astype(np.float64)
    spacing = np.maximum(spacing, np.finfo(dtype).smallest_normal)
    return np.abs(approx.astype(np.float64) - exact) / spacing


GRID = np.concatenate([np.linspace(-30, 30, 200001), np.geomspace(1e-12, 30, 20001),
                       -np.geomspace(1e-12, 30, 20001), [0.0]])


@pytest.mark.parametrize("dtype, max_ulp_exp, max_ulp_tanh, max_ulp_sig",
                         [(np.float32, 2, 3, 3), (np.float64, 2, 3, 3)])
def test_activations_are_accurate(dtype, max_ulp_exp, max_ulp_tanh, max_ulp_sig):
    x = GRID.astype(dtype)
    sig, th, ex = _eval(x)
    xl = x.astype(np.longdouble)
    exact_exp = np.exp(xl)
    exact_tanh = np.tanh(xl)
    exact_sig = 1 / (1 + np.exp(-xl))
    assert _ulp_error(ex, exact_exp, dtype).max() <= max_ulp_exp
    assert _ulp_error(th, exact_tanh, dtype).max() <= max_ulp_tanh
    assert _ulp_error(sig, exact_sig, dtype).max() <= max_ulp_sig


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_saturate_without_overflow(dtype):
    x = np.array([-1e30, -1000, -100, 100, 1000, 1e30], dtype=dtype)
    sig, th, ex = _eval(x)
    assert np.isfinite(sig).all() and np.isfinite(th).all() and np.isfinite(ex).all()
    np.testing.assert_allclose(sig, [0, 0, 0, 1, 1, 1], atol=1e-30)
    np.testing.assert_array_equal(th, [-1, -1, -1, 1, 1, 1])
    assert (ex[:3] >= 0).all() and (ex[:3] < 1e-37).all()
    assert (ex[3:] > 1e38).all()
