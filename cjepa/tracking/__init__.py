"""MLflow tracking for cjepa: the store (resolve/check/experiments), a Reporter, the local UI server.

Only this package imports mlflow; the engine sees it as one more Reporter. ``store`` is imported
eagerly (it is light: no torch, no mlflow at import); the reporter, which pulls in the engine and
torch, and the server helpers are loaded on first use, so ``cjepa train`` can check the tracking
URI before anything heavy is imported.
"""

from __future__ import annotations

from typing import Any

from cjepa.tracking.store import (
    check_tracking_uri,
    default_artifact_root,
    get_or_create_experiment,
    resolve_tracking_uri,
)

_LAZY = {"MLflowReporter": "cjepa.tracking.reporter", "run_tags": "cjepa.tracking.run_lookup",
         "plot_curves": "cjepa.tracking.plots", "start_server": "cjepa.tracking.ui",
         "ServerHandle": "cjepa.tracking.ui"}

__all__ = ["MLflowReporter", "ServerHandle", "check_tracking_uri", "default_artifact_root",
           "get_or_create_experiment", "plot_curves", "resolve_tracking_uri", "run_tags", "start_server"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cjepa.tracking' has no attribute {name!r}")
