"""The one atomic file write: readers see the old file or the new one, never half of one.

Each write goes to a temporary file with a unique name in the target's directory (same file
system, so the rename is atomic), is flushed to disk (``fsync``) and renamed over the target
with ``os.replace``. On any failure the temporary file is removed and the target is untouched.
Temporary names start with ``.`` and end in ``.tmp``, so globs for the real files skip them.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union

PathLike = Union[str, "os.PathLike[str]"]


def temp_name(path: PathLike) -> Path:
    """A unique temporary path beside ``path`` (``.<name>.<pid>.<random>.tmp``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to (with any writer, e.g.
    ``frame.to_parquet(tmp)``); on a clean exit it is fsynced and renamed over ``path``,
    on an exception it is removed and ``path`` keeps its old content.

    Args:
        path: The file to replace.

    Yields:
        The temporary path, in the same directory as ``path``.
    """
    target = Path(path)
    tmp = temp_name(target)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename).

    Args:
        path: The file to write; its directory must exist.
        data: The new content.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)


def atomic_write_json(path: PathLike, document: Any, indent: int = 2) -> None:
    """Replace ``path`` with ``document`` as JSON, atomically (see :func:`atomic_write_bytes`).

    Args:
        path: The file to write; its directory must exist.
        document: A JSON-serialisable value (serialised before anything is written, so a value
            that cannot be serialised leaves ``path`` as it was).
        indent: JSON indentation.
    """
    atomic_write_bytes(path, json.dumps(document, indent=indent).encode())


def cache_dir() -> Path:
    """Where churn-mlops keeps caches between processes (``$XDG_CACHE_HOME/churn-mlops``, default ``~/.cache``).

    Returns:
        The directory (not created).
    """
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "churn-mlops"
