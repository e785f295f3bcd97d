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

__all__ = ["save", "load", "register", "describe", "rebuild", "read"]

register = registry.register  # the old spelling: rlstm.io.register(kind, config, build)


def describe(obj) -> dict:
    """The header section that :func:`rebuild` turns back into ``obj``'s architecture:
    ``{"kind", "config", "num_params", "dtype"}``. A file may hold several such sections (a
    trainer's file holds its policy's under ``"policy"``)."""
    kind = type(obj).__name__
    if kind not in registry.kinds() or not hasattr(obj, "flat_params"):
        raise TypeError(f"rlstm.save takes an rlstm module or policy ({list(registry.kinds())}), "
                        f"got {kind}")
    return {"kind": kind, "config": registry.lookup(kind)[0](obj),
            "num_params": int(obj.flat_params.size), "dtype": obj.flat_params.dtype.name}


def rebuild(section, flat, where: str = "the file"):
    """The object described by ``section`` (from :func:`describe`) with parameters ``flat``.

    Sizes are checked against ``flat`` before anything is allocated; every problem is a
    ``ValueError`` that names ``where``. Only registered kinds are constructed.
    """
    if not isinstance(section, dict) or not isinstance(section.get("config"), dict):
        raise ValueError(f"{where} has no constructor arguments in its header")
    kind, config = section.get("kind"), section["config"]
    if kind not in registry.kinds():
        raise ValueError(f"{where} describes a {kind!r}, not one of {list(registry.kinds())}")
    if not isinstance(flat, np.ndarray) or flat.ndim != 1:
        raise ValueError(f"{where}: the parameters must be one flat vector")
    try:
        obj = registry.lookup(kind)[1](config, int(flat.size))
    except (TypeError, ValueError, KeyError, OverflowError, MemoryError, RecursionError) as e:
        raise ValueError(f"{where} has invalid constructor arguments for {kind}: {e}") from e
    if flat.shape != obj.flat_params.shape or flat.dtype != obj.flat_params.dtype:
        raise ValueError(f"{where}: parameters are {flat.dtype}{list(flat.shape)}, the "
                         f"{kind} described needs {obj.flat_params.dtype}"
                         f"{list(obj.flat_params.shape)}")
    if not np.isfinite(flat).all():
        raise ValueError(f"{where}: parameters contain NaN or inf")
    obj.flat_params[...] = flat
    return obj


def read(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None):
    """``(arrays, header)`` of any rlstm file, with damaged archives reported as
    ``ValueError`` (``load_arrays`` plus the zip errors a corrupt directory raises)."""
    try:
        return load_arrays(path, kind)
    except (NotImplementedError, OverflowError, UnicodeDecodeError, struct.error) as e:
        # a damaged zip directory can make zipfile raise these (e.g. "compression method")
        raise ValueError(f"{path} is not a readable rlstm file: {e}") from e


def save(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` (any registered kind: LSTM, GRU, ConvLSTM, Linear, MLP, Conv2d,
    SequenceModel, LSTMPolicy, ...) to ``path``."""
    section = describe(obj)
    kind = section.pop("kind")
    if not np.isfinite(obj.flat_params).all():
        raise ValueError(f"refusing to save a {kind} with NaN/inf parameters to {path}: the "
                         f"file there (if any) is kept")
    save_arrays(path, {"flat_params": obj.flat_params}, kind=kind, meta=section)


def load(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None):
    """Rebuild the module saved at ``path`` (optionally requiring its ``kind``)."""
    arrays, header = read(path, kind or registry.kinds())
    if set(arrays) != {"flat_params"}:
        raise ValueError(f"{path} must hold exactly one array 'flat_params', got {sorted(arrays)}")
    return rebuild(header, arrays["flat_params"], str(path))
