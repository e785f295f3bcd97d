"""Save and load any rlstm module or policy: ``rlstm.save(obj, path)``, ``rlstm.load(path)``.

Built on :mod:`rlstm.serialization` (``.npz`` read with ``allow_pickle=False`` + a JSON header,
written atomically, versioned). The header holds the class name (``kind``), the constructor
arguments and, for a policy, the observation and action spaces as JSON; the archive holds one
array, ``flat_params``. Loading rebuilds the object from that description only: nothing in the
file is executed, and a file that is truncated, tampered with, of another version or not an
rlstm model raises ``ValueError``.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from . import registry
from .serialization import load_arrays, save_arrays

__all__ = ["save", "load", "register"]

register = registry.register  # the old spelling: rlstm.io.register(kind, config, build)


def _ints_at_most(obj, limit: int) -> None:
    """Every integer in the header is at most the saved parameter count (no size can be)."""
    if isinstance(obj, dict):
        for v in obj.values():
            _ints_at_most(v, limit)
    elif isinstance(obj, list):
        for v in obj:
            _ints_at_most(v, limit)
    elif isinstance(obj, int) and not isinstance(obj, bool):
        registry.need(obj <= limit, f"{obj} > {limit}")


def save(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` (any registered kind: LSTM, GRU, ConvLSTM, Linear, MLP, Conv2d,
    SequenceModel, LSTMPolicy, ...) to ``path``."""
    kind = type(obj).__name__
    if kind not in registry.kinds() or not hasattr(obj, "flat_params"):
        raise TypeError(f"rlstm.save takes an rlstm module or policy ({list(registry.kinds())}), "
                        f"got {kind}")
    config = registry.lookup(kind)[0](obj)
    save_arrays(path, {"flat_params": obj.flat_params}, kind=kind,
                meta={"config": config, "num_params": int(obj.flat_params.size),
                      "dtype": obj.flat_params.dtype.name})


def load(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None):
    """Rebuild the module saved at ``path`` (optionally requiring its ``kind``)."""
    try:
        arrays, header = load_arrays(path, kind or registry.kinds())
    except (NotImplementedError, OverflowError, UnicodeDecodeError, struct.error) as e:
        # a damaged zip directory can make zipfile raise these (e.g. "compression method")
        raise ValueError(f"{path} is not a readable rlstm file: {e}") from e
    kind = header["kind"]
    config = header.get("config")
    if not isinstance(config, dict):
        raise ValueError(f"{path} has no constructor arguments in its header")
    if set(arrays) != {"flat_params"}:
        raise ValueError(f"{path} must hold exactly one array 'flat_params', got {sorted(arrays)}")
    flat = arrays["flat_params"]
    try:
        _ints_at_most({k: v for k, v in config.items() if not k.endswith("_space")},
                      max(int(flat.size), 1))
        obj = registry.lookup(kind)[1](config, int(flat.size))
    except (TypeError, ValueError, KeyError, OverflowError, MemoryError) as e:
        raise ValueError(f"{path} has invalid constructor arguments for {kind}: {e}") from e
    if flat.shape != obj.flat_params.shape or flat.dtype != obj.flat_params.dtype:
        raise ValueError(f"{path}: parameters are {flat.dtype}{list(flat.shape)}, the "
                         f"{kind} described needs {obj.flat_params.dtype}"
                         f"{list(obj.flat_params.shape)}")
    if not np.isfinite(flat).all():
        raise ValueError(f"{path}: parameters contain NaN or inf")
    obj.flat_params[...] = flat
    return obj
