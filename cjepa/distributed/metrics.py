"""Live training metrics for Prometheus/Grafana: a Reporter that sets ``ray.util.metrics`` gauges.

MLflow holds the durable per-epoch record; this reporter answers the *live* questions an operator
asks of a running cluster in Grafana, next to Ray's own Train dashboard: is the JEPA loss still
falling, is a VICReg term exploding, are we collapsing (normalised target std towards 0), how
fast is each trial going (images/s), where is the EMA momentum. Each value is a gauge, exported
by the node's metrics agent as ``ray_cjepa_<name>`` on the node's metrics endpoint (Prometheus
finds the nodes through ``/tmp/ray/prom_metrics_service_discovery.json``); the dashboard in
``dashboards/grafana/cjepa_grafana_dashboard.json`` queries exactly the names in :data:`GAUGES`.

Rank 0 only: the engine's step and epoch metrics are already global means there, and evaluation
(the collapse figures) runs only on rank 0. ``train_loop_per_worker``
(cjepa/distributed/ray_trainer.py) adds it on rank 0 of every Ray Train run, so every
``cjepa train --workers N`` and every study trial publishes these gauges.
Outside a Ray process the reporter does nothing (``cjepa train`` without workers stays Ray-free).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from cjepa.engine.reporting import Reporter

#: gauge name (exported as ``ray_<name>``) -> (engine metric key, description with unit)
GAUGES: dict[str, tuple[str, str]] = {
    "cjepa_loss": ("loss", "total objective (JEPA + weighted VICReg), running mean of the epoch"),
    "cjepa_loss_jepa": ("loss_jepa", "JEPA prediction loss (smooth-L1 or L2 on layer-normed targets)"),
    "cjepa_vicreg_inv": ("vicreg_inv", "VICReg invariance term (unweighted)"),
    "cjepa_vicreg_var": ("vicreg_var", "VICReg variance term (unweighted hinge on per-feature std)"),
    "cjepa_vicreg_cov": ("vicreg_cov", "VICReg covariance term (unweighted)"),
    "cjepa_img_per_s": ("img_per_s", "training throughput of the whole worker group, images per second"),
    "cjepa_ema_momentum": ("ema_momentum", "EMA momentum of the target encoder (0.996 -> 1)"),
    "cjepa_lr": ("lr", "learning rate"),
    "cjepa_epoch": ("epoch", "epochs done (fractional between epochs)"),
    "cjepa_target_std_normalized": ("target_std_mean_normalized",
                                    "collapse: mean per-feature std of L2-normalised pooled target features "
                                    "x sqrt(D); 1 = isotropic, 0 = collapsed (per evaluated epoch)"),
    "cjepa_target_eff_rank": ("target_eff_rank", "collapse: effective rank (RankMe) of pooled target features"),
    "cjepa_knn_target": ("knn_target", "kNN accuracy of the target encoder, fraction (per evaluated epoch)"),
}
TAG_KEYS = ("run",)


def _in_ray() -> bool:
    try:
        import ray
    except ImportError:
        return False
    return ray.is_initialized()


def _default_run_name(run_dir: Path) -> str:
    """The Ray Train run name (= the trial's trainer name) when inside Ray Train, else the run dir's name.

    Worker run dirs are ``.../cjepa-ray/<experiment>/rank<k>``, so the folder name alone says nothing."""
    try:
        import ray.train

        return str(ray.train.get_context().get_experiment_name())
    except Exception:  # not in a Ray Train worker (a plain task/actor, or no Ray at all)
        return run_dir.parent.name if run_dir.name.startswith("rank") else run_dir.name


class RayMetricsReporter(Reporter):
    """Sets one Ray gauge per :data:`GAUGES` entry from ``on_step`` and ``on_epoch`` (rank 0).

    ``run_name`` labels every series (tag ``run``) so one Grafana panel shows every trial of a study.
    Creating the gauges is deferred to ``on_start``: Ray metrics need a connected worker, and a
    reporter object is often built on the driver and pickled to the worker.
    """

    def __init__(self, run_name: str | None = None, rank: int = 0) -> None:
        self.run_name = run_name
        self.rank = rank
        self._gauges: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # gauges are per process: never pickle them
        return {**self.__dict__, "_gauges": {}}

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict[str, Any]) -> None:
        if self.rank != 0 or not _in_ray():
            return
        from ray.util.metrics import Gauge

        self.run_name = self.run_name or _default_run_name(Path(run_dir))
        self._gauges = {name: Gauge(name, description=desc, tag_keys=TAG_KEYS)
                        for name, (_, desc) in GAUGES.items()}
        self._set({"epoch": float(start_epoch)})

    def _set(self, metrics: dict[str, Any]) -> None:
        tags = {"run": self.run_name or "unknown"}
        for name, (key, _) in GAUGES.items():
            value = metrics.get(key)
            if name in self._gauges and isinstance(value, (int, float)) and math.isfinite(value):
                self._gauges[name].set(float(value), tags=tags)

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self._set(metrics)

    def on_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        self._set({**metrics, "epoch": float(epoch)})


def metrics_reporters(rank: int) -> list[Reporter]:
    """A picklable ``rank -> reporters`` factory for ``fit_distributed(..., reporters=...)``."""
    return [RayMetricsReporter(rank=rank)] if rank == 0 else []
