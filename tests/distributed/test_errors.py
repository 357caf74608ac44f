"""Impossible distributed runs fail before any worker starts, with one clear line (exit 2 in the CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import ray

from cjepa.distributed import DistributedError, fit_distributed
from cjepa.distributed.preflight import placeable
from tests.conftest import tiny_overrides

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_local():
    if not ray.is_initialized():  # shared with later modules; test_multinode replaces it
        ray.init(num_cpus=4)
    yield


def _cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cjepa", "train", "--no-mlflow", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=180, env={**os.environ, **(env or {})})


def _assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("cjepa: error: "), proc.stderr[-2000:]
    for needle in needles:
        assert needle in line, line


def test_placeable_counts_whole_workers_per_node():
    nodes = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 2.0}, {"CPU": 1.5, "GPU": 2.0}]
    assert placeable({"CPU": 1.0}, nodes) == [4, 2, 1]
    assert placeable({"CPU": 1.0, "GPU": 1.0}, nodes) == [1, 0, 1]
    assert placeable({"CPU": 0.5}, nodes) == [8, 4, 3]


def test_uneven_batch_split_is_refused(tiny_cfg, tmp_path):
    with pytest.raises(DistributedError, match=r"batch_size=64 .* not divisible by 3 workers"):
        fit_distributed(tiny_cfg(), num_workers=3, storage_path=str(tmp_path / "ray"))


def test_unwritable_storage_is_refused_before_ray(tiny_cfg, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")  # root ignores permission bits; a file in the path stops anyone
    with pytest.raises(DistributedError, match="cannot be written"):
        fit_distributed(tiny_cfg(), num_workers=2, storage_path=str(blocker / "ray_results"))


@pytest.mark.integration
def test_more_workers_than_the_cluster_can_place(ray_local, tiny_cfg, tmp_path):
    storage = tmp_path / "ray"
    t0 = time.perf_counter()
    with pytest.raises(DistributedError, match=r"8 workers x \{CPU: 1\}.*cannot be placed.*room for 4"):
        fit_distributed(tiny_cfg(), num_workers=8, storage_path=str(storage))
    with pytest.raises(DistributedError, match="cannot be placed on distinct nodes"):
        fit_distributed(tiny_cfg(), num_workers=2, storage_path=str(storage), placement_strategy="STRICT_SPREAD")
    with pytest.raises(DistributedError, match=r"\{GPU: 1\}.*cannot be placed"):
        fit_distributed(tiny_cfg(), num_workers=1, use_gpu=True, storage_path=str(storage))
    assert time.perf_counter() - t0 < 10, "the checks must not wait for Ray to give up"
    assert list(storage.iterdir()) == [], "nothing was started, so nothing was written to storage"


@pytest.mark.integration
def test_cli_unwritable_storage_exits_2_without_traceback(tmp_path):
    (tmp_path / "a_file").write_text("x")
    proc = _cli(["--workers", "2", "--storage", str(tmp_path / "a_file" / "sub"), *tiny_overrides(tmp_path / "run")],
                cwd=tmp_path)
    _assert_one_line_error(proc, "storage path", "cannot be written", "--storage")


@pytest.mark.integration
def test_cli_too_many_workers_exits_2_without_traceback(ray_local, tmp_path):
    # Connect the CLI to this module's cluster (4 CPUs): no second local Ray to start.
    env = {"RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    proc = _cli(["--workers", "64", "--storage", str(tmp_path / "ray"), *tiny_overrides(tmp_path / "run")],
                cwd=tmp_path, env=env)
    _assert_one_line_error(proc, "64 workers", "cannot be placed", "room for 4")


@pytest.mark.integration
def test_cli_uneven_split_exits_2(tmp_path):
    proc = _cli(["--workers", "3", *tiny_overrides(tmp_path / "run")], cwd=tmp_path)
    _assert_one_line_error(proc, "not divisible by 3 workers")
