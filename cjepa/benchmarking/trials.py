"""When a study's trials started and ended, read from what a study writes anyway.

Starts: the runner's audit file ``<storage>/<study>/trial_starts.jsonl`` (one line per start of a
trial function: trial name, Tune trial id, time). Ends: the trial's MLflow child run (tags
``study``, ``arm``, ``seed``, ``trial_id``), whose end time the engine sets when the trial's
training finishes (``MLflowReporter.on_end``: status FINISHED). So a benchmark of a study needs
its MLflow store (``--tracking-uri``); the runner writes nothing for benchmarks alone. A trial's
end read this way leaves out only its tail after training (Tune's last report returning, the
trial function's exit), which falls into the next launch gap instead of the trial's own time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

STARTS = "trial_starts.jsonl"


def lines(path: Path) -> list[dict[str, Any]]:
    """A JSON-lines file's records ([] when it does not exist)."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def trial_starts(study_dir: Path) -> list[dict[str, Any]]:
    """Every start of a trial function: ``{"trial", "trial_id", "time"}``, in the order written."""
    return lines(study_dir / STARTS)


class TrialEnds:
    """The finished trials of a study in an MLflow store, by trial name (``trial_dir_name``)."""

    def __init__(self, tracking_uri: str, study: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client, self.study = MlflowClient(tracking_uri), study

    def ends(self) -> dict[str, float]:
        """Trial name -> the time (seconds since the epoch) its child run finished."""
        from cjepa.sweep.naming import trial_dir_name

        exp = self.client.get_experiment_by_name(self.study)
        if exp is None:
            return {}
        runs = self.client.search_runs([exp.experiment_id], max_results=50000,
                                       filter_string=f"tags.study = '{self.study}' and attributes.status = 'FINISHED'")
        return {trial_dir_name(self.study, r.data.tags["arm"], int(r.data.tags["seed"])): r.info.end_time / 1000
                for r in runs if "arm" in r.data.tags and "seed" in r.data.tags and r.info.end_time}

    def count(self) -> int:
        """How many trials have finished (0 while the store or the experiment does not exist yet)."""
        try:
            return len(self.ends())
        except Exception:  # the driver may be creating the store's tables right now
            return 0
