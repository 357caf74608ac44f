"""The one seam through which a training run is instrumented from outside the engine.

Two process-wide points, empty unless something registers: reporters added to rank 0's of every
run (asked once when a run starts) and a wrapper of each checkpoint file the engine writes (asked
once per save, around the file handle). Its one user is the test-only fault injection
(``cjepa/faults.py``, ``CJEPA_TEST_FAULT``), registered when ``cjepa`` is imported.

Why a registry and not arguments: the faults must reach runs started by ``cjepa train``, by Ray
Train workers and by Tune trial actors, in processes a test cannot reach into, without any of
those entry points, ``train()`` or the atomic writer knowing that faults exist. Stdlib only:
importing it imports neither torch nor any other part of cjepa (no import cycle).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

#: () -> reporters (``cjepa.engine.Reporter`` objects) for rank 0 of the run that is starting
ReporterFactory = Callable[[], list[Any]]
#: (file handle, final path) -> the handle to write through
WriteWrapper = Callable[[IO[Any], Path], IO[Any]]

_reporter_factories: list[ReporterFactory] = []
_write_wrappers: list[WriteWrapper] = []


def register(reporters: ReporterFactory | None = None, checkpoint_write: WriteWrapper | None = None) -> None:
    """Add a reporter factory and/or a checkpoint-write wrapper (once per process: a second
    registration of the same function is ignored, so a re-import cannot double a fault)."""
    if reporters is not None and reporters not in _reporter_factories:
        _reporter_factories.append(reporters)
    if checkpoint_write is not None and checkpoint_write not in _write_wrappers:
        _write_wrappers.append(checkpoint_write)


def run_reporters() -> list[Any]:
    """What the registered factories add to rank 0's reporters for one run (none in real use)."""
    return [r for factory in _reporter_factories for r in factory()]


def wrap_checkpoint_write(fh: IO[Any], path: Path) -> IO[Any]:
    """``fh`` through every registered wrapper (``fh`` itself in real use)."""
    for wrap in _write_wrappers:
        fh = wrap(fh, path)
    return fh
