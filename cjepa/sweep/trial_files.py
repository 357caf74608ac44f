"""What a trial left on disk besides Tune's record: the engine's own per-epoch metrics and the
final checkpoint, both exported into the trial's ``run.output_dir`` (:mod:`cjepa.sweep.results`
fills its table from them where Tune's record lacks them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def run_records(study_dir: Path, study_name: str, arm: str, seed: int) -> dict[int, dict[str, Any]]:
    """epoch -> the numbers the engine itself recorded for a trial (its ``metrics.jsonl``, exported
    into the trial's ``run.output_dir``), to fill the epochs Tune's record lacks.

    Why: when Tune restarts a trial from a Tune checkpoint (a trial trained in its actor, killed
    and retried), it first copies the trial's ``result.json`` back from storage, and that copy is
    synced only every few minutes, so results reported since are dropped from it (seen: a trial
    killed in epoch 2 lost its epoch-1 row). The engine's file travels with every checkpoint.
    """
    from cjepa.sweep.naming import trial_dir_name

    path = study_dir / "runs" / trial_dir_name(study_name, arm, seed) / "metrics.jsonl"
    out: dict[int, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            rec = json.loads(line) if line.strip() else {}
            if isinstance(rec.get("epoch"), (int, float)):
                out[int(rec["epoch"])] = {k: v for k, v in rec.items()
                                          if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return out


def final_checkpoint(result: Any, output_dir: str) -> str:
    """The trial's last checkpoint: the one exported into its ``run.output_dir`` (kept for good), else
    Tune's latest. Why: a trial trained in its actor reports no ``checkpoint_path`` metric (Ray
    Train's Tune integration adds one), and the report's masks and attention maps need a file."""
    from cjepa.engine.checkpoint import CHECKPOINT_NAME  # torch: imported only where results are written

    exported = Path(output_dir) / CHECKPOINT_NAME
    if exported.is_file():
        return str(exported)
    checkpoint = getattr(result, "checkpoint", None)
    return str(getattr(checkpoint, "path", "") or "")
