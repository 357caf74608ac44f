"""Several runs open one fresh SQLite store at the same moment: each gets its own run, none fails.

Why: MLflow creates and migrates a new SQLite database on its first open; two ``cjepa train``
started together on a fresh ``./mlflow.db`` both failed (``table latest_metrics already exists``,
``duplicate column name: step``, an alembic ``Online migration expected to match one row``),
reproduced with 4 processes opening the store at one instant before ``store_lock`` existed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cjepa.tracking.store import get_or_create_experiment, store_lock
from tests.conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[2]
RUNS = 4


@pytest.mark.integration
def test_four_runs_started_together_on_a_fresh_store(tmp_path: Path) -> None:
    """4 real ``cjepa train`` processes, started at once on a store that does not exist yet."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_RUN_ID", "RAY_ADDRESS")}
    env["MLFLOW_TRACKING_URI"] = uri
    cmds = [[sys.executable, "-m", "cjepa", "train", *tiny_overrides(tmp_path / f"run{i}", "run.epochs=1")]
            for i in range(RUNS)]
    t0 = time.monotonic()
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True) for cmd in cmds]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for proc, out in zip(procs, outs):
        assert proc.returncode == 0, out[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("cjepa")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len({r.info.run_id for r in runs}) == RUNS and {r.info.status for r in runs} == {"FINISHED"}
    assert len(client.search_experiments()) == 2  # MLflow's Default and cjepa: created once
    print(f"{RUNS} runs on one fresh store in {time.monotonic() - t0:.1f} s")


def test_the_lock_serialises_experiment_creation(tmp_path: Path) -> None:
    """Threads stand in for processes (flock locks are per open file): one experiment, one id."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with store_lock(uri):
        MlflowClient(uri).search_experiments(max_results=1)  # the tables, once
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(get_or_create_experiment(MlflowClient(uri), "e")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 4 and len(set(ids)) == 1
    assert (tmp_path / "mlflow.db.lock").exists()


def test_no_lock_file_for_a_server(tmp_path: Path) -> None:
    with store_lock("http://127.0.0.1:1"):
        pass
    assert list(tmp_path.iterdir()) == []
