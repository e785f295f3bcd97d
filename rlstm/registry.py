"""The kinds of model that :func:`rlstm.save` writes and :func:`rlstm.load` rebuilds.

Every saveable class registers itself here, next to its own definition (``lstm.py`` registers
``LSTM``, ``policy/policy.py`` registers ``LSTMPolicy``, and so on), with two functions:

- ``config(obj) -> dict``: its JSON-able constructor arguments;
- ``build(config, num_saved_params) -> obj``: the object rebuilt from them. It must refuse sizes
  that the saved parameter vector cannot hold *before* allocating anything (:func:`need` and
  :func:`need_recurrent` say so in one line).

:mod:`rlstm.io` reads this table and imports no model, so the file format knows no model and
no model knows the file format. A third-party layer becomes saveable by calling
:func:`register` once.
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["register", "lookup", "kinds", "need", "need_recurrent"]

ConfigFn = Callable[[Any], dict]
BuildFn = Callable[[dict, int], Any]

_KINDS: dict[str, tuple[ConfigFn, BuildFn]] = {}


def register(kind: str, config: ConfigFn, build: BuildFn) -> None:
    """Make the class named ``kind`` saveable (see the module docstring). Registering a kind
    again replaces it. Only registered kinds are ever constructed by :func:`rlstm.load`."""
    if not isinstance(kind, str) or not kind or not callable(config) or not callable(build):
        raise TypeError("register(kind: str, config: callable, build: callable)")
    _KINDS[kind] = (config, build)


def lookup(kind: str) -> tuple[ConfigFn, BuildFn]:
    """``(config, build)`` for ``kind``; a ``ValueError`` listing the known kinds otherwise."""
    try:
        return _KINDS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"{kind!r} is not a saveable rlstm kind; known kinds: "
                         f"{sorted(_KINDS)}") from None


def kinds() -> tuple[str, ...]:
    """Every registered kind, sorted."""
    return tuple(sorted(_KINDS))


def need(ok: bool, what: str) -> None:
    """Refuse a header whose sizes do not fit the saved parameter vector (before allocating)."""
    if not ok:
        raise ValueError(f"sizes in the header do not fit the saved parameters ({what})")


def need_recurrent(config: dict, input_size: int, size: int) -> None:
    """A recurrent layer of ``config``'s ``hidden_size``/``num_layers`` over ``input_size``
    features has at least ``3 H (D + H) + (L - 1) 3 H (H + H)`` parameters (a unidirectional
    GRU without biases: layers above the first read at least H features); refuse it if
    ``size`` is less."""
    H, L = int(config["hidden_size"]), int(config["num_layers"])
    need(H >= 1 and L >= 1 and int(input_size) >= 0, "sizes must be >= 1")
    need(3 * H * (int(input_size) + H) + (L - 1) * 6 * H * H <= size,
         "recurrent layer too large")
