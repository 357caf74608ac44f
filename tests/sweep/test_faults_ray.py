"""Faults inside a study, on a real local Ray with a real MLflow store (issue 13).

A trial whose loss becomes non-finite (``optim.lr=1e6`` on digits: NaN at step 2, every time)
ends ERROR with "non-finite loss at step 2" in Tune's error, its MLflow child run (FAILED, tag
``cjepa.failure``) and results.parquet's ``stop_reason``; it is tried once: Tune's retry finds the
failure remembered in the trial's run dir (``failed.json``, cjepa.distributed.preflight) and
raises it again at once instead of re-training to the same NaN and opening a second MLflow run.

In the default suite (it starts a local Ray, so like every Ray test it needs no other Ray on the
machine): ``timeout 900 python -m pytest -q tests/sweep/test_faults_ray.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

TINY = str(Path(__file__).with_name("tiny_study.yaml"))


@pytest.fixture(autouse=True, scope="module")
def _one_local_ray():
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


def test_non_finite_loss_fails_the_trial_once_with_its_reason_everywhere(tmp_path):
    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    from cjepa.sweep import Study
    from cjepa.sweep.runner import run_study

    storage, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()  # create the store's tables before Ray's processes race to
    study = Study(name="nan_study", base=TINY, overrides=("optim.lr=1e6",), factors={"loss.beta_vicreg": [0.01]},
                  seeds=(0,), max_concurrent=1, cpus_per_worker=1.0)
    result = run_study(study, storage=str(storage), tracking_uri=uri)  # the study itself goes on to its summary

    rows = pq.read_table(result.table).to_pylist()
    assert len(rows) == 1 and rows[0]["status"] == "ERROR", rows
    assert "non-finite loss at step 2" in rows[0]["stop_reason"], rows[0]["stop_reason"]
    assert not rows[0]["stop_reason"].startswith(("ray::", "\x1b")), rows[0]["stop_reason"]

    client = MlflowClient(uri)
    children = client.search_runs([client.get_experiment_by_name("nan_study").experiment_id], "tags.arm != ''")
    assert len(children) == 1, [c.info.run_name for c in children]  # the retry opened no second run
    assert children[0].info.status == "FAILED"
    assert "non-finite loss at step 2" in children[0].data.tags["cjepa.failure"]

    starts = [json.loads(line) for line in (storage / "nan_study" / "trial_starts.jsonl").read_text().splitlines()]
    memo = next((storage / "nan_study" / "runs").glob("*/failed.json"))
    assert "non-finite loss at step 2" in json.loads(memo.read_text())["error"]
    error_files = list((storage / "nan_study").glob("*/error.txt"))
    assert error_files and "non-finite loss at step 2" in error_files[0].read_text()  # Tune's error
    assert len(starts) in (1, 2)  # the first attempt, and Tune's retry (max_failures=1) that refused at once
