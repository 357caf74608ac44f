"""Grafana: the dashboard files load, and every metric the cjepa dashboard queries is really exported.

The live part starts a local Ray with a known metrics export port and a 1 s report interval
(Ray's default is 10 s), runs a tiny real one-worker Ray Train run (rank 0 adds
:class:`RayMetricsReporter` by itself), and scrapes the node's Prometheus endpoint while it
trains, until every ``ray_cjepa_*`` name the dashboard queries has shown up with the run's
``run`` label. Scraping happens during training: Ray drops a gauge ~2 intervals after its
process stops reporting.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from dashboards.grafana_json import OUT, build, queried_metrics
from tests.conftest import tiny_overrides

GRAFANA = Path(__file__).resolve().parents[2] / "dashboards" / "grafana"
RUN = "grafana-test"


def test_dashboard_files_load() -> None:
    from cjepa.distributed.metrics import GAUGES

    ray_train = json.loads((GRAFANA / "ray_train_grafana_dashboard.json").read_text())
    assert ray_train["uid"] == "rayTrainDashboard" and ray_train["panels"]
    assert any("ray_train_" in t["expr"] for p in ray_train["panels"] for t in p.get("targets", []))
    ours = json.loads(OUT.read_text())
    assert ours == build(), "cjepa_grafana_dashboard.json is stale: python -m dashboards.grafana_json"
    assert queried_metrics(ours) == {f"ray_{name}" for name in GAUGES}  # every gauge has a panel, no orphans
    ids = [p["id"] for p in ours["panels"]]
    assert len(ids) == len(set(ids))
    prom = yaml.safe_load((GRAFANA / "prometheus.yml").read_text())
    files = prom["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert files == ["/tmp/ray/prom_metrics_service_discovery.json"]


def test_reporter_is_inert_outside_ray(tmp_path: Path) -> None:
    """`cjepa train` without workers passes through the same reporter list: no Ray, no gauges, no error."""
    import pickle

    import ray

    from cjepa.distributed.metrics import RayMetricsReporter, metrics_reporters

    assert not ray.is_initialized()
    rep = RayMetricsReporter()
    rep.on_start(tmp_path, 0, {})
    rep.on_step(1, {"loss": 1.0})
    rep.on_epoch(1, {"loss": 1.0, "knn_target": float("nan")})
    assert rep._gauges == {} and pickle.loads(pickle.dumps(rep))._gauges == {}
    assert [type(r) for r in metrics_reporters(0)] == [RayMetricsReporter] and metrics_reporters(1) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_metrics_port():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    port = _free_port()
    ray.init(num_cpus=2, _metrics_export_port=port, log_to_driver=False,
             _system_config={"metrics_report_interval_ms": 1000})
    try:
        assert ray.nodes()[0]["MetricsExportPort"] == port
        yield port
    finally:
        ray.shutdown()


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


@pytest.mark.integration
def test_cjepa_metrics_on_live_ray_endpoint(ray_metrics_port: int, tmp_path: Path) -> None:
    """A real `fit_distributed` run (the path of `cjepa train --workers` and of every study trial)."""
    from cjepa.config import load_config
    from cjepa.distributed import fit_distributed

    # 2 epochs: every gauge is set at each epoch's end (eval.every=1), so epoch 1's values are out while
    # epoch 2 trains and is scraped (1 s report interval, a scrape every 0.3 s), and epoch 2's after it.
    overrides = tiny_overrides(tmp_path / "run", "run.epochs=2", "run.log_every=5", "eval.every=1",
                               "eval.train_samples=300", "eval.test_samples=200", "eval.linear_epochs=5",
                               "eval.raw_baseline=false")
    outcome: dict[str, object] = {}

    def fit() -> None:
        try:
            outcome["result"] = fit_distributed(load_config(None, overrides), 1, storage_path=str(tmp_path / "ray"),
                                                name=RUN, export=False)
        except BaseException as exc:  # surfaced below
            outcome["error"] = exc

    thread = threading.Thread(target=fit, daemon=True)
    thread.start()
    wanted = queried_metrics(build())
    values: dict[str, float] = {}

    def scrape() -> None:
        lines = [ln for ln in _scrape(ray_metrics_port).splitlines()
                 if ln.startswith("ray_cjepa_") and f'run="{RUN}"' in ln]
        values.update({ln.split("{", 1)[0]: float(ln.rsplit(" ", 1)[1]) for ln in lines})

    deadline = time.monotonic() + 300
    while thread.is_alive() and time.monotonic() < deadline:
        scrape()
        time.sleep(0.3)
    for _ in range(5):  # the last report interval: gauges outlive their process by ~2 intervals
        scrape()
        time.sleep(0.3)
    thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    missing = wanted - set(values)
    assert not missing, f"not seen on the Ray metrics endpoint during training: {sorted(missing)}"
    assert values["ray_cjepa_epoch"] >= 1.0 and 0.996 <= values["ray_cjepa_ema_momentum"] <= 1.0
    assert values["ray_cjepa_img_per_s"] > 0 and 0 <= values["ray_cjepa_knn_target"] <= 1
