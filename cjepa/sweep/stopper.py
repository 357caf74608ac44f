"""Stop collapsed trials from the collapse telemetry, not from the loss.

A falling JEPA loss can hide a collapse (method.md §5): the stopper watches the spread of the
pooled target features (``target_std_mean_normalized``: 1 for isotropic features, 0 for a
constant vector) and stops a trial that stays below a threshold for ``patience`` consecutive
reports. Why it stopped is appended to a JSON-lines file that the results table reads, because
Tune records *that* a stopper fired but not why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import tune

COLLAPSE_KEY = "target_std_mean_normalized"


class CollapseStopper(tune.Stopper):
    def __init__(self, threshold: float, patience: int, log_path: str | Path, key: str = COLLAPSE_KEY) -> None:
        self.threshold, self.patience, self.key = threshold, patience, key
        self.log_path = Path(log_path)
        self._low: dict[str, int] = {}

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.key)
        if value is None:
            return False
        self._low[trial_id] = self._low.get(trial_id, 0) + 1 if value < self.threshold else 0
        if self._low[trial_id] < self.patience:
            return False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as fh:
            fh.write(json.dumps({"trial_id": trial_id, "epoch": result.get("epoch"), "reason":
                                 f"collapse: {self.key}={value:.4g} < {self.threshold} for "
                                 f"{self.patience} epochs"}) + "\n")
        return True

    def stop_all(self) -> bool:
        return False


def read_stop_reasons(log_path: str | Path) -> dict[str, str]:
    """trial_id -> reason, for trials the stopper ended."""
    path = Path(log_path)
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
            out[rec["trial_id"]] = rec["reason"]
        except (ValueError, KeyError):
            continue
    return out
