"""A worker SIGKILLed mid-epoch: Ray Train restarts the group from the last checkpoint and the run
ends exactly where an uninterrupted one does, with exactly one MLflow value per epoch.

Rank 1 kills its own process at step 13 (epoch 2 of 2, 10 steps per epoch on 640 of the digits)
once (a marker file says it already did). FailureConfig(max_failures=1) restarts both workers; each
copies the epoch-1 checkpoint from Ray storage and the engine resumes at step 10. The engine's resume is
bit-exact, and with the same world size gloo reduces in the same order, so the comparison with
an uninterrupted 2-worker run is exact (timings excepted).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import ray
import ray.cloudpickle
import torch

from cjepa.config import load_config
from cjepa.distributed import fit_distributed
from cjepa.engine import Reporter, load_checkpoint, read_metrics
from tests.conftest import tiny_overrides

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this module

# 640 training images (SUBSET), batch 64: 10 steps per epoch (TINY's 1500 digits: 23), so the kill comes 3 steps
# into epoch 2, after the epoch-1 checkpoint (which RayReporter waits to be committed before training on).
SUBSET = "data.train_subset=640"
STEPS_PER_EPOCH = 10
KILL_STEP = STEPS_PER_EPOCH + 3
TIMING = {"img_per_s", "epoch_time_s", "eval_time_s", "train_cpu_min"}


class KillOnce(Reporter):
    """On rank 1, SIGKILL this process at ``KILL_STEP`` unless the marker says it happened; every
    rank appends ``(rank, start_epoch)`` to a log so the test sees the restart."""

    def __init__(self, rank: int, marker: Path, log: Path) -> None:
        self.rank, self.marker, self.log = rank, marker, log

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict) -> None:
        with self.log.open("a") as fh:
            fh.write(json.dumps([self.rank, start_epoch]) + "\n")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.rank == 1 and step == KILL_STEP and not self.marker.exists():
            self.marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)


def killer(out_dir: str):
    return lambda rank: [KillOnce(rank, Path(out_dir) / "killed", Path(out_dir) / "starts.jsonl")]


@pytest.fixture(scope="module")
def ray_local():
    if not ray.is_initialized():  # shared with later modules; test_multinode replaces it
        ray.init(num_cpus=4)
    yield


def _cfg(run_dir: Path):
    return load_config(None, tiny_overrides(run_dir, "run.log_every=1", "eval.every=2", SUBSET,
                                            "eval.train_samples=200", "eval.test_samples=200", "eval.linear_epochs=2",
                                            "eval.raw_baseline=false", "eval.random_baseline=false"))


@pytest.mark.integration
def test_sigkill_mid_epoch_resumes_exactly_with_one_mlflow_value_per_epoch(ray_local, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    faulty, straight = _cfg(tmp_path / "faulty"), _cfg(tmp_path / "straight")
    with ThreadPoolExecutor(1) as pool:  # the uninterrupted reference trains alongside (4 Ray CPUs)
        pending = pool.submit(fit_distributed, straight, num_workers=2, storage_path=str(tmp_path / "ray"))
        result = fit_distributed(faulty, num_workers=2, storage_path=str(tmp_path / "ray"), max_failures=1,
                                 tracking={"tracking_uri": uri, "experiment": "fault"},
                                 reporters=killer(str(tmp_path)))
        reference = pending.result()
    assert (tmp_path / "killed").exists(), "the kill hook never fired"
    starts = sorted(tuple(json.loads(line)) for line in (tmp_path / "starts.jsonl").read_text().splitlines())
    assert starts == [(0, 0), (0, 1), (1, 0), (1, 1)], "both ranks restarted from the epoch-1 checkpoint"

    assert result.metrics["epoch"] == reference.metrics["epoch"] == 2.0
    assert "knn_target" in result.metrics  # rank 0's evaluation reached Ray
    clean = [{k: v for k, v in m.items() if k not in TIMING} for m in (result.metrics, reference.metrics)]
    assert clean[0] == clean[1]
    a = load_checkpoint(Path(faulty.run.output_dir) / "checkpoint.pt")
    b = load_checkpoint(Path(straight.run.output_dir) / "checkpoint.pt")
    assert a["step"] == b["step"] == 2 * STEPS_PER_EPOCH
    for name, w in b["online"].items():
        assert torch.equal(a["online"][name], w), name
    assert [m["epoch"] for m in read_metrics(faulty.run.output_dir)] == [1, 2]  # exported, one line per epoch

    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("fault").experiment_id])  # no orphan run
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "faulty"  # named after run.output_dir, not the worker-local dir
    assert run.data.params["run.output_dir"] == str(tmp_path / "faulty")
    assert run.data.metrics, "nothing was logged"
    records = {int(r["epoch"]): r for r in read_metrics(faulty.run.output_dir)}
    for key in run.data.metrics:
        steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert steps == [e for e, r in records.items() if r.get(key) is not None], (key, steps)  # once per epoch
        if key not in TIMING:
            assert run.data.metrics[key] == pytest.approx(records[2][key], rel=1e-12), key


@pytest.mark.integration
def test_cli_workers_then_a_rerun_resumes_from_ray_storage(ray_local, tmp_path, monkeypatch, capsys):
    """``cjepa train --workers 2``: MLflow on rank 0, outputs exported to run.output_dir. Running
    the same config again finds the experiment by its deterministic name (nothing left to train)
    and continues the same MLflow run. The command runs through the CLI's main in this process (no
    interpreter to start); a ``cjepa train --workers`` subprocess that connects by RAY_ADDRESS is
    tested in test_imagenet_stream.py."""
    from mlflow.tracking import MlflowClient

    from cjepa.cli import main

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = tiny_overrides(tmp_path / "cli", "run.epochs=1", SUBSET)
    monkeypatch.chdir(tmp_path)  # as the subprocess's cwd was
    monkeypatch.setenv("RAY_ADDRESS", ray.get_runtime_context().gcs_address)  # this module's cluster, as before
    capsys.readouterr()
    code = main(["train", "--workers", "2", "--storage", str(tmp_path / "ray"), "--tracking-uri", uri,
                 "--experiment", "cli", *overrides])
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr[-3000:]
    assert "finished 1 epoch(s) on 2 workers" in stdout, stdout[-2000:]
    assert [m["epoch"] for m in read_metrics(tmp_path / "cli")] == [1]
    assert load_checkpoint(tmp_path / "cli" / "checkpoint.pt")["step"] == STEPS_PER_EPOCH

    starts = tmp_path / "starts.jsonl"
    from cjepa.config.presets import resolve_config_path

    cli_cfg = load_config(resolve_config_path(None), overrides)  # what `cjepa train` builds: the default preset
    again = fit_distributed(cli_cfg, num_workers=2, storage_path=str(tmp_path / "ray"),
                            tracking={"tracking_uri": uri, "experiment": "cli"}, reporters=killer(str(tmp_path)))
    assert sorted(json.loads(line)[1] for line in starts.read_text().splitlines()) == [1, 1]  # resumed
    assert again.metrics["epoch"] == 1.0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("cli").experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1]


def test_experiment_name_is_stable_and_keyed_on_what_a_resume_keeps(tiny_cfg):
    from cjepa.distributed import experiment_name

    base = experiment_name(tiny_cfg())
    assert base == experiment_name(tiny_cfg()) and base.startswith("run-")
    assert experiment_name(tiny_cfg("run.log_every=7", "eval.every=1", "data.num_workers=2")) == base
    assert experiment_name(tiny_cfg("run.seed=1")) != base
    assert experiment_name(tiny_cfg("loss.beta_vicreg=0")) != base


class DamageLatestThenKill(Reporter):
    """Once, at ``step``: wait until Ray has registered the newest checkpoint folder, cut its
    ``checkpoint.pt`` in half (a torn upload, a bad disk block), then SIGKILL this worker."""

    def __init__(self, step: int, storage: Path, marker: Path, log: Path) -> None:
        self.step, self.storage, self.marker, self.log = step, storage, marker, log

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict) -> None:
        set_aside = (Path(run_dir) / "checkpoint.damaged.pt").exists()  # the engine's fallback moved it there
        with self.log.open("a") as fh:
            fh.write(json.dumps([start_epoch, set_aside]) + "\n")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        import time

        if step != self.step or self.marker.exists():
            return
        time.sleep(5)  # the controller registers a reported checkpoint at its next poll (~2 s)
        newest = max(self.storage.glob("*/epoch_*/checkpoint.pt"), key=lambda p: p.parent.name)
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
        self.marker.write_text(newest.parent.name)
        os.kill(os.getpid(), signal.SIGKILL)


def damager(step: int, storage: str, out_dir: str):
    return lambda rank: [DamageLatestThenKill(step, Path(storage), Path(out_dir) / "damaged",
                                              Path(out_dir) / "starts.jsonl")]


@pytest.mark.integration
def test_damaged_latest_ray_checkpoint_resumes_from_the_previous_one_exactly(ray_local, tmp_path):
    """Epoch 2's checkpoint in Ray storage is torn, then the worker dies in epoch 3: the restarted
    worker finds it unreadable and resumes from epoch 1's (fetched from Ray storage as
    checkpoint.prev.pt), never from epoch 0, and ends equal to an uninterrupted run."""
    faulty = load_config(None, tiny_overrides(tmp_path / "faulty", "run.epochs=3", "run.log_every=1", SUBSET))
    straight = load_config(None, tiny_overrides(tmp_path / "straight", "run.epochs=3", SUBSET))
    storage = tmp_path / "ray"
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(fit_distributed, straight, num_workers=1, storage_path=str(tmp_path / "ray_ref"))
        fit_distributed(faulty, num_workers=1, storage_path=str(storage), max_failures=1,
                        reporters=damager(2 * STEPS_PER_EPOCH + 3, str(storage), str(tmp_path)))  # in epoch 3
        pending.result()
    assert (tmp_path / "damaged").read_text() == "epoch_0002", "the damage hook did not fire on epoch 2's folder"
    starts = [tuple(json.loads(line)) for line in (tmp_path / "starts.jsonl").read_text().splitlines()]
    assert starts == [(0, False), (1, True)], starts  # epoch 2's was unreadable: resumed from epoch 1's, not 0
    a = load_checkpoint(Path(faulty.run.output_dir) / "checkpoint.pt")
    b = load_checkpoint(Path(straight.run.output_dir) / "checkpoint.pt")
    assert a["step"] == b["step"] == 3 * STEPS_PER_EPOCH
    for key in ("online", "target"):
        for name, w in b[key].items():
            assert torch.equal(a[key][name], w), (key, name)
    assert [m["epoch"] for m in read_metrics(faulty.run.output_dir)] == [1, 2, 3]
