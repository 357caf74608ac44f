"""The metric names defined once in cjepa.metrics are exactly what a real run reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from cjepa.config import load_config
from cjepa.engine.trainer import train
from cjepa.metrics import reported_metrics
from tests.conftest import tiny_overrides

EVAL = ["eval.every=1", "eval.train_samples=300", "eval.test_samples=200", "eval.linear_epochs=3", "run.epochs=1"]


@pytest.mark.parametrize("extra", [
    ["loss.beta_vicreg=0"],  # I-JEPA: no VICReg terms logged
    ["loss.vicreg_mode=two_views", "loss.covariance=false", "eval.poolings=[mean,grid2]"],
    ["eval.linear_epochs=0", "eval.encoders=[target]", "eval.random_baseline=false"],
], ids=["ijepa", "two_views-no-cov-grid2", "knn-only"])
def test_reported_names_are_the_run_keys(tmp_path: Path, extra: list[str]) -> None:
    cfg = load_config(None, tiny_overrides(tmp_path / "run", *EVAL, *extra))
    epoch = train(cfg).history[-1]
    assert set(epoch) == reported_metrics(cfg)
