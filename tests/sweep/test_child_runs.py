"""The results table's run ids come from every page of MLflow's search, on a real sqlite store."""

from __future__ import annotations

from cjepa.sweep import Study
from cjepa.sweep.child_runs import child_run_ids
from cjepa.sweep.plan import Tracking


def test_every_page_of_child_runs_is_read(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("s", artifact_location=str(tmp_path / "artifacts"))
    made = {}
    for seed in range(5):
        run = client.create_run(exp, tags={"study": "s", "arm": "beta_vicreg=0.1", "seed": str(seed)})
        made[("beta_vicreg=0.1", str(seed))] = run.info.run_id
    client.create_run(exp, tags={"study": "s", "cjepa.role": "study"})  # the parent: no arm, no seed
    client.create_run(exp, tags={"study": "other", "arm": "a", "seed": "0"})  # another study's run
    study = Study(name="s", seeds=(0,))
    assert child_run_ids(Tracking(uri, "s"), study, page=2) == made  # 6 matching runs: 3 pages of 2
    assert child_run_ids(Tracking(uri, "s"), study) == made
    assert child_run_ids(None, study) == {}
    assert child_run_ids(Tracking(uri, "s"), Study(name="absent", seeds=(0,))) == {}
