"""A study under load, small (issue 27, item 4): tens of tiny trials, 2 at a time, on a real local
Ray with a real sqlite MLflow store; the driver's whole process group is SIGKILLed at a seeded
point after some trials finished, then ``--resume`` finishes the study.

Every trial must then be in ``results.parquet`` exactly once, MLflow must hold one parent and
exactly one FINISHED child run per trial (one value per epoch), and no trial that Tune had
recorded as finished before the kill may start again. The study and the driver are those of
``bench/study_load.py`` (its 200-trial figures: docs/study_load.md), so the bench cannot rot.

One local Ray at a time (test_sweep_ray.py): the in-process Ray of earlier modules is shut down
first; the driver processes start and end their own.
"""

import random
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from cjepa.benchmarking.trials import lines
from cjepa.sweep.naming import trial_dir_name
from tests.bench.scripts import load_script

study_load = load_script("study_load")  # bench/ is no package: the script loaded from its file

pytestmark = pytest.mark.integration  # a study on a local Ray, killed and resumed

TRIALS = 20  # 2 arms x 10 seeds


@pytest.fixture(autouse=True, scope="module")
def _one_local_ray():
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


def _log(work: Path) -> str:
    return "\n".join((work / name).read_text()[-2000:] for name in ("driver.log", "driver-resume.log")
                     if (work / name).exists())


def test_a_killed_study_of_20_trials_resumes_with_every_trial_once(tmp_path, monkeypatch):
    # Tune saves its experiment state every >= 10 s by default; trials in reused actors end every ~1-2 s, so
    # the kill could come before any save recorded a finished trial (then the resume re-runs every trial and
    # "finished before the kill: never again" checks nothing). Every 2 s: the trials that ended just before
    # the kill (within half a second) are still unrecorded, the earlier ones recorded.
    monkeypatch.setenv("TUNE_GLOBAL_CHECKPOINT_S", "2")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.search_experiments()  # create the store's tables now: two processes migrating at once race
    study_dir = tmp_path / "results" / study_load.NAME
    rng = random.Random(27)
    # After the k-th trial end, within half a second: Tune saves its experiment state every 2 s here, so
    # the trials that just ended are most likely finished (exported, MLflow FINISHED) but not recorded as
    # such; before the fix in cjepa/sweep/trial_actor.py the resume re-trained them in a second MLflow run.
    kill_at = (rng.randint(4, TRIALS // 2), round(rng.uniform(0, 0.5), 2))
    rc, _, after = study_load.run_driver(tmp_path, TRIALS, False, kill_at, time.time())
    assert rc == -9, f"the driver was not killed (exit {rc}):\n{_log(tmp_path)}"
    # No trial runs on in a process of the killed driver: Ray's workers leave with their raylet. (A worker
    # the raylet was still starting, importing in a session of its own, may take ~30 s to notice.)
    actors = [p for p in after["alive_after_5s"] if "ImplicitFunc" in p or "run_trial" in p]
    assert not actors, f"trial actors of the killed driver outlived it by 5 s: {after}"
    finished = {t for t, s in study_load.tune_status(study_dir).items() if s == "TERMINATED"}
    assert finished, "no trial recorded finished in Tune's state before the kill"
    assert len(finished) < TRIALS

    rc, _, _ = study_load.run_driver(tmp_path, TRIALS, True, None, time.time())
    assert rc == 0, _log(tmp_path)

    expected = sorted((f"beta_vicreg={a}", s) for a in study_load.ARMS for s in range(TRIALS // 2))
    rows = pq.read_table(study_dir / "results.parquet").to_pylist()
    assert sorted((r["arm"], r["seed"]) for r in rows) == expected  # each trial once (1 epoch: one row)
    assert {(r["status"], r["epoch"]) for r in rows} == {("COMPLETED", 1)}
    assert all(r["knn_target"] is not None for r in rows)

    runs = client.search_runs([client.get_experiment_by_name(study_load.NAME).experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("cjepa.role") == "study"]
    children = [r for r in runs if "arm" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    per_trial = Counter((r.data.tags["arm"], int(r.data.tags["seed"])) for r in children)
    assert sorted(per_trial) == expected and set(per_trial.values()) == {1}, per_trial.most_common(3)
    ids = {(r.data.tags["arm"], int(r.data.tags["seed"])): r.info.run_id for r in children}
    assert all(r["mlflow_run_id"] == ids[(r["arm"], r["seed"])] for r in rows)
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1]  # never re-trained

    starts = Counter(line["trial"] for line in lines(study_dir / "trial_starts.jsonl"))
    assert set(starts) == {trial_dir_name(study_load.NAME, a, s) for a, s in expected}
    assert {t: starts[t] for t in finished if starts[t] != 1} == {}  # finished before the kill: never again
