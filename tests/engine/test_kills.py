"""A training process SIGKILLed mid-epoch and half-way through a checkpoint write (issue 13).

Real kills of a real ``python -m cjepa train`` (``CJEPA_TEST_FAULT``, cjepa/faults.py: the process
kills itself at a precise point, once per run dir), real MLflow sqlite store. After each kill the
same command is run again; the survivor must equal an uninterrupted run bit for bit, and MLflow
must hold one run with exactly one value per epoch. The kill before the first checkpoint is the
case that used to leave an orphan RUNNING run beside a second one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import tiny_overrides
from tests.engine.test_faults import FAST, SPE, TIMING, _same_run

pytestmark = pytest.mark.integration


def _train(run: Path, uri: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cjepa", "train", "--tracking-uri", uri, "--experiment", "kills",
           *tiny_overrides(run, *FAST, "run.log_every=1")]
    return subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def _mlflow_epochs(uri: str, run: Path) -> dict[str, list[int]]:
    """metric -> the steps it was logged at, for the one MLflow run of ``run`` (asserted unique)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("kills").experiment_id],
                              f"tags.run_dir = '{run.resolve()}'")
    assert [r.info.status for r in runs] == ["FINISHED"], [(r.info.run_id, r.info.status) for r in runs]
    return {key: sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, key))
            for key in runs[0].data.metrics}


@pytest.mark.parametrize("fault, killed_in", [(f"sigkill_step={SPE - 2}", "epoch 1, before any checkpoint"),
                                              ("sigkill_checkpoint=1", "the first checkpoint write"),
                                              ("sigkill_checkpoint=2", "the second checkpoint write")])
def test_killed_then_rerun_equals_an_uninterrupted_run(fault, killed_in, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    straight, run = tmp_path / "straight", tmp_path / "run"
    assert _train(straight, uri, {}).returncode == 0
    env = {"CJEPA_TEST_FAULT": fault, "CJEPA_TEST_FAULT_DIR": str(tmp_path / "markers")}
    first = _train(run, uri, env)
    assert first.returncode == -signal.SIGKILL, (killed_in, first.returncode, first.stderr[-2000:])
    if "checkpoint" in fault:  # the write was cut: a half temp file, never a half checkpoint.pt
        assert list(run.glob(".checkpoint.pt.*.tmp")), list(run.iterdir())
    second = _train(run, uri, env)  # the marker says it was killed once: this one runs to the end
    assert second.returncode == 0, second.stderr[-3000:]
    assert not list(run.glob(".*.tmp"))  # the stale temp file is cleaned up at the start
    _same_run(straight, run)
    logged = _mlflow_epochs(uri, run)
    assert logged and all(steps == [1, 2, 3] for key, steps in logged.items() if key not in TIMING), logged
