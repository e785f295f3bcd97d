"""The recurrent cores a model can be built on, by name: ``"lstm"`` and ``"gru"``.

:class:`rlstm.policy.LSTMPolicy` and :class:`rlstm.SequenceModel` take ``core="lstm"``,
``core="gru"`` or a recurrent layer class, and save the name with the model.
"""
from __future__ import annotations

from typing import Any

from .gru import GRU
from .lstm import LSTM
from .module import Module
from .validation import check_choice

__all__ = ["CORES", "core_class", "core_name"]

CORES = {"lstm": LSTM, "gru": GRU}


def core_class(core: Any) -> type:
    """``"lstm"`` -> :class:`rlstm.LSTM`, ``"gru"`` -> :class:`rlstm.GRU`; a recurrent layer
    class (an rlstm ``Module`` with ``forward``/``backward``/``step``) is returned as it is."""
    if isinstance(core, str):
        return CORES[check_choice("core", core, tuple(CORES))]
    if isinstance(core, type) and issubclass(core, Module) and hasattr(core, "step"):
        return core
    raise TypeError(f"core must be 'lstm', 'gru' or an rlstm recurrent layer class with "
                    f"forward/backward/step, got {core!r}")


def core_name(cls: type) -> str:
    """The name :func:`core_class` maps back to ``cls`` (the class name for other layers)."""
    return next((name for name, c in CORES.items() if c is cls), cls.__name__)
