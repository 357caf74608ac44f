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


# Parallel runs (pytest-xdist, `-n 2 --dist loadgroup` in pyproject's addopts): one local Ray per machine
# (a second makes Ray Train V2 hang), so every integration test runs in one xdist group, on one worker, in
# file order (Ray test modules reuse one in-process cluster), except those of the modules below, read and
# known to start no Ray (in-process training, gloo process groups, MLflow servers, `cjepa train`/`report`
# subprocesses, --help). The unit tier starts no Ray by definition (see above) and runs anywhere.
# Add a module here only after reading it: one that does start Ray would race the serial group.
RAY_FREE = {
    "tests/bench/test_commands.py", "tests/bench/test_gpu_check.py", "tests/cluster/test_sshd_fixture.py",
    "tests/dashboards/test_claims.py", "tests/engine/test_collapse.py",
    "tests/engine/test_eval_precision.py", "tests/engine/test_evaluation.py", "tests/engine/test_kills.py",
    "tests/engine/test_precision.py", "tests/engine/test_recipe_learns.py", "tests/engine/test_resume.py",
    "tests/losses/test_distributed.py", "tests/masks/test_multiblock.py", "tests/model/test_attention.py",
    "tests/test_cli_errors.py", "tests/test_cli_help.py", "tests/test_eval_cli.py", "tests/test_packaging.py",
    "tests/test_security.py", "tests/test_tiers.py", "tests/tracking/test_reporter.py",
    "tests/tracking/test_server.py", "tests/tracking/test_server_restart.py", "tests/tracking/test_store.py",
    "tests/tracking/test_store_concurrency.py",
}
SERIAL_GROUP = "one_local_ray"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """``slow`` is the old name of ``integration``: `-m "not integration"` deselects both. Under xdist, every
    integration test outside RAY_FREE joins the one serial group."""
    root, grouped = config.rootpath, config.pluginmanager.hasplugin("xdist")
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        module = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else str(item.path)
        if grouped and any(item.get_closest_marker(m) for m in TIER_MARKS) and module not in RAY_FREE:
            item.add_marker(pytest.mark.xdist_group(SERIAL_GROUP))


def pytest_sessionstart(session):
    """An xdist worker shares the cores with the others: torch's intra-op threads split between them, as
    oversubscribed threads spin and slow every worker (a test that pins threads still does so itself)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


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


# A smaller budget for the Ray study tests on tests/sweep/tiny_study.yaml (bench/study_load.py's, with 512
# training images instead of 256): 8 steps per epoch instead of 20 (512 // 64; the 1300 images after its
# validation split: 1300 // 64), a 100-image kNN bank and test split, a 2-epoch linear probe, no random-init
# baseline. What those tests compare (one runner against another, a killed study against a straight one) is
# exact at any data size; keep >= 6 steps per epoch (a kill at step 5 must fall in epoch 1).
SMALL_STUDY = ("data.train_subset=512", "eval.train_samples=100", "eval.test_samples=100", "eval.linear_epochs=2",
               "eval.random_baseline=false")


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
