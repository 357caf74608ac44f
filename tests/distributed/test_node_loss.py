"""Node loss (issue 27, item 5): a study's worker node dies mid-trial; the study finishes on the
node that is left, the lost trial resumes from its checkpoint, nothing is lost or duplicated.

The cluster: two raylets on this machine, ``ray.cluster_utils.Cluster`` (a head, then a second
node joining it by address). It starts the same processes as ``ray start --head`` /
``ray start --address`` (``ray._private.node.Node``: GCS, raylet, dashboard and agents), but each
one is a child of this test with a known pid, so the kill hits exactly one node's processes and
the cleanup cannot miss one (``ray start`` daemonises them, and ``ray stop`` is machine-wide);
there is no token file, port or temp dir to manage either. The study's driver is a separate
process that connects by ``--address``, as on a real cluster, and lands on the head (Ray puts
a driver on the head when several nodes share its host).

Placement: the head and the worker node have 1 CPU each and the study runs its 2 trials at once
(1 CPU each, trained in their Tune actors), so exactly one trial trains on each node. Once the
trial on the worker node has checkpointed (its second checkpoint folder appears in Tune's storage,
a local path: both nodes share this host), its raylet, its workers and its agents are SIGKILLed at
one instant. Tune sees the actor die, counts a failure (``Study.max_failures``, default 3) and
restarts the trial from its last checkpoint when the head's CPU is free again, i.e. on the
remaining node.

The two trials are twins (two named arms with the same settings and seed; this file is also the
study's driver script, like tests/sweep/study_driver.py), and training is exactly reproducible, so
the trial that lost its node must end value for value equal to the one that did not.

The default runner only (one CPU worker: the trial trains in its Tune actor). A one-off run of the
same kill with ``--trial-runner ray_train`` also finished with nothing lost (resumed after epoch 2);
it is not a case here because its 0-CPU trial and Train controller actors land on either node, so
one kill can hit both trials and the test could not say in advance which trials it lost.

~70 s on 2 cores (cluster ~10 s, study ~40 s); every wait has a deadline (< 5 min in all).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # a two-node local Ray cluster, a study driver process

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "tests" / "sweep" / "tiny_study.yaml")
STUDY = "node_loss"
# The kill comes after epoch 1's checkpoint is registered and before epoch 3 (the last, with the test-split
# probes) has ended: the trial resumes after epoch 1 or 2 with at least epoch 3 left to train. A 4th epoch
# would widen no margin: a kill after epoch 3's checkpoint would then resume from 3, which is refused too.
EPOCHS = 3
TWINS = ("twin-a", "twin-b")
TIMING = {"img_per_s", "epoch_time_s", "eval_time_s", "train_cpu_min"}
DRIVER_DEADLINE_S = 240  # the study, from the driver's start to its summary (~55 s here)


def make_study(full: bool):
    """Two trials that must train the same numbers: two named arms with one setting, one seed."""
    from cjepa.sweep import Study

    return Study(name=STUDY, base=TINY, overrides=(f"run.epochs={EPOCHS}",),
                 arms={twin: {"loss.beta_vicreg": 0.01} for twin in TWINS}, seeds=(0,), max_concurrent=2,
                 cpus_per_worker=1.0)


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (a raylet's workers and agents, and theirs)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _trials_under(raylet: int) -> dict[int, str]:
    """pid -> Tune trial folder name of each trial actor the raylet runs (Tune runs a trial in its
    own working dir, ``.../working_dirs/<trial dir name>``)."""
    out = {}
    for pid in _descendants(raylet):
        try:
            if "ImplicitFunc" in Path(f"/proc/{pid}/cmdline").read_text():
                out[pid] = Path(os.readlink(f"/proc/{pid}/cwd")).name
        except OSError:
            continue
    return out


def _raylet_pid(node) -> int:
    return node.all_processes["raylet"][0].process.pid


def _kill_node(cluster, node) -> list[int]:
    """SIGKILL every process of ``node`` at one instant (no graceful step), then let the Cluster
    reap them; returns the pids killed."""
    own = [info.process.pid for infos in node.all_processes.values() for info in infos]
    victims = [*_descendants(_raylet_pid(node)), *own]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError):  # gone already (a worker that just exited)
            os.kill(pid, signal.SIGKILL)
    cluster.remove_node(node, allow_graceful=False)  # waits for them; asserts none is left alive
    return victims


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


def test_a_study_survives_losing_a_worker_node_mid_trial(tmp_path, monkeypatch):
    import ray
    from mlflow.tracking import MlflowClient
    from ray.cluster_utils import Cluster

    storage, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.search_experiments()  # create the store's tables now: processes migrating at once race
    ray.shutdown()  # an earlier module's in-process Ray: one Ray on the machine at a time
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the raylets' workers (the trials) import this cjepa
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": True})
    proc = None
    log_path = tmp_path / "driver.log"
    try:
        worker = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        head_raylet, worker_raylet = _raylet_pid(cluster.head_node), _raylet_pid(worker)
        cmd = [sys.executable, __file__, "--storage", str(storage), "--tracking-uri", uri,
               "--address", cluster.address]
        with log_path.open("w") as log:
            proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True, stdout=log,
                                    stderr=subprocess.STDOUT)
        deadline = time.monotonic() + DRIVER_DEADLINE_S

        # 1. wait for the trial on the worker node to checkpoint epoch 2, then kill that node. Why
        # epoch 2: its folder appearing means epoch 1's report has returned, i.e. Tune's driver has
        # registered epoch 1's checkpoint (a function trainable goes on only when its result was
        # taken); epoch 2's may still be in flight, so the restart begins after epoch 1 or 2.
        lost = None
        while lost is None:
            assert proc.poll() is None, f"the driver ended before the kill:\n{_tail(log_path)}"
            assert time.monotonic() < deadline, f"no checkpoint on the worker node in time:\n{_tail(log_path)}"
            on_worker = set(_trials_under(worker_raylet).values())
            if any(len(list((storage / STUDY / trial).glob("checkpoint_*"))) >= 2 for trial in on_worker):
                (lost,) = on_worker
                _kill_node(cluster, worker)
            time.sleep(0.5)

        # 2. the study goes on without that node: the lost trial trains again under the head's raylet
        resumed_on_head = False
        while proc.poll() is None:
            assert time.monotonic() < deadline, f"the study did not finish in time:\n{_tail(log_path)}"
            resumed_on_head = resumed_on_head or lost in _trials_under(head_raylet).values()
            time.sleep(0.5)
        assert proc.returncode == 0, _tail(log_path)
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and anything it started
            proc.wait()
        cluster.shutdown()  # every Ray process this test started

    out = log_path.read_text()
    assert all(f"| {twin} |" in out for twin in TWINS), out[-3000:]  # the study's summary
    assert resumed_on_head, f"{lost} never trained on the head after its node was lost"
    _assert_nothing_lost_or_duplicated(storage / STUDY, client, lost)


def _assert_nothing_lost_or_duplicated(study_dir: Path, client, lost: str) -> None:
    """What the study left, ``lost`` being the Tune trial folder of the trial whose node died."""
    import pyarrow.parquet as pq

    lost_arm = lost.removesuffix("-s0")  # Tune's trial folder: "<arm>-s<seed>"
    (kept,) = set(TWINS) - {lost_arm}

    # Tune: one failure of the lost trial (its node), retried; the twin never failed nor restarted
    errors = (study_dir / lost / "error.txt").read_text()
    assert "Failure # 1" in errors and "Failure # 2" not in errors, errors
    assert not (study_dir / f"{kept}-s0" / "error.txt").exists()
    starts = [json.loads(line)["trial"] for line in (study_dir / "trial_starts.jsonl").read_text().splitlines()]
    assert sorted(starts) == sorted([f"{STUDY}-{kept}-s0", f"{STUDY}-{lost_arm}-s0", f"{STUDY}-{lost_arm}-s0"])

    # results.parquet: every trial COMPLETED, one row per epoch, the lost trial equal to its twin
    rows = sorted(pq.read_table(study_dir / "results.parquet").to_pylist(), key=lambda r: (r["arm"], r["epoch"]))
    assert [(r["arm"], r["epoch"]) for r in rows] == [(t, e) for t in sorted(TWINS) for e in range(1, EPOCHS + 1)]
    assert {r["status"] for r in rows} == {"COMPLETED"}
    by_arm = {t: [r for r in rows if r["arm"] == t] for t in TWINS}
    for got, ref in zip(by_arm[lost_arm], by_arm[kept]):  # every number the engine measured, timings aside
        metrics = [k for k, v in ref.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and k not in TIMING | {"seed", "training_iteration"} and not k.startswith(("config.", "factor."))]
        assert {"loss", "knn_target"} <= set(metrics) and all(got.get(k) == ref[k] for k in metrics), (
            got["epoch"], {k: (got.get(k), ref[k]) for k in metrics if got.get(k) != ref[k]})
    lines = (study_dir / "runs" / f"{STUDY}-{lost_arm}-s0" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, EPOCHS + 1))

    # MLflow: one parent, one child per trial, FINISHED, every metric logged at the twin's steps
    # (each epoch, or the last for the test-split probes), once, with the twin's values; the
    # engine of the lost trial's last start resumed from a checkpoint, not from epoch 0
    exp = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("cjepa.role") == "study"]
    children = {r.data.tags["arm"]: r for r in runs if "arm" in r.data.tags}
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(children) == sorted(TWINS) and len(runs) == 3, [r.info.run_name for r in runs]
    assert children[lost_arm].data.tags["resumed_from_epoch"] in ("1", "2"), children[lost_arm].data.tags
    assert children[kept].data.tags["resumed_from_epoch"] == "0"
    for arm, run in children.items():
        assert run.info.status == "FINISHED", arm
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    assert {"loss", "knn_target"} <= set(children[kept].data.metrics)
    for key, value in children[kept].data.metrics.items():
        steps = sorted(m.step for m in client.get_metric_history(children[lost_arm].info.run_id, key))
        want = sorted(m.step for m in client.get_metric_history(children[kept].info.run_id, key))
        assert steps == want == sorted(set(want)), (key, steps, want)
        assert key not in ("loss", "knn_target") or steps == list(range(1, EPOCHS + 1)), (key, steps)
        if key not in TIMING:
            assert children[lost_arm].data.metrics[key] == value, key


if __name__ == "__main__":  # the study's driver (the test runs this file as a script)
    from cjepa.sweep.cli import main

    sys.exit(main(make_study, "the node-loss test's study: two twin trials"))
