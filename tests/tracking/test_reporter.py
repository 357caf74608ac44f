"""MLflowReporter against a real SQLite store: one run per training run, one value per epoch, across
stops, crashes and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from cjepa.config import Config, load_config
from cjepa.engine import JsonlReporter, Reporter, train
from cjepa.errors import TrackingError
from cjepa.tracking import MLflowReporter
from tests.conftest import tiny_overrides

EVAL = ["eval.every=1", "eval.train_samples=300", "eval.test_samples=200", "eval.linear_epochs=10"]
EPOCH_METRICS = ["loss", "loss_jepa", "vicreg_var", "knn_target", "linear_target", "target_eff_rank",
                 "raw_knn_acc"]
TIMING = {"img_per_s", "epoch_time_s", "eval_time_s", "train_cpu_min"}  # wall-clock: differ between any two runs


class Crash(Exception):
    pass


class CrashOnEpoch(Reporter):
    """Raises in on_epoch, i.e. after the reporters before it logged and before the checkpoint."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        if epoch == self.epoch:
            raise Crash(f"simulated crash in epoch {epoch}")


def _cfg(root: Path, name: str, *extra: str) -> Config:
    return load_config(None, tiny_overrides(root / name, *EVAL, *extra))


def _train(uri: str, cfg: Config, *more: Reporter, **kw) -> MLflowReporter:
    rep = MLflowReporter(cfg, uri, experiment="test", **kw)
    train(cfg, [JsonlReporter(), rep, *more])
    return rep


def _steps(client: MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    return root, uri, MlflowClient(uri)


@pytest.fixture(scope="module")
def full(store):
    """One uninterrupted run, nested under a parent run (as a sweep trial would be)."""
    root, uri, client = store
    parent = client.create_run(client.create_experiment("parents"), run_name="sweep").info.run_id
    rep = _train(uri, _cfg(root, "full"), parent_run_id=parent, tags={"arm": "beta_1e-3"})
    return rep, client.get_run(rep.run_id), parent


@pytest.mark.integration
def test_params_tags_and_status(full):
    rep, run, _ = full
    assert run.info.status == "FINISHED" and run.info.run_name == "full"
    assert run.data.params["loss.beta_vicreg"] == "0.001"
    assert run.data.params["mask.target_scale"] == "[0.1, 0.15]"
    tags = run.data.tags
    assert tags["method"] == "cjepa" and tags["vicreg_mode"] == "pred_blocks" and tags["seed"] == "0"
    assert tags["config_digest"] == rep.cfg.digest() and tags["arm"] == "beta_1e-3"
    assert len(tags["git_commit"]) == 40 or tags["git_commit"] == "unknown"


@pytest.mark.integration
def test_one_value_per_epoch(full, store):
    rep, run, _ = full
    client = store[2]
    for key in EPOCH_METRICS:
        assert [s for s, _ in _steps(client, rep.run_id, key)] == [1, 2], key
    jsonl = [json.loads(line) for line in (Path(rep.cfg.run.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert run.data.metrics["loss"] == jsonl[-1]["loss"]


@pytest.mark.integration
def test_artifacts(full, store):
    rep, _, _ = full
    names = {f.path for f in store[2].list_artifacts(rep.run_id)}
    assert {"config.yaml", "masks.png", "curves.png"} <= names
    root = store[0]
    assert (root / "mlartifacts" / "test" / rep.run_id / "artifacts" / "curves.png").stat().st_size > 10_000


@pytest.mark.integration
def test_nested_under_parent(full):
    _, run, parent = full
    assert run.data.tags["mlflow.parentRunId"] == parent


@pytest.mark.integration
def test_stop_crash_resume_is_one_run_with_exact_values(full, store):
    """max_steps stop mid-epoch 2 -> crash after epoch 2 was logged but before its checkpoint ->
    resume: one run, steps exactly [1, 2], epoch 2 re-trained but not logged twice, values equal to
    the uninterrupted run's."""
    root, uri, client = store
    first = _train(uri, _cfg(root, "resumed", "run.max_steps=30"))  # 23 steps per epoch
    run_id = first.run_id
    assert client.get_run(run_id).info.status == "RUNNING"  # stopped, will be resumed
    assert [s for s, _ in _steps(client, run_id, "loss")] == [1]

    with pytest.raises(Crash):
        _train(uri, _cfg(root, "resumed"), CrashOnEpoch(2))
    assert [s for s, _ in _steps(client, run_id, "loss")] == [1, 2]  # logged, then the crash

    last = _train(uri, _cfg(root, "resumed"))
    assert last.run_id == run_id and last.skipped_epochs == [2]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["param_changed.run.max_steps"] == "0" and run.data.params["run.max_steps"] == "30"
    assert len(client.search_runs([run.info.experiment_id], "tags.mlflow.runName = 'resumed'")) == 1
    full_id = full[0].run_id
    for key in sorted(set(run.data.metrics) - TIMING):
        got = _steps(client, run_id, key)
        assert [s for s, _ in got] == [1, 2], key
        assert got == _steps(client, full_id, key), key


def test_new_run_for_old_checkpoint_backfills_from_jsonl(store, tmp_path):
    """A checkpoint whose MLflow run is unknown here gets a new run whose history starts at epoch 1."""
    uri = store[1]
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps({"epoch": e, "loss": 1.0 / e}) + "\n"
                                                   for e in (1, 2, 3)))
    rep = MLflowReporter(_cfg(tmp_path, "old"), uri, experiment="test")
    extra = {"mlflow_run_id": "0" * 32}  # e.g. trained against another store: that run is not here
    rep.on_start(run_dir, 2, extra)  # the checkpoint holds 2 epochs; epoch 3's line is stale
    assert extra["mlflow_run_id"] == rep.run_id != "0" * 32
    assert store[2].get_run(rep.run_id).data.tags["cjepa.previous_run_id"] == "0" * 32
    assert _steps(store[2], rep.run_id, "loss") == [(1, 1.0), (2, 0.5)]
    rep.on_epoch(2, {"loss": 9.0})  # already there: skipped
    rep.on_epoch(3, {"loss": 0.25, "nan_metric": float("nan")} | {f"m{i}": float(i) for i in range(1500)})
    assert _steps(store[2], rep.run_id, "loss") == [(1, 1.0), (2, 0.5), (3, 0.25)]
    assert _steps(store[2], rep.run_id, "m1499") == [(3, 1499.0)]  # > 1000 metrics: chunked
    assert "nan_metric" not in store[2].get_run(rep.run_id).data.metrics


def test_logging_error_raises_tracking_error(store, tmp_path):
    rep = MLflowReporter(_cfg(tmp_path, "bad"), store[1], experiment="test")
    rep.on_start(tmp_path / "bad", 0, {})
    with pytest.raises(TrackingError) as info:
        rep.on_epoch(1, {"loss": 1.0, "bad key!?": 2.0})  # MLflow rejects the key
    assert rep.run_id in str(info.value)
