"""Which MLflow run a training run is: its tags, and the run a killed process left RUNNING.

The run id normally travels in the checkpoint (``MLflowReporter``); these cover what it cannot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cjepa.config import Config
from cjepa.tracking.store import git_commit

RUN_KEY_TAG = "cjepa.run_key"  # the run directory, set when the run is created


def run_tags(cfg: Config, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tags every cjepa run carries, for filtering in the UI and grouping in dashboards."""
    spec = cfg.regularizer  # tag values as before SIGReg had its own section: vicreg_mode "sigreg"
    return {"method": "cjepa" if spec else "ijepa", "vicreg_mode": spec.name if spec else "none",
            "seed": str(cfg.run.seed), "dataset": cfg.data.dataset, "config_digest": cfg.digest(),
            "git_commit": git_commit(), "run_dir": str(Path(cfg.run.output_dir).resolve()),
            **(extra or {})}


def find_interrupted(client: Any, experiment: str, run_key: str) -> Any:
    """The newest RUNNING run of ``experiment`` tagged with ``run_key``, or None.

    Why: a process killed *before its first checkpoint* (a worker SIGKILLed in epoch 1, Tune's
    retry of a trial) restarts without the checkpoint's run id and used to open a second run,
    leaving the first RUNNING forever. Only a run nobody ended (RUNNING) is adopted; its logged
    epochs are then skipped as on any resume. A key MLflow's filter cannot quote is not looked up.
    """
    if "'" in run_key:
        return None
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    found = client.search_runs([exp.experiment_id],
                               f"tags.`{RUN_KEY_TAG}` = '{run_key}' and attributes.status = 'RUNNING'",
                               max_results=1, order_by=["attributes.start_time DESC"])
    return found[0] if found else None
