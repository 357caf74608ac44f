"""A real ``mlflow server`` stopped after epoch 1 of ``cjepa train`` and started again (same port,
same SQLite store) before epoch 3: training goes on, epoch 2 is buffered, and at the end MLflow
holds every epoch of every metric exactly once, equal to metrics.jsonl (issue 13).

A server that is still down when training ends is a loud one-line error; the same command run
again once it answers logs the missing epochs without training again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cjepa.cli import main
from cjepa.engine import Reporter, read_metrics
from cjepa.tracking.ui import ServerHandle, launch_server
from tests.conftest import tiny_overrides
from tests.tracking.test_server import free_port

pytestmark = pytest.mark.integration  # mlflow servers started, stopped and restarted

FAST = ("data.train_subset=320", "run.epochs=3")


class ServerSwitch(Reporter):
    """Test-only hook, last in the reporter list: after epoch ``stop_after``'s checkpoint the server
    is stopped; after epoch ``start_after``'s (None: never) it is started again on the same port."""

    def __init__(self, handle: ServerHandle, store: str, port: int, root: Path, stop_after: int,
                 start_after: int | None) -> None:
        self.handle, self.store, self.port, self.root = handle, store, port, root
        self.stop_after, self.start_after = stop_after, start_after

    def on_checkpoint(self, epoch: int, metrics: dict[str, float], checkpoint: Path | None) -> None:
        if epoch == self.stop_after:
            self.handle.stop()
        if epoch == self.start_after:
            self.handle = launch_server(self.store, port=self.port, workers=1, log_path=self.root / "server2.log")


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A fresh server per test, MLflow's client retries bounded (a call to a stopped server fails
    in ~1 s instead of sitting through 7 retries with exponential back-off, minutes)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    store, port = f"sqlite:///{tmp_path / 'mlflow.db'}", free_port()
    box: dict[str, Any] = {"handle": launch_server(store, port=port, workers=1, log_path=tmp_path / "server.log")}
    yield box, store, port
    box["handle"].stop()
    if box.get("switch"):
        box["switch"].handle.stop()


def _train_with(monkeypatch, switch: Reporter | None, url: str, run: Path) -> int:
    """``cjepa train`` as the user runs it, with ``switch`` appended to the reporters it builds."""
    import cjepa.engine

    real = cjepa.engine.train
    monkeypatch.setattr(cjepa.engine, "train", lambda cfg, reps: real(cfg, [*reps, *([switch] if switch else [])]))
    return main(["train", "--tracking-uri", url, "--experiment", "restart", *tiny_overrides(run, *FAST)])


def _history(url: str) -> tuple[Any, dict[str, list[tuple[int, float]]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(url)
    (run,) = client.search_runs([client.get_experiment_by_name("restart").experiment_id])
    return run, {key: [(int(m.step), m.value) for m in client.get_metric_history(run.info.run_id, key)]
                 for key in run.data.metrics}


def _assert_every_epoch_once(url: str, run_dir: Path) -> None:
    run, history = _history(url)
    assert run.info.status == "FINISHED"
    records = read_metrics(run_dir)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert {"loss", "loss_jepa", "vicreg_var", "lr"} <= history.keys()
    for key, points in history.items():
        assert sorted(points) == [(r["epoch"], pytest.approx(r[key])) for r in records], key


def test_server_stopped_after_epoch_1_and_restarted_loses_no_metric(server, tmp_path, monkeypatch, capsys):
    box, store, port = server
    url = box["handle"].url
    switch = box["switch"] = ServerSwitch(box["handle"], store, port, tmp_path, stop_after=1, start_after=2)
    assert _train_with(monkeypatch, switch, url, tmp_path / "run") == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "does not answer; epochs [2] kept, sent when it answers" in warnings[0]
    _assert_every_epoch_once(url, tmp_path / "run")


def test_server_still_down_at_the_end_is_loud_and_a_rerun_logs_the_rest(server, tmp_path, monkeypatch, capsys):
    box, store, port = server
    url = box["handle"].url
    switch = box["switch"] = ServerSwitch(box["handle"], store, port, tmp_path, stop_after=2, start_after=None)
    assert _train_with(monkeypatch, switch, url, tmp_path / "run") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("cjepa: error: MLflow server") and "epochs [3] not logged" in err[-1]
    assert "rerun the same command once it answers" in err[-1]
    switch.handle = launch_server(store, port=port, workers=1, log_path=tmp_path / "server2.log")
    assert _train_with(monkeypatch, None, url, tmp_path / "run") == 0  # finished checkpoint: nothing re-trained
    assert "[epoch" not in capsys.readouterr().out
    _assert_every_epoch_once(url, tmp_path / "run")
