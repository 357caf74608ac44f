"""Atomic file writes: temp file in the same directory, fsync, ``os.replace``.

A crash mid-write leaves the previous file intact. Shared by checkpoints and result caches.

``CJEPA_TEST_FAULT`` (tests only, never set it in real use) injects a storage fault into the
write of a file, because as root no ``chmod`` makes a directory unwritable and a real full disk
cannot be arranged in a test: ``checkpoint_enospc`` makes every write of a file whose name starts
with ``checkpoint`` fail with ``OSError(ENOSPC)`` after its first bytes, as a full disk would.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

FAULT_ENV = "CJEPA_TEST_FAULT"
TMP_SUFFIX = ".tmp"


class _FullDisk:
    """A file wrapper that fails like a full disk once ``budget`` bytes were written (test fault)."""

    def __init__(self, fh: IO[Any], path: Path, budget: int = 4096) -> None:
        self._fh, self._path, self._left = fh, path, budget

    def write(self, data: Any) -> int:
        if len(data) > self._left:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._path))
        self._left -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, tell, ...: the real file's
        return getattr(self._fh, name)


def _fault_for(path: Path) -> bool:
    return os.environ.get(FAULT_ENV) == "checkpoint_enospc" and path.name.startswith("checkpoint")


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
            write(_FullDisk(fh, path) if _fault_for(path) else fh)
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
