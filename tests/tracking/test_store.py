"""Resolving and checking the tracking URI: the right store, and bad ones refused early and clearly."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cjepa.errors import TrackingError
from cjepa.tracking.store import (
    check_tracking_uri,
    default_artifact_root,
    experiment_artifact_location,
    get_or_create_experiment,
    resolve_tracking_uri,
)
from tests.conftest import tiny_overrides


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_resolution_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env-host:5000")
    assert resolve_tracking_uri(None) == "http://env-host:5000"
    assert resolve_tracking_uri("http://arg-host:5000") == "http://arg-host:5000"


def test_relative_sqlite_becomes_absolute(tmp_path, monkeypatch):
    """Ray workers run in other directories: the URI handed to them must name the same file."""
    monkeypatch.chdir(tmp_path)
    assert resolve_tracking_uri("sqlite:///sub/m.db") == f"sqlite:///{tmp_path.resolve()}/sub/m.db"
    assert resolve_tracking_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db"


def test_artifact_root_beside_the_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_artifact_root() == str(tmp_path.resolve() / "mlartifacts")
    assert default_artifact_root("sqlite:////data/x/mlflow.db") == "/data/x/mlartifacts"
    assert experiment_artifact_location("sqlite:////data/x/mlflow.db", "my exp") == "file:///data/x/mlartifacts/my_exp"
    assert experiment_artifact_location("http://h:5000", "cjepa") is None  # the server decides


def test_unreachable_server_fails_fast(tmp_path):
    uri = f"http://127.0.0.1:{closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(TrackingError) as info:
        check_tracking_uri(uri, timeout=5)
    assert time.monotonic() - t0 < 10
    assert uri in str(info.value) and "--no-mlflow" in str(info.value)


def _unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        d = tmp_path / "ro"
        d.mkdir()
        d.chmod(0o555)
        return d
    return Path("/sys")  # root may write anywhere a mode bit forbids; sysfs takes no new files


@pytest.mark.parametrize("where", ["missing", "under_a_file", "unwritable"])
def test_sqlite_in_bad_directory(tmp_path, where):
    parent = {"missing": tmp_path / "no" / "such", "under_a_file": tmp_path / "f.txt",
              "unwritable": None}[where]
    if where == "under_a_file":
        parent.write_text("x")
    if parent is None:
        parent = _unwritable_dir(tmp_path)
    uri = f"sqlite:///{parent}/mlflow.db"
    with pytest.raises(TrackingError) as info:
        check_tracking_uri(uri)
    assert uri in str(info.value) and str(parent) in str(info.value)


def test_unknown_scheme():
    with pytest.raises(TrackingError, match="unsupported scheme 'ftp'"):
        check_tracking_uri("ftp://example.org/mlflow")


def test_good_sqlite_store_and_experiment(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    check_tracking_uri(uri)  # creates and migrates the file
    client = MlflowClient(uri)
    exp = get_or_create_experiment(client, "unit")
    assert get_or_create_experiment(client, "unit") == exp
    assert client.get_experiment(exp).artifact_location == (tmp_path / "mlartifacts" / "unit").as_uri()


@pytest.mark.integration
def test_cli_refuses_unreachable_server_before_training(tmp_path):
    run_dir = tmp_path / "run"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cjepa", "train", "--tracking-uri", "http://127.0.0.1:1",
                           *tiny_overrides(run_dir)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("cjepa: error:") and "http://127.0.0.1:1" in err
    assert not run_dir.exists()  # training never started
    assert time.monotonic() - t0 < 60
