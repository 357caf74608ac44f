"""A real ``mlflow server``: training logs through it, the REST API reads it back, and stopping it
leaves no process behind (nor does stopping ``cjepa ui`` with SIGTERM)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from cjepa.cli import main
from cjepa.errors import TrackingError
from cjepa.tracking.ui import group_members, launch_server, start_server
from tests.conftest import tiny_overrides


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(url: str, path: str, body: dict | None = None, **query: str) -> dict:
    full = f"{url}/api/2.0/mlflow/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(full, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")  # start_server sets it too
    root = tmp_path_factory.mktemp("server")
    with start_server(f"sqlite:///{root}/mlflow.db", port=free_port(), workers=1,
                      log_path=root / "server.log") as handle:
        yield handle, root


@pytest.mark.integration
def test_training_logs_through_the_server(server, tmp_path, capsys):
    handle, root = server
    args = ["train", "--tracking-uri", handle.url, "--experiment", "srv", "--run-name", "via-server",
            *tiny_overrides(tmp_path / "run", "eval.every=1", "eval.train_samples=300", "eval.test_samples=200",
                            "eval.linear_epochs=0")]
    assert main(args) == 0, capsys.readouterr().err

    exp = api(handle.url, "experiments/get-by-name", experiment_name="srv")["experiment"]
    runs = api(handle.url, "runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
    assert len(runs) == 1
    info = runs[0]["info"]
    assert info["status"] == "FINISHED" and info["run_name"] == "via-server"
    for key in ("loss", "loss_jepa", "vicreg_var", "knn_target", "target_eff_rank"):
        hist = api(handle.url, "metrics/get-history", run_id=info["run_id"], metric_key=key)["metrics"]
        assert sorted(m["step"] for m in hist) == [1, 2], key
    # artifacts went through the server's proxy into its artifact root, not into the client's CWD
    files = {f["path"] for f in api(handle.url, "artifacts/list", run_id=info["run_id"])["files"]}
    assert {"config.yaml", "masks.png", "curves.png"} <= files
    assert list((root / "mlartifacts").rglob("curves.png"))


@pytest.mark.integration
def test_stop_leaves_no_process(server):
    handle, _ = server
    assert handle.alive()
    handle.stop()
    assert group_members(handle.pid) == []
    with pytest.raises(OSError):
        urllib.request.urlopen(handle.url + "/health", timeout=2)


def test_port_in_use_is_refused_at_once(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(TrackingError, match=f"127.0.0.1:{port}.*in use"):
            launch_server(f"sqlite:///{tmp_path}/mlflow.db", port=port)


@pytest.mark.integration  # a second server start (~7 s idle, ~15 s beside training jobs)
def test_cjepa_ui_stops_its_server_on_sigterm(tmp_path):
    """... and prints each experiment's link to its runs in the Model training view (issue 27)."""
    from mlflow.tracking import MlflowClient

    port = free_port()
    exp_id = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").create_experiment("study_x")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen([sys.executable, "-m", "cjepa", "ui", "--port", str(port), "--workers", "1",
                             "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: list[str] = []
    try:
        pid = None
        deadline = time.monotonic() + 120
        while pid is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"cjepa ui exited early: {''.join(lines)}"
            lines.append(line)
            if "MLflow UI at" in line:
                assert f"http://127.0.0.1:{port}" in line
                pid = int(re.search(r"server pid (\d+)", line).group(1))
        assert pid is not None and group_members(pid), "".join(lines)
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, "".join(lines) + rest
        assert "stopped" in rest and group_members(pid) == []
        link = f"  study_x  http://127.0.0.1:{port}/#/experiments/{exp_id}?workflowType=machine_learning\n"
        printed = "".join(lines) + rest  # the links come before or after the "MLflow UI at" line
        assert link in printed and "Default" not in printed, printed
    finally:
        if proc.poll() is None:
            proc.kill()
