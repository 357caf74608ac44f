"""Shared fixtures: a tiny C-JEPA on sklearn digits that trains in seconds on one core."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from cjepa.config import Config, load_config

pytest_plugins = ["pytester"]  # tests/test_tiers.py runs the tier guard below in a pytester session

# Test tiers (README "Tests"): the inner loop is `python -m pytest -q -m "not integration"`. A test that
# starts Ray, a subprocess, a server, a browser or a process group, or trains for more than a few
# seconds, is marked `integration`. The guard fails an unmarked test whose setup + call take longer
# than CJEPA_UNIT_MAX_S seconds, so a slow test cannot drift into the inner loop unnoticed.
TIER_MARKS = ("integration", "slow", "gpu", "ray_pending")  # any of these exempts a test from the guard
UNIT_MAX_S = 15.0  # slowest unit test: ~6 s on a quiet 2-core machine (CI's size), ~10 s beside other runs
_SETUP_S = pytest.StashKey[float]()
_LIMIT_S = pytest.StashKey[float]()


def pytest_configure(config):
    config.stash[_LIMIT_S] = float(os.environ.get("CJEPA_UNIT_MAX_S", UNIT_MAX_S))  # read once per session


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """``slow`` is the old name of ``integration``: `-m "not integration"` deselects both."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        item.stash[_SETUP_S] = time.perf_counter() - start


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fails an unmarked test slower than the limit (its own failure, if any, is reported instead).
    Setup counts too: a slow fixture is charged to the first unmarked test that uses it."""
    start = time.perf_counter()
    result = yield
    took = item.stash.get(_SETUP_S, 0.0) + time.perf_counter() - start
    limit = item.config.stash[_LIMIT_S]
    if took > limit and not any(item.get_closest_marker(m) for m in TIER_MARKS):
        pytest.fail(f"{item.nodeid} is unmarked but took {took:.1f} s (setup + call), over the unit-test limit of "
                    f"{limit:g} s (env CJEPA_UNIT_MAX_S): mark it @pytest.mark.integration (it then leaves the inner "
                    f'loop `pytest -m "not integration"`) or make it faster', pytrace=False)
    return result


# data.val_samples=0: the tiny runs train on all 1500 digits (23 steps per epoch, which many tests
# count on); tests of the validation split (and tiny_study.yaml, whose studies select) set their own.
TINY = [
    "data.dataset=digits", "data.val_samples=0", "model.img_size=16", "model.patch_size=2", "model.in_chans=1",
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
