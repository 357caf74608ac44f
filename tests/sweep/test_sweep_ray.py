"""Studies on a real local Ray cluster with a real MLflow store (slow: Ray Train start-up per trial).

One local Ray at a time: with two on a machine, Train V2's placement-group cleaner fails
("Found multiple active Ray instances") and stopped trials hang, so the module first shuts down
the in-process Ray that earlier test modules share, and shuts down its own at the end. The killed
driver is a real process (the kill must hit one); the ``--resume`` driver runs in this process and
starts the local Ray that the ASHA test then reuses (one Ray start and one interpreter start fewer).

- a study's driver is killed mid-way (SIGKILL) and ``--resume`` completes it: no finished trial
  runs again, no MLflow run is duplicated, every child run has one value per epoch;
- ASHA stops trials early, their resources are released and the study finishes
  (stack-notes.md pitfall 1: without ray[default] this hangs).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import SMALL_STUDY
from tests.sweep.in_process import driver_process_state, run_script_main

pytestmark = pytest.mark.integration  # studies on a local Ray

DRIVER = Path(__file__).with_name("study_driver.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def _one_local_ray():
    """Ray shut down at the module's start and end (kept up between its tests: ASHA reuses the resume's),
    and the environment and signal handlers the in-process drivers change put back at its end."""
    with driver_process_state():
        yield


def _driver(storage: Path, uri: str, *args: str) -> list[str]:
    return [sys.executable, str(DRIVER), "--storage", str(storage), "--tracking-uri", uri, *args]


def _starts(storage: Path, study: str) -> list[dict]:
    path = storage / study / "trial_starts.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _terminated_in_tune_state(storage: Path, study: str) -> bool:
    """Tune has recorded a finished trial in the experiment state it restores from."""
    return any('\\"status\\": \\"TERMINATED\\"' in p.read_text() or '"status": "TERMINATED"' in p.read_text()
               for p in (storage / study).glob("experiment_state-*.json"))


def _finished_children(client: MlflowClient, study: str) -> list:
    exp = client.get_experiment_by_name(study)
    if exp is None:
        return []
    return [r for r in client.search_runs([exp.experiment_id], "tags.arm != ''") if r.info.status == "FINISHED"]


def test_killed_study_resumes_without_rerunning_or_duplicating(tmp_path, capsys, monkeypatch):
    from tests.sweep import study_driver

    storage, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TUNE_GLOBAL_CHECKPOINT_S": "1"}  # save Tune state often
    client = MlflowClient(uri)
    client.search_experiments()  # create the store's tables now: two processes migrating at once race
    log = (tmp_path / "driver.log").open("w")
    proc = subprocess.Popen(_driver(storage, uri), cwd=tmp_path, env=env, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 400
    try:
        while time.time() < deadline and not _terminated_in_tune_state(storage, "tiny_vicreg"):
            assert proc.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            time.sleep(1)
        assert _finished_children(client, "tiny_vicreg"), "no trial finished in time"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and everything it started
        proc.wait()
        log.close()
    finished_before = {r.data.tags["arm"] for r in _finished_children(client, "tiny_vicreg")}

    # the resume: study_driver.py's ``main(make_study, __doc__)`` in this process, as its subprocess had it
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "1")
    stdout = run_script_main(study_driver, capsys, "--storage", str(storage), "--tracking-uri", uri, "--resume")
    assert "beta_vicreg=0.01" in stdout and "(baseline)" in stdout  # the summary table

    starts = [s["trial"] for s in _starts(storage, "tiny_vicreg")]
    for arm in finished_before:  # a finished trial never starts again
        assert starts.count(f"tiny_vicreg-{arm}-s0") == 1, starts
    exp = client.get_experiment_by_name("tiny_vicreg")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("cjepa.role") == "study"]
    children = [r for r in runs if "arm" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["arm"] for r in children) == ["beta_vicreg=0.0", "beta_vicreg=0.01"]
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        for metric in ("loss", "knn_target", "target_eff_rank"):
            assert [m.step for m in client.get_metric_history(run.info.run_id, metric)] == [1, 2], metric

    table = pq.read_table(storage / "tiny_vicreg" / "results.parquet").to_pylist()
    assert sorted((r["arm"], r["epoch"]) for r in table) == [("beta_vicreg=0.0", 1), ("beta_vicreg=0.0", 2),
                                                             ("beta_vicreg=0.01", 1), ("beta_vicreg=0.01", 2)]
    assert {r["status"] for r in table} == {"COMPLETED"}
    assert all(r["mlflow_run_id"] for r in table) and all(r["knn_target"] is not None for r in table)


def test_asha_stops_trials_and_the_study_finishes(tmp_path, monkeypatch):
    from cjepa.sweep import Study
    from cjepa.sweep.runner import run_study

    monkeypatch.chdir(tmp_path)  # the local Ray: the resume's above when run with it, else a new one
    tiny = str(Path(__file__).with_name("tiny_study.yaml"))
    study = Study(name="tiny_asha", base=tiny, overrides=("run.epochs=3", *SMALL_STUDY),
                  factors={"loss.beta_vicreg": [0.0, 1e-4, 1e-2, 1e-1]}, seeds=(0,), scheduler="asha",
                  grace_period=1, metric="loss", mode="min", max_concurrent=2)
    # The total loss, not kNN: it orders these arms every time (beta_vicreg x the VICReg terms), while
    # the tiny model's 200-image kNN ties across arms on some CPUs (0.41, 0.41, 0.405, 0.4 on the
    # VM of 2026-12-07), leaving ASHA nothing to cut.
    result = run_study(study, storage=str(tmp_path / "results"), mlflow=False)
    rows = pq.read_table(result.table).to_pylist()
    final = {}
    for r in rows:
        final[r["arm"]] = r if r["epoch"] >= final.get(r["arm"], {"epoch": -1})["epoch"] else final[r["arm"]]
    assert len(final) == 4
    statuses = sorted(r["status"] for r in final.values())
    assert "STOPPED" in statuses and "COMPLETED" in statuses, statuses
    stopped = [r for r in final.values() if r["status"] == "STOPPED"]
    assert all(r["epoch"] < 3 and r["stop_reason"].startswith("asha") for r in stopped)
    import ray

    total = ray.cluster_resources()["CPU"]
    deadline = time.time() + 60
    while ray.available_resources().get("CPU", 0) < total and time.time() < deadline:
        time.sleep(1)
    assert ray.available_resources().get("CPU", 0) == pytest.approx(total)  # every trial's resources released
