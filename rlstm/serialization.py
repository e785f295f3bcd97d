"""The rlstm file format: pickle-free, versioned, written atomically.

A file is a NumPy ``.npz`` archive read with ``allow_pickle=False``. It holds named arrays plus
one entry, ``__header__``, a UTF-8 JSON document stored as a uint8 array::

    {"format": "rlstm", "version": 1, "kind": "<what the file holds>", ...free metadata...}

Nothing in a file is ever executed: loading a file that is truncated, tampered with, of another
version, or not an rlstm file raises :class:`ValueError` and runs nothing from it.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any, Mapping

import numpy as np

FORMAT = "rlstm"
VERSION = 1
HEADER_KEY = "__header__"

__all__ = ["save_arrays", "load_arrays", "FORMAT", "VERSION"]


def _jsonable(obj: Any) -> Any:
    """Make metadata JSON-serialisable (NumPy scalars and arrays become Python values)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"metadata value of type {type(obj).__name__} is not JSON-serialisable")


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], kind: str,
                meta: Mapping[str, Any] | None = None) -> None:
    """Write ``arrays`` and a JSON header atomically (temp file in the same folder + rename).

    ``kind`` names what the file holds (e.g. ``"LSTMPolicy"``, ``"PPO"``); a loader checks it.
    """
    path = os.fspath(path)
    if not isinstance(kind, str) or not kind:
        raise ValueError("kind must be a non-empty string")
    meta = _jsonable(dict(meta or {}))
    reserved = {"format", "version", "kind"} & set(meta)
    if reserved:
        raise ValueError(f"metadata keys {sorted(reserved)} are reserved by the file format")
    header = {"format": FORMAT, "version": VERSION, "kind": kind, **meta}
    payload = {}
    for name, arr in arrays.items():
        if name == HEADER_KEY:
            raise ValueError(f"array name {HEADER_KEY!r} is reserved")
        a = np.asarray(arr)
        if a.dtype.kind not in "biuf":
            raise TypeError(f"array {name!r} has dtype {a.dtype}; only numeric arrays are saved")
        payload[name] = a
    payload[HEADER_KEY] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".rlstm-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_arrays(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_arrays`; returns ``(arrays, header)``.

    Raises ``ValueError`` for anything that is not a complete rlstm file of this version (and of
    ``kind``, when given), and ``FileNotFoundError`` if ``path`` does not exist.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, NotImplementedError) as e:
        raise ValueError(f"{path} is not a readable rlstm file (truncated or not an .npz): "
                         f"{e}") from e
    if not isinstance(data, np.lib.npyio.NpzFile):  # a plain .npy array
        raise ValueError(f"{path} is a single NumPy array, not an rlstm file")
    try:
        with data:
            if HEADER_KEY not in data.files:
                raise ValueError(f"{path} is not an rlstm file (no header)")
            members = {k: data[k] for k in data.files}
    except ValueError as e:
        if "rlstm" in str(e):
            raise
        raise ValueError(f"{path} is not a readable rlstm file: {e}") from e
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, NotImplementedError) as e:
        raise ValueError(f"{path} is not a readable rlstm file (truncated or corrupt): "
                         f"{e}") from e
    bad = [k for k, v in members.items() if not isinstance(v, np.ndarray)]
    if bad:  # np.load hands back raw bytes for members that are not .npy arrays
        raise ValueError(f"{path} is corrupt: members {bad} are not NumPy arrays")
    raw = members.pop(HEADER_KEY)
    arrays = members
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("bad header array")
        header = json.loads(raw.tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} has a corrupt rlstm header: {e}") from e
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(f"{path} is not an rlstm file")
    if header.get("version") != VERSION:
        raise ValueError(f"{path} is rlstm format version {header.get('version')!r}; this "
                         f"rlstm reads version {VERSION}")
    if kind is not None:
        kinds = (kind,) if isinstance(kind, str) else tuple(kind)
        if header.get("kind") not in kinds:
            raise ValueError(f"{path} holds a {header.get('kind')!r}, expected one of {kinds}")
    return arrays, header
