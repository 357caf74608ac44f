"""Exact resume: N steps in one go == k steps + checkpoint + fresh process + N-k steps, bit for bit."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cjepa.engine import load_checkpoint, read_metrics
from tests.conftest import tiny_overrides

pytestmark = pytest.mark.integration  # trainings in fresh processes

ROOT = Path(__file__).resolve().parents[2]


def _train(run_dir: Path, *extra: str) -> None:
    args = [sys.executable, "-m", "cjepa", "train", *tiny_overrides(run_dir, "eval.every=1",
                                                                     "eval.train_samples=500",
                                                                     "eval.test_samples=200",
                                                                     "eval.linear_epochs=20", *extra)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _assert_same_state(a: dict, b: dict, path: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_state(x, y, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), f"{path} differs (max diff {(a.float() - b.float()).abs().max()})"
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def test_resume_mid_epoch_in_a_fresh_process_is_bit_exact(tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    _train(straight)
    _train(split, "run.max_steps=17")  # stops mid-epoch 1 (23 steps per epoch), checkpoint written
    stopped = load_checkpoint(split / "checkpoint.pt")
    assert (stopped["step"], stopped["epoch"]) == (17, 0)
    _train(split, "data.num_workers=1")  # a fresh process resumes; loader workers do not change batches

    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 46
    for key in ("online", "target", "optimizer", "rng"):
        _assert_same_state(a[key], b[key], key)

    ma, mb = read_metrics(straight), read_metrics(split)
    assert [m["epoch"] for m in mb] == [1, 2]  # one record per epoch, none duplicated
    skip = {"img_per_s", "epoch_time_s", "eval_time_s", "train_cpu_min"}
    for ra, rb in zip(ma, mb):
        assert {k: v for k, v in ra.items() if k not in skip} == {k: v for k, v in rb.items() if k not in skip}
