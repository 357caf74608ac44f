"""Ray Train around the engine: data-parallel workers, checkpoints in Ray storage, restarts.

``fit_distributed(cfg, num_workers, ...)`` runs :func:`cjepa.engine.train` in Ray Train V2
workers (gloo on CPU, NCCL on GPU); :class:`RayReporter` is the engine reporter that forwards
each epoch to ``ray.train.report`` (also what the Tune layer builds on).

Names are imported lazily (PEP 562): the CLI imports :mod:`cjepa.distributed.command` to build
its parser, and that must not pull in torch or Ray before the config has been validated.
"""

from __future__ import annotations

import importlib
from typing import Any

from cjepa.errors import DistributedError

_EXPORTS = {
    "fit_distributed": "ray_trainer", "experiment_name": "ray_trainer", "export_checkpoint": "ray_trainer",
    "train_loop_per_worker": "ray_trainer", "RayReporter": "reporter", "flat_metrics": "reporter",
    "check_placement": "preflight", "check_split": "preflight", "resolve_storage": "preflight",
    "worker_resources": "preflight",
}

__all__ = ["DistributedError", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"cjepa.distributed.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'cjepa.distributed' has no attribute {name!r}")
