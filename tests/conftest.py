"""Shared fixtures: a tiny C-JEPA on sklearn digits that trains in seconds on one core."""

from __future__ import annotations

from pathlib import Path

import pytest

from cjepa.config import Config, load_config

TINY = [
    "data.dataset=digits", "model.img_size=16", "model.patch_size=2", "model.in_chans=1",
    "model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.pred_embed_dim=16",
    "model.pred_depth=1", "mask.num_targets=4", "mask.target_scale=[0.1,0.15]", "mask.min_keep=4",
    "optim.batch_size=64", "optim.warmup_epochs=0.5", "run.epochs=2", "run.log_every=1000",
    "run.threads=1", "eval.every=0",
]


def tiny_overrides(run_dir: Path, *extra: str) -> list[str]:
    """TINY in ``run_dir``, in fp32 even where ``run.precision=auto`` would train in bf16 (a CPU
    with native bf16): the tiny runs' exact comparisons (resume, DDP equivalence) then hold on
    every machine. A test of bf16 asks for it in ``extra`` (later overrides win)."""
    return [*TINY, "run.precision=fp32", f"run.output_dir={run_dir}", f"data.cache_dir={run_dir.parent / 'cache'}",
            *extra]


@pytest.fixture(autouse=True, scope="session")
def _private_mlflow_store(tmp_path_factory):
    """Every test (and the processes it starts) logs to a throw-away MLflow store, never ./mlflow.db."""
    import os

    root = tmp_path_factory.mktemp("mlflow")
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    yield
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


@pytest.fixture
def tiny_cfg(tmp_path: Path):
    """Factory: tiny_cfg("loss.beta_vicreg=0", ...) -> validated Config in a fresh run dir."""

    def make(*extra: str, name: str = "run") -> Config:
        return load_config(None, tiny_overrides(tmp_path / name, *extra))

    return make
