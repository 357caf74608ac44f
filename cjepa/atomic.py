"""Atomic file writes: temp file in the same directory, fsync, ``os.replace``.

A crash mid-write leaves the previous file intact. Shared by checkpoints and result caches.
Imports nothing of cjepa (no cycle through the engine).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

TMP_SUFFIX = ".tmp"


def tmp_pattern(name: str) -> str:
    """Glob of the temp files :func:`atomic_write` makes for ``name`` (to clean up a killed write)."""
    return f".{name}.*{TMP_SUFFIX}"


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (best effort: some filesystems cannot open a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[Any]], None], binary: bool = True,
                 keep_previous: str | Path | None = None) -> Path:
    """Call ``write(fh)`` on a temp file beside ``path``, then move it into place.

    ``keep_previous``: the file ``path`` held is first renamed to it (checkpoint rotation). The
    order, new file complete and fsynced, old -> previous, new -> ``path``, means that at every
    instant at least one complete file exists, ``path`` or ``keep_previous``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path
