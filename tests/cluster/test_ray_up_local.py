"""`ray up` for real (issue 15, item 0): Ray's local node provider over SSH to 127.0.0.1.

docs/cluster-local.yaml, rewritten by ``local_config.py`` for one machine, goes through the real
launcher: ``ray up`` (SSH to the private sshd of ``conftest.py``, rsync of the bootstrap config,
``ray start --head`` on the "node"), then a tiny study is submitted to that cluster through
``RAY_ADDRESS`` (4 arms x 1 seed x 1 epoch on digits), its MLflow runs and results table are checked,
and ``ray down`` must leave nothing of that cluster running (no process, no listening port).

Opt-in (``CJEPA_RUN_RAY_UP=1``): ``ray stop``, which ``ray up`` and ``ray down`` run on the node,
stops *every* Ray on the machine, so the test refuses to start while any other Ray runs here.
About 3-5 minutes on 2 cores. Needs root, openssh-server, rsync and netcat-openbsd (apt).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

if os.environ.get("CJEPA_RUN_RAY_UP") != "1" and not os.environ.get("CI"):
    pytest.skip("starts a real Ray cluster with `ray up`, whose `ray stop` stops every Ray on this machine: "
                "run with CJEPA_RUN_RAY_UP=1 (CI runs it) when no other Ray runs here", allow_module_level=True)

import pyarrow.parquet as pq  # noqa: E402  (after the opt-in skip: nothing heavy is imported without it)
from mlflow.tracking import MlflowClient  # noqa: E402

from tests.cluster.conftest import SshServer, free_port  # noqa: E402
from tests.cluster.local_config import LocalCluster, write_local_test_config  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.ray_pending]

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
STUDY = "vicreg_coeff"


def _study_arms() -> list[str]:
    """The main job's arms, from the script itself (its levels follow the CPU recipe)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(STUDY, ROOT / "sweeps" / f"{STUDY}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return sorted(module.make_study(False).arm_settings())


ARMS = _study_arms()
# The tests' tiny ViT on sklearn digits (tests/sweep/tiny_study.yaml), one epoch, on bench/study_load.py's budget
# (256 training images: 4 steps; a 100-image kNN bank and test split; a 2-epoch linear probe): what is checked
# (the cluster, the driver on it, MLflow parent and children, the table's rows, `ray down`) is not the trials' size.
TINY = ["data.dataset=digits", "data.train_subset=256", "data.val_samples=200",
        "model.img_size=16", "model.patch_size=2", "model.in_chans=1", "model.embed_dim=32", "model.depth=2",
        "model.num_heads=2", "model.pred_embed_dim=16", "model.pred_depth=1",
        "mask.num_targets=4", "mask.target_scale=[0.1,0.15]", "mask.min_keep=4", "optim.batch_size=64",
        "eval.every=1", "eval.train_samples=100", "eval.test_samples=100", "eval.linear_epochs=2", "run.epochs=1",
        "run.log_every=1000"]
BOOTSTRAP = [Path.home() / "ray_bootstrap_config.yaml", Path.home() / "ray_bootstrap_key.pem"]  # `ray up` writes them
# `ray down` runs a bare `ray stop` in the node's login shell (no cluster-config command wraps it): `ray`
# must be on that shell's PATH, as a real node's setup gives it. The test puts the venv there for its
# duration and restores ~/.bashrc after (saved with the files above).
BASHRC = Path.home() / ".bashrc"


def _procs() -> dict[int, tuple[str, str]]:
    """pid -> (comm, cmdline) of every process, from /proc."""
    out = {}
    for d in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            out[int(d.name)] = ((d / "comm").read_text().strip(),
                                (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return out


def _ray_daemons(marker: str | None = None) -> dict[int, str]:
    """raylet / gcs_server processes (of the cluster whose temp dir is ``marker``, or any)."""
    return {pid: cmd for pid, (comm, cmd) in _procs().items()
            if comm in ("raylet", "gcs_server") and (marker is None or marker in cmd)}


def _of_cluster(tmpdir: Path) -> dict[int, str]:
    """Every process whose command line names the cluster's private temp dir (raylet, GCS, dashboard,
    monitor, log monitor, Ray workers ...); nothing else on the machine names it."""
    me = os.getpid()
    return {pid: cmd for pid, (_, cmd) in _procs().items() if str(tmpdir) in cmd and pid != me}


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _run(cmd: list[str], log: Path, env: dict[str, str], timeout: int, cwd: Path = ROOT) -> int:
    with log.open("a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        return subprocess.run(cmd, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=timeout).returncode


def _tail(log: Path, n: int = 4000) -> str:
    return log.read_text()[-n:] if log.exists() else ""


@pytest.fixture
def no_other_ray() -> None:
    """Refuse (fail, with the pids) while another Ray runs: the node's `ray stop` would kill it."""
    if "ray" in sys.modules and sys.modules["ray"].is_initialized():
        sys.modules["ray"].shutdown()  # an in-process Ray of an earlier test module in this session
        time.sleep(3)
    others = _ray_daemons()
    if others:
        pytest.fail(f"another Ray runs on this machine (pids {sorted(others)}); `ray up`/`ray down` run `ray stop`, "
                    "which would stop it: run this test when it has finished")


def _study_runs_on_the_cluster(cluster: LocalCluster, tmpdir: Path, env: dict[str, str], log: Path,
                               tmp_path: Path) -> None:
    """The README's main job, its driver on the ray-up cluster: one MLflow parent, a FINISHED child per arm."""
    storage, uri = tmp_path / "results", f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.search_experiments()  # create the store's tables now: the driver and the trials migrating at once race
    study = [sys.executable, str(ROOT / "sweeps" / "vicreg_coeff.py"), "--seeds", "0", "--storage", str(storage),
             "--tracking-uri", uri, *TINY, f"data.cache_dir={tmp_path / 'cache'}"]
    rc = _run(study, log, {**env, "RAY_ADDRESS": cluster.address}, timeout=600, cwd=tmp_path)
    assert rc == 0, _tail(log)
    sessions = list((tmpdir / "ray").glob("session_*/logs/python-core-driver-*"))
    assert sessions, "the study's driver did not connect to the ray-up cluster"

    exp = client.get_experiment_by_name(STUDY)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("cjepa.role") == "study"]
    children = [r for r in runs if "arm" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["arm"] for r in children) == ARMS
    assert all(r.info.status == "FINISHED" for r in children)
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {parents[0].info.run_id}
    table = pq.read_table(storage / STUDY / "results.parquet").to_pylist()
    assert sorted((r["arm"], r["epoch"]) for r in table) == [(arm, 1) for arm in ARMS]
    assert {r["status"] for r in table} == {"COMPLETED"} and all(r["mlflow_run_id"] for r in table)


def test_ray_up_study_ray_down(no_other_ray: None, sshd: SshServer, tmp_path: Path) -> None:
    tmpdir = Path(tempfile.mkdtemp(prefix="cjr", dir="/tmp"))  # short: Ray's AF_UNIX socket paths live below it
    token = tmpdir / "auth_token"
    token.write_text(os.urandom(32).hex())  # the format of `ray get-auth-token --generate`, not in ~/.ray
    token.chmod(0o600)
    cluster = LocalCluster(ssh_port=sshd.port, key=sshd.key, tmpdir=tmpdir, token=token, gcs_port=free_port(),
                           dashboard_port=free_port(), object_manager_port=free_port(), metrics_port=free_port())
    config = write_local_test_config(cluster, tmp_path / "cluster-local-test.yaml")
    env = {**os.environ, **cluster.env()}
    env.pop("RAY_ADDRESS", None)
    log = tmp_path / "ray.log"
    saved = {p: p.read_bytes() if p.exists() else None for p in (*BOOTSTRAP, BASHRC)}
    up = False
    try:
        with BASHRC.open("a") as fh:
            fh.write(f"\nexport PATH={Path(RAY).parent}:$PATH  # cjepa ray-up test, removed after it\n")
        # The commands of the README's "Running on a cluster" section, on the generated config.
        up = True
        rc = _run([RAY, "up", "-y", "--no-config-cache", str(config)], log, env, timeout=300)
        assert rc == 0, _tail(log)
        assert _ray_daemons(str(tmpdir)), "ray up returned but no raylet/GCS of the cluster runs"
        assert _listening(cluster.gcs_port) and _listening(cluster.dashboard_port)
        remote_env = " ".join(f"{k}={v}" for k, v in cluster.env().items())  # `ray exec` passes no environment
        status = f"export {remote_env} && {RAY} status --address {cluster.address}"
        rc = _run([RAY, "exec", str(config), status], log, env, timeout=120)
        assert rc == 0, _tail(log)

        _study_runs_on_the_cluster(cluster, tmpdir, env, log, tmp_path)

        rc = _run([RAY, "down", "-y", str(config)], log, env, timeout=180)
        up = False
        assert rc == 0, _tail(log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (_of_cluster(tmpdir) or _listening(cluster.gcs_port)):
            time.sleep(1)
        assert not _of_cluster(tmpdir), f"left running after ray down: {_of_cluster(tmpdir)}"
        for port in (cluster.gcs_port, cluster.dashboard_port, cluster.object_manager_port, cluster.metrics_port):
            assert not _listening(port), f"port {port} still listens after ray down"
    finally:
        if up:  # a failure between `ray up` and `ray down`: tear the cluster down anyway
            with contextlib.suppress(Exception):
                _run([RAY, "down", "-y", str(config)], log, env, timeout=180)
        for pid in _of_cluster(tmpdir):  # whatever survived: our cluster's processes, by pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for path, data in saved.items():  # root's home as it was
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        shutil.rmtree(tmpdir, ignore_errors=True)
