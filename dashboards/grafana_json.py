"""Builds ``dashboards/grafana/cjepa_grafana_dashboard.json`` from the gauges the workers publish.

Generated rather than hand-edited so a panel can never query a metric that
:class:`cjepa.distributed.metrics.RayMetricsReporter` does not set (tests/dashboards/test_grafana.py
checks the committed file equals this output, and that every queried name shows up on a live Ray
metrics endpoint). Same conventions as Ray's own dashboards: a hidden ``datasource`` variable of
type prometheus, a ``SessionName`` filter, Ray's ``ray_`` prefix. Regenerate with
``python -m dashboards.grafana_json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "grafana" / "cjepa_grafana_dashboard.json"
FILTER = 'SessionName=~"$SessionName", run=~"$run"'
#: row title -> panels (title, unit, description, gauge names)
ROWS: dict[str, list[tuple[str, str, str, tuple[str, ...]]]] = {
    "Objective": [
        ("Loss (total and JEPA)", "none", "Running epoch mean of the objective and its JEPA part, per trial.",
         ("cjepa_loss", "cjepa_loss_jepa")),
        ("VICReg terms (unweighted)", "none", "Invariance, variance and covariance terms before their weights.",
         ("cjepa_vicreg_inv", "cjepa_vicreg_var", "cjepa_vicreg_cov")),
    ],
    "Collapse and accuracy (per evaluated epoch)": [
        ("Normalised target std (collapse)", "none", "1 = isotropic features, towards 0 = collapse.",
         ("cjepa_target_std_normalized",)),
        ("Effective rank of target features", "none", "RankMe; 1 = every image maps to one direction.",
         ("cjepa_target_eff_rank",)),
        ("kNN accuracy, target encoder", "percentunit", "Fraction of test images classified right by kNN.",
         ("cjepa_knn_target",)),
    ],
    "Throughput and schedules": [
        ("Images per second", "none", "Training throughput of the trial's whole worker group (img/s).",
         ("cjepa_img_per_s",)),
        ("EMA momentum", "none", "Target-encoder momentum, 0.996 -> 1 over the run.", ("cjepa_ema_momentum",)),
        ("Learning rate", "none", "AdamW learning rate (warm-up, then cosine).", ("cjepa_lr",)),
        ("Epoch", "none", "Epochs done per trial (fractional between epochs).", ("cjepa_epoch",)),
    ],
}


def _variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {"name": name, "label": label, "type": "query", "datasource": "${datasource}",
            "definition": query, "query": {"query": query, "refId": "StandardVariableQuery"},
            "refresh": 2, "hide": 0, "includeAll": True, "multi": True, "allValue": ".*", "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}


def _panel(pid: int, title: str, unit: str, desc: str, names: tuple[str, ...], x: int, y: int, w: int) -> dict:
    targets = [{"expr": f"max by (run) (ray_{n}{{{FILTER}}})", "refId": chr(ord("A") + i),
                "legendFormat": f"{{{{run}}}} {n.removeprefix('cjepa_')}", "datasource": "${datasource}"}
               for i, n in enumerate(names)]
    return {"id": pid, "type": "timeseries", "title": title, "description": desc, "datasource": "${datasource}",
            "gridPos": {"h": 8, "w": w, "x": x, "y": y}, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "custom": {"lineWidth": 1, "fillOpacity": 0,
                                                                  "showPoints": "auto"}}, "overrides": []},
            "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull"]},
                        "tooltip": {"mode": "multi"}}}


def build() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    pid, y = 1, 0
    for row, items in ROWS.items():
        panels.append({"id": pid, "type": "row", "title": row, "collapsed": False, "panels": [],
                       "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}})
        pid, y = pid + 1, y + 1
        w = 24 // len(items)
        for i, (title, unit, desc, names) in enumerate(items):
            panels.append(_panel(pid, title, unit, desc, names, i * w, y, w))
            pid += 1
        y += 8
    return {
        "title": "cjepa training", "uid": "cjepaTraining", "version": 1, "schemaVersion": 27, "editable": True,
        "graphTooltip": 1, "refresh": "10s", "time": {"from": "now-1h", "to": "now"}, "tags": ["cjepa", "ray"],
        "description": "C-JEPA / I-JEPA trials live: ray_cjepa_* gauges set by cjepa.distributed.metrics."
                       "RayMetricsReporter on rank 0 of every Ray Train trial.",
        "annotations": {"list": []},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus", "hide": 2, "current": {}},
            _variable("SessionName", "Ray session", "label_values(ray_cjepa_loss, SessionName)"),
            _variable("run", "Trial (Ray Train run)", 'label_values(ray_cjepa_loss{SessionName=~"$SessionName"}, run)'),
        ]},
        "panels": panels,
    }


def queried_metrics(dashboard: dict[str, Any]) -> set[str]:
    """Every ``ray_cjepa_*`` name a panel or variable of ``dashboard`` queries."""
    import re

    text = json.dumps([p.get("targets", []) for p in dashboard["panels"]] + dashboard["templating"]["list"])
    return set(re.findall(r"ray_cjepa_[a-z_]+", text))


def write(path: Path = OUT) -> Path:
    path.write_text(json.dumps(build(), indent=2) + "\n")
    return path


if __name__ == "__main__":
    print(write())
