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

They enter a run through one seam, :mod:`cjepa.hooks`, where :func:`install` registers them when
``cjepa`` is imported (``cjepa/__init__.py``): a wrapper of each checkpoint write and, for the
timed ones, a reporter for rank 0 (:class:`FaultReporter`). Neither ``train()`` nor the atomic
writer knows of them. The environment is read at every run and write, not at import, so a test
may set ``CJEPA_TEST_FAULT`` in-process. Imports nothing of cjepa but the stdlib-only hooks.

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

from cjepa import hooks

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


class FaultReporter:
    """Rank 0's hook for the kills: ``sigkill_step`` at its step, and arming ``sigkill_checkpoint``
    (and ``checkpoint_enospc=E``) in ``on_epoch``, which comes just before that epoch's checkpoint
    is written. A :class:`cjepa.engine.Reporter` by its methods, not by inheritance: this module is
    imported with ``cjepa`` and must not import the engine (torch)."""

    def __init__(self, faults: dict[str, int]) -> None:
        self.faults = faults
        self.run_dir = Path(".")

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if step == self.faults.get("sigkill_step", -1):
            where = marker("sigkill_step", self.run_dir)
            if not where.exists():
                kill(where)

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        if 0 < self.faults.get("checkpoint_enospc", 0) <= epoch:
            armed["enospc"] = Path(os.devnull)  # no marker: it recurs while the disk is full
        if epoch == self.faults.get("sigkill_checkpoint", -1):
            where = marker("sigkill_checkpoint", self.run_dir)
            if not where.exists():
                armed[CHECKPOINT_PREFIX] = where

    def on_checkpoint(self, epoch: int, metrics: dict[str, float], checkpoint: Path | None) -> None:
        pass

    def on_end(self, metrics: dict[str, float]) -> None:
        pass


def fault_reporters() -> list[FaultReporter]:
    """Rank 0's extra reporters for one run: nothing unless a timed fault is asked for."""
    faults = active()
    timed = {"sigkill_step", "sigkill_checkpoint"} & faults.keys() or faults.get("checkpoint_enospc", 0) > 0
    return [FaultReporter(faults)] if timed else []


def install() -> None:
    """Register both hooks (idempotent); each does nothing while ``CJEPA_TEST_FAULT`` is unset."""
    hooks.register(reporters=fault_reporters, checkpoint_write=wrap_write)
