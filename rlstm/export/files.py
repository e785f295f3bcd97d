"""Where exporters write: checked output paths and atomic writes."""
from __future__ import annotations

import os
import pathlib
import tempfile

from rlstm.serialization import default_file_mode

__all__ = ["output_path", "write_atomic"]


def output_path(path, example: str) -> pathlib.Path:
    """``path`` as a ``Path`` to a file to write; a ``TypeError`` for a non-path and a
    ``ValueError`` for a folder (``example`` is the file name suggested instead)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"the output path must be a str or os.PathLike, got "
                        f"{type(path).__name__}")
    text = os.fspath(path)
    if not text:
        raise ValueError(f"the output path is empty; give a file name such as {example!r}")
    path = pathlib.Path(text)
    if path.is_dir() or text.endswith(("/", os.sep)):
        raise ValueError(f"{text!r} is a folder; give a file name such as "
                         f"{str(path / example)!r}")
    return path


def write_atomic(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (created if
    missing), so a reader never sees half a file."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"cannot write {str(path)!r}: {str(folder)!r} is not a folder") \
            from None
    fd, tmp = tempfile.mkstemp(prefix=".rlstm-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; an export gets the usual mode
                os.fchmod(f.fileno(), default_file_mode(path))
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
