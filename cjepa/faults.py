"""Test-only fault injection: faults a test cannot cause from outside a real run (issue 13).

Never set ``CJEPA_TEST_FAULT`` in real use. It holds comma-separated faults:

* ``checkpoint_enospc``: every write of a file whose name starts with ``checkpoint`` fails with
  ``OSError(ENOSPC)`` after its first bytes, as a full disk would (as root no ``chmod`` makes a
  directory unwritable, and a real full disk cannot be arranged in a test);
  ``checkpoint_enospc=E``: the same from the checkpoint of epoch E on (the disk fills mid-run);
* ``checkpoint_erofs``: the same with ``OSError(EROFS)``, as when the storage is remounted
  read-only (the write fails at its first byte);
* ``sigkill_step=N``: the main process of a run (rank 0) SIGKILLs itself after step N;
* ``sigkill_checkpoint=E``: ... while writing the checkpoint of epoch E, after its first bytes,
  so the temp file is left half-written, as when a node dies mid-save.

The two kills fire **once per run**: before killing, a marker named after the fault and the run
directory is created in ``CJEPA_TEST_FAULT_DIR`` (required for them), so the restarted run goes
on. Ray Train's worker-local run dir is a function of the trial's experiment name, hence stable
across restarts and distinct between trials: every trial of a study is killed once per fault.

This module imports nothing of cjepa (the atomic writer imports it); the trainer's hook for the
kills is :class:`cjepa.engine.fault_reporter.FaultReporter`.

Why not a library: fault injectors (e.g. chaos tools) kill processes from outside, at a time;
these faults must hit a precise point inside the step loop and inside one file write.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
from pathlib import Path
from typing import IO, Any

FAULT_ENV = "CJEPA_TEST_FAULT"
FAULT_DIR_ENV = "CJEPA_TEST_FAULT_DIR"
CHECKPOINT_PREFIX = "checkpoint"
armed: dict[str, Path] = {}  # faults for the next checkpoint write: "checkpoint" (kill) -> its marker; "enospc"


def active() -> dict[str, int]:
    """The faults in ``CJEPA_TEST_FAULT``: name -> its number (0 where it takes none)."""
    faults: dict[str, int] = {}
    for item in filter(None, (s.strip() for s in os.environ.get(FAULT_ENV, "").split(","))):
        name, _, value = item.partition("=")
        faults[name] = int(value) if value else 0
    return faults


def marker(fault: str, run_dir: Path) -> Path:
    folder = os.environ.get(FAULT_DIR_ENV)
    if not folder:
        raise RuntimeError(f"{FAULT_ENV}={fault} needs {FAULT_DIR_ENV} (where 'already killed' markers go)")
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:12]
    return Path(folder) / f"{fault}-{digest}"


def kill(marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    os.kill(os.getpid(), signal.SIGKILL)


class _FaultyFile:
    """A file wrapper that, once ``budget`` bytes were written, fails like a full disk or kills
    the process (the bytes so far stay in the temp file, as after a real crash)."""

    def __init__(self, fh: IO[Any], path: Path, kill_marker: Path | None, budget: int = 4096,
                 error: int = errno.ENOSPC) -> None:
        self._fh, self._path, self._kill, self._left, self._error = fh, path, kill_marker, budget, error

    def write(self, data: Any) -> int:
        if len(data) > self._left:
            if self._kill is not None:
                self._fh.write(data[: self._left])
                self._fh.flush()
                kill(self._kill)
            raise OSError(self._error, os.strerror(self._error), str(self._path))
        self._left -= len(data)
        return self._fh.write(data)

    def __getattr__(self, name: str) -> Any:  # flush, fileno, tell, ...: the real file's
        return getattr(self._fh, name)


def wrap_write(fh: IO[Any], path: Path) -> IO[Any]:
    """``fh`` itself, or a faulty wrapper when a fault targets this write (checkpoints only)."""
    if not path.name.startswith(CHECKPOINT_PREFIX):
        return fh
    marker = armed.pop(CHECKPOINT_PREFIX, None)
    if marker is not None:
        return _FaultyFile(fh, path, kill_marker=marker)
    if armed.pop("enospc", None) is not None or active().get("checkpoint_enospc", -1) == 0:
        return _FaultyFile(fh, path, kill_marker=None)
    if "checkpoint_erofs" in active():
        return _FaultyFile(fh, path, kill_marker=None, budget=0, error=errno.EROFS)
    return fh
