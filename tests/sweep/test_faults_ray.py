"""Faults inside a study, on a real local Ray with a real MLflow store (issue 13): a non-finite
loss, and workers SIGKILLed several times in one study.

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

from tests.conftest import SMALL_STUDY

pytestmark = [pytest.mark.integration]

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
    # One retry shows the refusal (failed.json) as well as three: an errored trial's actor is never reused, so
    # each retry is a fresh actor (~10 s of imports) for nothing more to check.
    study = Study(name="nan_study", base=TINY, overrides=("optim.lr=1e6",), factors={"loss.beta_vicreg": [0.01]},
                  seeds=(0,), max_concurrent=1, cpus_per_worker=1.0, max_failures=1)
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
    assert 1 <= len(starts) <= 1 + study.max_failures  # the first attempt, then Tune's retries refusing at once


def _child_runs(uri: str, experiment: str) -> dict[str, object]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id], "tags.arm != ''")
    return {r.data.tags["seed"]: r for r in runs}


def test_workers_killed_mid_epoch_and_mid_checkpoint_finish_equal_to_an_uninterrupted_study(tmp_path, monkeypatch):
    """Four SIGKILLs in one study: each of its two trials' worker dies at step 5 (epoch 1, before
    any checkpoint) and again half-way through writing epoch 2's checkpoint (cjepa/faults.py). Tune
    retries each trial (``Study.max_failures``) from its last checkpoint (Tune's: the trials train in
    their actor), and
    every trial ends equal to the same study run without faults: the same final metrics, one
    MLflow child run per trial, one value per epoch per curve."""
    import pyarrow.parquet as pq
    import ray
    from mlflow.tracking import MlflowClient

    from cjepa.sweep import Study
    from cjepa.sweep.runner import run_study

    storage, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    # SMALL_STUDY: 8 steps per epoch, so sigkill_step=5 still falls in epoch 1, before any checkpoint
    kw = dict(base=TINY, overrides=("run.epochs=3", "run.log_every=1", *SMALL_STUDY),
              factors={"loss.beta_vicreg": [0.01]}, seeds=(0, 1), max_concurrent=2, cpus_per_worker=1.0)
    straight = run_study(Study(name="straight", **kw), storage=str(storage), tracking_uri=uri)
    ray.shutdown()  # the next local Ray's workers inherit the fault settings below
    markers = tmp_path / "markers"
    monkeypatch.setenv("CJEPA_TEST_FAULT", "sigkill_step=5,sigkill_checkpoint=2")
    monkeypatch.setenv("CJEPA_TEST_FAULT_DIR", str(markers))
    faulty = run_study(Study(name="killed", **kw), storage=str(storage), tracking_uri=uri)
    ray.shutdown()

    assert len(list(markers.iterdir())) == 4, sorted(p.name for p in markers.iterdir())  # every kill happened

    def by_trial(result) -> dict[int, list[dict]]:
        out: dict[int, list[dict]] = {}
        for row in sorted(pq.read_table(result.table).to_pylist(), key=lambda r: r["epoch"]):
            out.setdefault(row["seed"], []).append(row)
        return out

    ref_rows, got_rows = by_trial(straight), by_trial(faulty)
    assert sorted(got_rows) == sorted(ref_rows) == [0, 1]
    for seed, ref in ref_rows.items():
        got = got_rows[seed]
        assert [r["epoch"] for r in got] == [r["epoch"] for r in ref] == [1, 2, 3], seed  # one row per epoch
        assert {r["status"] for r in got} == {r["status"] for r in ref} == {"COMPLETED"}, got[-1]
        for a, b in zip(got, ref):
            metrics = [k for k in b if k.startswith(("knn_", "linear_", "loss")) and b[k] is not None]
            assert metrics and all(a[k] == b[k] for k in metrics), {k: (a[k], b[k]) for k in metrics if a[k] != b[k]}

    client = MlflowClient(uri)
    ref_runs, got_runs = _child_runs(uri, "straight"), _child_runs(uri, "killed")
    assert sorted(got_runs) == ["0", "1"]  # one child per trial: no orphan from a kill before a checkpoint
    for seed, run in got_runs.items():
        assert run.info.status == "FINISHED"
        for key, value in ref_runs[seed].data.metrics.items():
            history = client.get_metric_history(run.info.run_id, key)
            once = [3] if key.startswith("test_") else [1, 2, 3]  # the test split: scored once, at the last epoch
            assert sorted(m.step for m in history) == once, (seed, key, [m.step for m in history])
            if key not in {"img_per_s", "epoch_time_s", "eval_time_s", "train_cpu_min"}:
                assert run.data.metrics[key] == value, (seed, key)


def test_storage_full_mid_study_is_one_clear_error_then_resume_finishes(tmp_path, monkeypatch):
    """From epoch 2 on every checkpoint write fails as on a full disk (``checkpoint_enospc=2``):
    the trial ends ERROR with the engine's line (ENOSPC, earlier checkpoints intact) in
    results.parquet and MLflow, epoch 1's checkpoint in Ray storage is intact (the only one there); with space again,
    ``--resume`` finishes the trial from it, in the same MLflow run, one value per epoch."""
    import pyarrow.parquet as pq
    import ray
    from mlflow.tracking import MlflowClient

    from cjepa.engine import load_checkpoint
    from cjepa.sweep import Study
    from cjepa.sweep.runner import run_study

    storage, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    study = Study(name="full", base=TINY, overrides=("run.epochs=3", *SMALL_STUDY),
                  factors={"loss.beta_vicreg": [0.01]}, seeds=(0,), max_concurrent=1, cpus_per_worker=1.0,
                  max_failures=1)
    ray.shutdown()
    monkeypatch.setenv("CJEPA_TEST_FAULT", "checkpoint_enospc=2")
    result = run_study(study, storage=str(storage), tracking_uri=uri)
    ray.shutdown()
    rows = pq.read_table(result.table).to_pylist()
    assert rows and {r["status"] for r in rows} == {"ERROR"}, rows
    row = rows[-1]
    assert "cannot be written (No space left on device, ENOSPC)" in row["stop_reason"], row["stop_reason"]
    assert "earlier checkpoints intact" in row["stop_reason"]
    # the trial trained in its Tune actor: its checkpoints are Tune's, in the trial's folder
    (kept,) = [p for p in (storage / "full").rglob("checkpoint.pt") if "runs" not in p.relative_to(storage).parts]
    assert kept.parent.name.startswith("checkpoint_") and load_checkpoint(kept)["epoch"] == 1
    (child,) = _child_runs(uri, "full").values()
    assert child.info.status == "FAILED" and "ENOSPC" in child.data.tags["cjepa.failure"]

    monkeypatch.delenv("CJEPA_TEST_FAULT")  # space again
    resumed = run_study(study, storage=str(storage), tracking_uri=uri, resume=True)
    ray.shutdown()
    rows = sorted(pq.read_table(resumed.table).to_pylist(), key=lambda r: r["epoch"])
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["status"] == "COMPLETED", rows
    (child,) = _child_runs(uri, "full").values()  # the same child run, finished
    assert child.info.status == "FINISHED"
    history = MlflowClient(uri).get_metric_history(child.info.run_id, "loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
