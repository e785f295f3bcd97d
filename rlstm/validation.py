"""Input checks shared by every public layer, loss, policy and trainer (a public module).

The public layer validates and converts; the kernels trust what they are given. Every error says
what was expected and, where there is one, how to fix it. ``agents`` uses these checks too, so
they are part of rlstm's public interface.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import math
import numbers
import os
import types
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np

DTYPES = (np.float32, np.float64)

__all__ = ["DTYPES", "check_dtype", "check_int", "check_choice", "as_float_array",
           "check_shape", "as_resets", "as_lengths", "as_state_pair", "Range", "check_value",
           "check_config", "config_hints", "describe_type", "parse_value", "unknown_keys_error",
           "field_docs"]


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


def as_lengths(lengths: Any, T: int, B: int, name: str = "lengths") -> np.ndarray | None:
    """``None`` or the valid length of each of ``B`` right-padded sequences of ``T`` steps:
    integers in ``[1, T]``, shape ``(B,)``, returned as a new int64 array.

    Floats (even whole ones), bools and NaN are a ``TypeError``; a wrong shape or a length
    outside ``[1, T]`` is a ``ValueError``. Both name the argument and say what was expected.
    """
    if lengths is None:
        return None
    if hasattr(lengths, "detach"):  # a torch tensor (pack_padded_sequence's lengths)
        lengths = lengths.detach().cpu().numpy()
    try:
        arr = np.asarray(lengths)
    except Exception as e:  # ragged lists and the like
        raise TypeError(f"{name} must be an integer array of shape (B,) = ({B},), could not "
                        f"convert {type(lengths).__name__}: {e}") from e
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array of shape (B,) = ({B},) holding each "
                        f"sequence's number of valid steps, got dtype {arr.dtype}")
    if arr.shape != (B,):
        raise ValueError(f"{name} must have shape (B,) = ({B},), one length per sequence, got "
                         f"{arr.shape}")
    if arr.size and (arr.min() < 1 or arr.max() > T):
        raise ValueError(f"{name} must be in [1, T] = [1, {T}] (right-padded sequences of at "
                         f"least one step), got values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int64)


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


# ---------------------------------------------------------------------------- typed configs
# A config is a dataclass whose annotations say what each field takes: ``int``, ``float``,
# ``bool``, ``str``, ``Literal[...]`` choices, ``X | None``, ``tuple[int, ...]``, ``dict``, and
# ``Annotated[X, Range(...)]`` for bounds. :func:`check_config` checks (and normalises) every
# field against its annotation; :func:`parse_value` reads a command-line string for a field.
@dataclass(frozen=True)
class Range:
    """A closed or open interval for a number field: ``Range(0, 1)`` is ``[0, 1]``,
    ``Range(0, low_open=True)`` is ``> 0``, ``Range(1)`` is ``>= 1``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return f"in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"
        if lo is not None:
            return f"{'>' if self.low_open else '>='} {lo}"
        return f"{'<' if self.high_open else '<='} {hi}"

    def contains(self, v) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        if self.high is not None and (v >= self.high if self.high_open else v > self.high):
            return False
        return True


def _union_args(hint):
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(hint)
    return None


def describe_type(hint) -> str:
    """A short English description of what a field annotated ``hint`` takes."""
    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(hint)
        ranges = [e.describe() for e in extra if isinstance(e, Range)]
        return describe_type(base) + (" " + " and ".join(ranges) if ranges else "")
    args = _union_args(hint)
    if args is not None:
        parts = [describe_type(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or None" if type(None) in args else "")
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_plural(args[0])}"
        return f"a list of {len(args)}: " + ", ".join(describe_type(a) for a in args)
    return {bool: "a bool (True or False)", int: "an int", float: "a number", str: "a string",
            dict: "a dict"}.get(hint, getattr(hint, "__name__", str(hint)))


def _plural(hint) -> str:
    """``ints >= 1``, ``numbers``, ... (what each item of a list field takes)."""
    if typing.get_origin(hint) is typing.Annotated:
        base, *extra = typing.get_args(hint)
        ranges = [e.describe() for e in extra if isinstance(e, Range)]
        return _plural(base) + (" " + " and ".join(ranges) if ranges else "")
    return {int: "ints", float: "numbers", str: "strings", bool: "bools"}.get(
        hint, describe_type(hint))


def check_value(name: str, value: Any, hint) -> Any:
    """``value`` checked against the annotation ``hint`` and normalised (NumPy scalars become
    Python numbers, lists become tuples); a ``TypeError`` or ``ValueError`` that names ``name``,
    the value and what was expected otherwise."""
    def fail(exc=TypeError):
        raise exc(f"{name} must be {describe_type(hint)}, got {value!r} "
                  f"({type(value).__name__})")

    origin = typing.get_origin(hint)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(hint)
        try:
            v = check_value(name, value, base)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{name} must be {describe_type(hint)}, got {value!r} "
                          f"({type(value).__name__})") from None
        for e in extra:
            if isinstance(e, Range) and v is not None and not e.contains(v):
                raise ValueError(f"{name} must be {describe_type(hint)}, got {v!r}")
        return v
    args = _union_args(hint)
    if args is not None:
        if value is None:
            if type(None) in args:
                return None
            fail()
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return check_value(name, value, a)
            except (TypeError, ValueError) as e:
                errors.append(e)
        fail(ValueError if any(isinstance(e, ValueError) for e in errors) else TypeError)
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        for c in choices:  # equal and of the same type (True is not the choice 1)
            if type(value) is type(c) and value == c:
                return value
        close = difflib.get_close_matches(value, [c for c in choices if isinstance(c, str)],
                                          n=1) if isinstance(value, str) else []
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}, got "
                         f"{value!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if origin is tuple:
        args = typing.get_args(hint)
        variadic = len(args) == 2 and args[1] is Ellipsis
        if variadic and isinstance(value, (numbers.Integral, np.integer)) and \
                not isinstance(value, bool) and args[0] is not str:
            value = (value,)  # one layer: 64 means (64,)
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            fail()
        if not variadic and len(value) != len(args):
            raise ValueError(f"{name} must be {describe_type(hint)}, got {value!r}")
        elems = [args[0]] * len(value) if variadic else args
        return tuple(check_value(f"{name}[{k}]", v, e) for k, (v, e) in
                     enumerate(zip(value, elems)))
    if hint is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        fail()
    if hint is int:
        if isinstance(value, (numbers.Integral, np.integer)) and not isinstance(
                value, (bool, np.bool_)):
            return int(value)
        fail()
    if hint is float:
        if isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(
                value, (bool, np.bool_)):
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            return v
        fail()
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        fail()
    if hint is dict:
        if isinstance(value, dict):
            return dict(value)
        fail()
    if hint is Any or hint is object:
        return value
    raise TypeError(f"{name}: unsupported annotation {hint!r}")  # a bug in the config class


def config_hints(cls) -> dict:
    """The resolved annotations of a dataclass config (``Annotated`` kept)."""
    return typing.get_type_hints(cls, include_extras=True)


def check_config(config) -> None:
    """Check and normalise every field of the dataclass ``config`` against its annotation,
    in place. Messages name the field as ``ConfigClass.field``."""
    hints = config_hints(type(config))
    owner = type(config).__name__
    for f in dataclasses.fields(config):
        value = check_value(f"{owner}.{f.name}", getattr(config, f.name), hints[f.name])
        object.__setattr__(config, f.name, value)


def _nearest(key: str, names) -> str | None:
    """The name most like ``key`` (a shared beginning counts extra), or None."""
    def score(name):
        return difflib.SequenceMatcher(None, key, name).ratio() + \
            0.2 * (name[:3] == key[:3])
    best = max(names, key=score, default=None)
    return best if best is not None and score(best) >= 0.6 else None


def unknown_keys_error(owner: str, unknown, valid) -> TypeError:
    """The error for keyword arguments that are not fields: lists the valid names and
    suggests the nearest one."""
    valid = sorted(valid)
    hints = []
    for k in sorted(unknown):
        close = _nearest(str(k), valid)
        hints.append(f"{k!r}" + (f" (did you mean {close!r}?)" if close else ""))
    return TypeError(f"unknown {owner} settings {', '.join(hints)}; valid ones are: "
                     f"{', '.join(valid)}")


_TRUE, _FALSE = ("true", "True", "1"), ("false", "False", "0")


def parse_value(name: str, text: str, hint) -> Any:
    """A command-line string for a field annotated ``hint``, typed by the annotation:
    ``true/false/True/False/1/0`` for a bool, ``none``/``null`` for ``None`` where allowed,
    ``[64, 64]`` or ``64,64`` for a list, JSON for a dict. Anything that does not fit the
    field's type is a ``ValueError`` that names the field."""
    origin = typing.get_origin(hint)
    try:
        if origin is typing.Annotated:
            return check_value(name, _parse(name, text, typing.get_args(hint)[0]), hint)
        args = _union_args(hint)
        if args is not None:
            if text.strip().lower() in ("none", "null") and type(None) in args:
                return None
            for a in args:
                if a is not type(None):
                    try:
                        return parse_value(name, text, a)
                    except ValueError:
                        pass
            raise ValueError
        return _parse(name, text, hint)
    except (TypeError, ValueError) as e:
        detail, full = str(e), f"{name} must be {describe_type(hint)}"
        if detail.startswith(f"{name}[") or detail.startswith(full):
            raise ValueError(detail) from None  # already names the item or the whole field
        extra = detail[detail.index(" ("):] if detail.endswith(")") and " (use" in detail \
            or " (a JSON" in detail else ""
        raise ValueError(f"{full}, got {text!r}{extra}") from None


def _parse(name: str, text: str, hint) -> Any:
    """:func:`parse_value` for one annotation (not a union or ``Annotated``)."""
    def bad(extra=""):
        raise ValueError(f"{name} must be {describe_type(hint)}, got {text!r}{extra}")

    origin = typing.get_origin(hint)
    if origin is typing.Annotated or _union_args(hint) is not None:
        return parse_value(name, text, hint)
    t = text.strip()
    if origin is typing.Literal:
        for c in typing.get_args(hint):
            if str(c) == t:
                return c
        return check_value(name, t, hint)  # the error, with the nearest choice
    if hint is str:
        return t
    if hint is bool:
        if t in _TRUE:
            return True
        if t in _FALSE:
            return False
        bad(" (use true/false/True/False/1/0)")
    if hint is int:
        try:
            return int(t)
        except ValueError:
            bad()
    if hint is float:
        try:
            return check_value(name, float(t), float)
        except ValueError:
            bad()
    if origin is tuple:
        if t.startswith("["):
            try:
                items = json.loads(t)
            except json.JSONDecodeError:
                try:  # a Python list as printed by repr: ['image', 'direction']
                    items = ast.literal_eval(t)
                except (ValueError, SyntaxError):
                    bad()
                if not isinstance(items, list):
                    bad()
            return check_value(name, items, hint)
        elem = typing.get_args(hint)[0]
        return tuple(parse_value(f"{name}[{k}]", p, elem)
                     for k, p in enumerate(x for x in t.split(",") if x.strip()))
    if hint is dict:
        try:
            d = json.loads(t)
        except json.JSONDecodeError:
            bad(" (a JSON object, e.g. '{\"log_std_init\": -1}')")
        return check_value(name, d, dict)
    bad()


def field_docs(cls) -> dict[str, str]:
    """``{field: docstring}`` of a dataclass config, read from the attribute docstrings (the
    string literal under each field) of ``cls`` and its bases; a subclass's wins."""
    import ast
    import inspect
    import textwrap
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str)):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs
