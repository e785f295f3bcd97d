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
import struct
import tempfile
import zipfile
from typing import Any, Mapping

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory locks, so stale temp files are left alone
    fcntl = None

FORMAT = "rlstm"
VERSION = 1
HEADER_KEY = "__header__"
MAX_HEADER_BYTES = 1 << 20
"""A header is JSON metadata; more than 1 MiB of it is refused."""
MAX_HEADER_DEPTH = 64
"""Nesting deeper than this in a header is refused (before parsing)."""
MAX_MEMBERS = 4096

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


def _temp_prefix(path: str) -> str:
    """Temp files of saves to ``path`` are ``.<name>.rlstm-XXXX.tmp`` beside it."""
    return f".{os.path.basename(path)}.rlstm-"


def _remove_stale_temps(path: str) -> None:
    """Remove temp files left by saves to ``path`` that were killed mid-write.

    A writer holds an exclusive lock on its temp file until it is renamed; a temp file whose
    lock can be taken belongs to a dead writer. (Where ``fcntl`` does not exist, nothing is
    removed.)"""
    if fcntl is None:
        return
    folder = os.path.dirname(os.path.abspath(path)) or "."
    prefix = _temp_prefix(path)
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        stale = os.path.join(folder, name)
        try:
            with open(stale, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # free: its writer died
                os.unlink(stale)
        except OSError:  # locked by a live writer, or already gone
            continue


def save_arrays(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], kind: str,
                meta: Mapping[str, Any] | None = None) -> None:
    """Write ``arrays`` and a JSON header atomically (temp file in the same folder + rename).

    ``kind`` names what the file holds (e.g. ``"LSTMPolicy"``, ``"PPO"``); a loader checks it.
    A reader sees the old file or the new one, never a part; temp files left by a save that was
    killed are removed by the next save to the same path.
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
    if payload[HEADER_KEY].size > MAX_HEADER_BYTES:
        raise ValueError(f"the header is {payload[HEADER_KEY].size} bytes, more than "
                         f"{MAX_HEADER_BYTES}; store large data as arrays")
    folder = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(folder, exist_ok=True)
    _remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if fcntl is not None:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # held until closed, after the rename
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; a saved file gets the usual mode
                os.fchmod(f.fileno(), default_file_mode(path))
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def default_file_mode(path) -> int:
    """The mode a plain ``open(path, "w")`` would give: an existing file's, else 0666 less
    the process umask (read from /proc where it can be, so no other thread sees a changed
    umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        pass
    umask = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    umask = int(line.split()[1], 8)
                    break
    except OSError:
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _json_depth_ok(text: str, limit: int) -> bool:
    """Whether JSON ``text`` nests at most ``limit`` arrays/objects deep (strings skipped)."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _read_member(zf: zipfile.ZipFile, name: str, path: str) -> np.ndarray:
    """One ``.npy`` member, its declared shape checked against its stored size first."""
    info = zf.getinfo(name)
    with zf.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        else:
            raise ValueError(f"unknown .npy version {version}")
        if dtype.hasobject or dtype.kind not in "biuf":
            raise ValueError(f"member {name!r} has dtype {dtype}; rlstm files hold numbers only")
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        held = info.file_size - fh.tell()
        if declared != held:
            raise ValueError(f"member {name!r} declares shape {shape} ({declared} bytes) but "
                             f"holds {held} bytes")
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def load_arrays(path: str | os.PathLike, kind: str | tuple[str, ...] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_arrays`; returns ``(arrays, header)``.

    Raises ``ValueError`` for anything that is not a complete rlstm file of this version (and of
    ``kind``, when given), and ``FileNotFoundError`` if ``path`` does not exist. Every declared
    size is checked against what the file holds before an array is allocated, and the header's
    size and nesting are bounded.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"PK\x03\x04":
        raise ValueError(f"{path} is not an rlstm file (rlstm files are .npz archives "
                         f"written by rlstm.save or a trainer's save)")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            OverflowError, UnicodeDecodeError, struct.error) as e:
        raise ValueError(f"{path} is not a readable rlstm file (truncated or corrupt): "
                         f"{e}") from e
    try:
        with zf:
            names = zf.namelist()
            header_name = HEADER_KEY + ".npy"
            if header_name not in names:
                raise ValueError(f"{path} is not an rlstm file (no header)")
            if len(names) > MAX_MEMBERS or any(not n.endswith(".npy") for n in names):
                raise ValueError(f"{path} is not an rlstm file (unexpected members)")
            if zf.getinfo(header_name).file_size > MAX_HEADER_BYTES + 4096:
                raise ValueError(f"{path} has a header larger than {MAX_HEADER_BYTES} bytes")
            raw = _read_member(zf, header_name, path)
            arrays = {n[:-4]: _read_member(zf, n, path) for n in names if n != header_name}
    except ValueError as e:
        if str(path) in str(e):
            raise
        raise ValueError(f"{path} is not a readable rlstm file: {e}") from e
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, NotImplementedError,
            OverflowError, UnicodeDecodeError, struct.error, MemoryError) as e:
        raise ValueError(f"{path} is not a readable rlstm file (truncated or corrupt): "
                         f"{e}") from e
    try:
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise ValueError("bad header array")
        text = raw.tobytes().decode("utf-8")
        if not _json_depth_ok(text, MAX_HEADER_DEPTH):
            raise ValueError(f"nested more than {MAX_HEADER_DEPTH} levels deep")
        header = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
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
