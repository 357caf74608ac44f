"""Rank 0's hook for the test-only kills of :mod:`cjepa.faults` (``CJEPA_TEST_FAULT``): a reporter,
so the training loop knows nothing of faults beyond adding what :func:`fault_reporters` returns."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cjepa.engine.reporting import Reporter
from cjepa.faults import CHECKPOINT_PREFIX, active, armed, kill, marker


class FaultReporter(Reporter):
    """Rank 0's hook for the kills: ``sigkill_step`` at its step, and arming ``sigkill_checkpoint``
    in ``on_epoch`` (which comes just before that epoch's checkpoint is written)."""

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


def fault_reporters() -> list[Reporter]:
    """What the trainer adds to rank 0's reporters: nothing unless a kill is asked for."""
    faults = active()
    timed = {"sigkill_step", "sigkill_checkpoint"} & faults.keys() or faults.get("checkpoint_enospc", 0) > 0
    return [FaultReporter(faults)] if timed else []


