"""The two places a trial can train (``Study.trial_runner``) give the same study, on a real local
Ray with a real MLflow store: in Tune's trial actor (the default for one CPU worker) and in a Ray
Train worker. The engine is the same and deterministic, so every per-epoch loss and probe
accuracy must agree; what differs is only what starts around it.

Also checked for the actor path: the second trial ran in the first one's process (Tune reuses the
trial actor) and still trained the same numbers, no TorchTrainer ran, each trial's files are exported to
``run.output_dir`` and its scratch run dir is removed, and its MLflow child run is FINISHED with
one value per epoch; and under both runners the results table names each trial's final checkpoint.

``timeout 900 python -m pytest -q tests/sweep/test_trial_runner_ray.py`` (starts a local Ray:
no other Ray may run on the machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import SMALL_STUDY

pytestmark = [pytest.mark.integration]

TINY = str(Path(__file__).with_name("tiny_study.yaml"))
METRICS = ("loss", "loss_jepa", "knn_target", "linear_target", "knn_context", "linear_context")


@pytest.fixture(autouse=True, scope="module")
def _one_local_ray():
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


def _run(tmp_path: Path, runner: str, concurrent: int = 2):
    from cjepa.sweep import Study
    from cjepa.sweep.runner import run_study

    uri = f"sqlite:///{tmp_path / f'{runner}.db'}"
    study = Study(name=f"runner_{runner}", base=TINY, overrides=SMALL_STUDY,  # 8 steps per epoch, not 20
                  factors={"loss.beta_vicreg": [0.0, 0.01]}, seeds=(0,), max_concurrent=concurrent,
                  trial_runner=runner)
    result = run_study(study, storage=str(tmp_path / runner), tracking_uri=uri)
    rows = sorted(pq.read_table(result.table).to_pylist(), key=lambda r: (r["arm"], r["epoch"]))
    return study, result, rows, uri


def test_actor_and_ray_train_trials_train_the_same_numbers(tmp_path):
    from mlflow.tracking import MlflowClient

    from cjepa.distributed.ray_trainer import worker_run_dir
    from cjepa.sweep.naming import trial_dir_name

    study, result, actor, uri = _run(tmp_path, "actor", concurrent=1)  # one after the other: one actor
    _, _, train, _ = _run(tmp_path, "ray_train")

    # Tune reused the first trial's actor for the second (reuses_trial_actors), and the numbers below still
    # equal those of trials that each trained in a fresh Ray Train worker: nothing of a trial outlives it.
    starts = [json.loads(line) for line in (result.study_dir / "trial_starts.jsonl").read_text().splitlines()]
    assert len(starts) == 2 and starts[0]["pid"] == starts[1]["pid"], starts

    assert [(r["arm"], r["epoch"], r["status"]) for r in actor] == [(r["arm"], r["epoch"], r["status"]) for r in train]
    assert {r["status"] for r in actor} == {"COMPLETED"} and len(actor) == 4
    for a, t in zip(actor, train):
        for key in METRICS:
            assert a[key] == pytest.approx(t[key], rel=1e-5, abs=1e-6), (a["arm"], a["epoch"], key, a[key], t[key])
    assert not (tmp_path / "actor" / study.name / "train").exists()  # no TorchTrainer ran
    for rows in (actor, train):  # the report's masks and attention maps load the final checkpoint
        finals = [r["checkpoint_path"] for r in rows if r["epoch"] == 2]
        assert len(finals) == 2 and all(Path(p).is_file() or (Path(p) / "checkpoint.pt").is_file() for p in finals)

    for arm in ("beta_vicreg=0.0", "beta_vicreg=0.01"):
        name = trial_dir_name(study.name, arm, 0)
        out = result.study_dir / "runs" / name
        assert {"checkpoint.pt", "metrics.jsonl", "config.yaml"} <= {p.name for p in out.iterdir()}
        assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
        assert not worker_run_dir(name, 0).exists()  # the scratch dir went with the finished trial

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(study.name)
    children = client.search_runs([exp.experiment_id], "tags.arm != ''")
    assert sorted(c.info.status for c in children) == ["FINISHED", "FINISHED"]
    for child in children:
        assert [m.step for m in client.get_metric_history(child.info.run_id, "knn_target")] == [1, 2]
