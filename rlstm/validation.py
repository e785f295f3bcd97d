"""Input checks shared by every public layer, loss, policy and trainer (a public module).

The public layer validates and converts; the kernels trust what they are given. Every error says
what was expected and, where there is one, how to fix it. ``agents`` uses these checks too, so
they are part of rlstm's public interface.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

DTYPES = (np.float32, np.float64)

__all__ = ["DTYPES", "check_dtype", "check_int", "check_choice", "as_float_array",
           "check_shape", "as_resets", "as_state_pair"]


def check_dtype(dtype: Any) -> np.dtype:
    """Return ``np.dtype(dtype)`` if it is float32 or float64, else raise."""
    try:
        dt = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}") from e
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be np.float32 or np.float64, got {dt}")
    return dt


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer (not a bool, not a float) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def as_float_array(x: Any, dtype: np.dtype, name: str, ndim: int | None = None,
                   finite: bool = True) -> np.ndarray:
    """Convert ``x`` to a C-contiguous array of ``dtype``.

    Real inputs (ints, floats of another width) are converted. Complex, bool, object and string
    arrays are a ``TypeError``; NaN or inf is a ``ValueError`` when ``finite``.
    """
    if isinstance(x, np.ndarray) and x.dtype == dtype and x.flags.c_contiguous:
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as e:  # ragged lists and the like
            raise TypeError(f"{name} must be an array of real numbers, could not convert "
                            f"{type(x).__name__}: {e}") from e
        if arr.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers (float or int), got dtype "
                            f"{arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=dtype)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if finite and arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf; clean the input (np.nan_to_num) first")
    return arr


def check_shape(arr: np.ndarray, expected: tuple, name: str) -> None:
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {arr.shape}")


def as_resets(resets: Any, T: int, B: int) -> np.ndarray | None:
    """``None`` or a ``(T, B)`` boolean mask, returned as C-contiguous uint8."""
    if resets is None:
        return None
    arr = np.asarray(resets)
    if arr.dtype.kind not in "biu":
        raise TypeError(f"resets must be a boolean array of shape (T, B) = ({T}, {B}), "
                        f"got dtype {arr.dtype}")
    if arr.shape != (T, B):
        raise ValueError(f"resets must have shape (T, B) = ({T}, {B}), got {arr.shape}")
    if arr.dtype.kind != "b" and arr.size and not np.isin(arr, (0, 1)).all():
        raise ValueError("resets must contain only 0/1 or False/True")
    return np.ascontiguousarray(arr, dtype=np.uint8)


def as_state_pair(state: Any, shape: tuple, dtype: np.dtype, name: str = "state"):
    """An LSTM-style state ``(h, c)``, each of ``shape``; ``None`` means zeros."""
    if state is None:
        z = np.zeros(shape, dtype=dtype)
        return z, z
    if not isinstance(state, (tuple, list)) or len(state) != 2:
        raise TypeError(f"{name} must be a tuple (h, c) of arrays of shape {shape}, or None")
    h = as_float_array(state[0], dtype, f"{name}[0] (h)")
    c = as_float_array(state[1], dtype, f"{name}[1] (c)")
    check_shape(h, shape, f"{name}[0] (h)")
    check_shape(c, shape, f"{name}[1] (c)")
    return h, c
