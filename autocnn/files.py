"""Writing files so that a crash never leaves a half-written one in place.

Shared by the checkpoints, the training outputs, the download and the benchmark results.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> None:
    """
    Write a file through a temporary file in the same folder, then move it into place.

    The data is flushed to disk (fsync) before ``os.replace``, so the path holds either
    its old content or the complete new one. If ``write`` raises, nothing is left behind
    and the error propagates (a download can verify its bytes inside ``write``).

    Inputs:
    - path: The file to (re)write; its folder is created if needed
    - write: Called with a binary handle to write the content into
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle_fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle_fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """atomic_write of a UTF-8 text."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, value: Any) -> None:
    """atomic_write of a value as indented JSON with a final newline."""
    atomic_write_text(path, json.dumps(value, indent=1) + "\n")


def atomic_save_npz(path: str | os.PathLike, arrays: dict[str, Any]) -> None:
    """atomic_write of arrays as an uncompressed .npz (through a handle, so numpy adds no second suffix)."""
    import numpy as np

    atomic_write(path, lambda handle: np.savez(handle, **{name: np.asarray(value) for name, value in arrays.items()}))
