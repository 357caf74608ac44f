"""Faults of a single-process run on digits (issue 13): a damaged checkpoint, a full disk, a NaN loss.

Each runs the real ``cjepa train`` (in-process ``main``, so the exit status and the one stderr line
are the user's) and compares the survivor with an uninterrupted run of the same config, bit for bit.
A run here is 5 steps per epoch (``data.train_subset=320``, batch 64).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cjepa.cli import main
from cjepa.engine import load_checkpoint, read_metrics
from cjepa.engine.checkpoint import DAMAGED_NAME, PREVIOUS_NAME
from tests.conftest import tiny_overrides
from tests.engine.test_resume import _assert_same_state

FAST = ("data.train_subset=320", "run.epochs=3")
SPE = 5  # steps per epoch
TIMING = {"img_per_s", "epoch_time_s", "eval_time_s", "train_cpu_min"}


def _train(run_dir: Path, *extra: str) -> int:
    return main(["train", "--no-mlflow", *tiny_overrides(run_dir, *FAST, *extra)])


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _same_run(a: Path, b: Path) -> None:
    """Final weights, target, optimizer, RNG and every epoch's metrics of two run dirs are equal."""
    ca, cb = load_checkpoint(a / "checkpoint.pt"), load_checkpoint(b / "checkpoint.pt")
    assert ca["step"] == cb["step"] == 3 * SPE
    for key in ("online", "target", "optimizer", "rng"):
        _assert_same_state(ca[key], cb[key], key)
    ma, mb = read_metrics(a), read_metrics(b)
    assert [m["epoch"] for m in mb] == [1, 2, 3]
    assert [{k: v for k, v in m.items() if k not in TIMING} for m in ma] == \
           [{k: v for k, v in m.items() if k not in TIMING} for m in mb]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """An uninterrupted 3-epoch run: what every survivor must equal."""
    run = tmp_path_factory.mktemp("straight") / "run"
    assert _train(run) == 0
    return run


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _change_tensor_bytes(path: Path) -> None:
    """Zero 64 bytes in the middle: inside a tensor record, which torch's zip reader loads silently."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _change_tensor_bytes, Path.unlink],
                         ids=["truncated", "bytes-changed", "missing"])
def test_damaged_latest_checkpoint_resumes_from_the_previous_one_exactly(damage, straight, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(run, f"run.max_steps={2 * SPE}") == 0  # checkpoints after epochs 1 (kept as prev) and 2
    assert load_checkpoint(run / PREVIOUS_NAME)["epoch"] == 1
    assert load_checkpoint(run / "checkpoint.pt")["epoch"] == 2
    damage(run / "checkpoint.pt")
    capsys.readouterr()
    assert _train(run) == 0
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "checkpoint.pt" in warning[0] and "(epoch 1, step 5)" in warning[0], warning
    if damage is not Path.unlink:
        assert "cannot be read" in warning[0] and (run / DAMAGED_NAME).is_file()  # set aside, not deleted
    _same_run(straight, run)  # epoch 2 re-trained deterministically, epoch 3 as in one go
    assert load_checkpoint(run / PREVIOUS_NAME)["epoch"] == 2  # rotation went on from the good one


def test_no_readable_checkpoint_is_one_line_naming_both(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"garbage")
    (run / PREVIOUS_NAME).write_bytes(b"more garbage")
    assert _train(run) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("cjepa: error: checkpoint ") and "checkpoint.pt: cannot be read" in line
    assert f"{PREVIOUS_NAME}: cannot be read" in line
    assert (run / "checkpoint.pt").read_bytes() == b"garbage"  # nothing deleted, nothing started from zero
    assert not (run / "metrics.jsonl").exists()


@pytest.mark.parametrize("fault, error", [("checkpoint_enospc", "No space left on device, ENOSPC"),
                                          ("checkpoint_erofs", "Read-only file system, EROFS")])
def test_full_disk_stops_with_one_line_and_keeps_the_earlier_checkpoint(fault, error, straight, tmp_path, capsys,
                                                                         monkeypatch):
    """A full disk (ENOSPC after 4 kB) or storage turned read-only (EROFS at the first byte)."""
    run = tmp_path / "run"
    assert _train(run, f"run.max_steps={SPE}") == 0  # epoch 1 checkpointed
    before = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    monkeypatch.setenv("CJEPA_TEST_FAULT", fault)  # cjepa/faults.py
    assert _train(run) == 2  # epoch 2 trains, its checkpoint write fails
    line = _one_line(capsys.readouterr().err)
    assert f"checkpoint {run / 'checkpoint.pt'}: cannot be written ({error})" in line
    assert "earlier checkpoints intact: checkpoint.pt" in line and "rerun the same command" in line
    assert (run / "checkpoint.pt").read_bytes() == before and load_checkpoint(run / "checkpoint.pt")["epoch"] == 1
    assert not list(run.glob("*.tmp")) and not list(run.glob(".*.tmp"))  # no half-written file left
    monkeypatch.delenv("CJEPA_TEST_FAULT")
    stale = run / ".checkpoint.pt.k1ll3d.tmp"  # what a write killed by SIGKILL leaves behind
    stale.write_bytes(b"half a checkpoint")
    assert _train(run) == 0  # space again: the rerun resumes from epoch 1
    assert not stale.exists()
    _same_run(straight, run)


def test_non_finite_loss_is_one_line_and_a_failed_mlflow_run(tmp_path, capsys):
    """``optim.lr=1e6`` makes the loss NaN at step 3 on digits with the CPU recipe (seeded, so always the same step)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.search_experiments()  # create the store first: MLflow logs its table creation to stderr
    capsys.readouterr()
    run = tmp_path / "run"
    code = main(["train", "--tracking-uri", uri, "--experiment", "nan", *tiny_overrides(run, *FAST, "optim.lr=1e6")])
    assert code == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("cjepa: error: non-finite loss at step 3 (loss=nan") and "lower optim.lr" in line
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("nan").experiment_id])
    assert mlflow_run.info.status == "FAILED"
    assert mlflow_run.data.tags["cjepa.failure"].startswith("TrainingError: non-finite loss at step 3 (loss=nan")
    assert not (run / "checkpoint.pt").exists()  # nothing durable was made from a NaN step


def test_checkpoint_rotation_keeps_one_complete_file_at_every_instant(tmp_path, monkeypatch):
    """The two renames of a save, observed: before and between them a complete checkpoint exists."""
    import os

    from cjepa.engine.checkpoint import save_checkpoint

    path = tmp_path / "checkpoint.pt"
    state = {"config": {}, "step": 1, "epoch": 1, "online": {"w": torch.ones(3)}, "target": {}, "optimizer": {},
             "rng": {}}
    save_checkpoint(path, state)
    seen, replace = [], os.replace

    def spy(src, dst):
        seen.append(sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".tmp")))
        replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    save_checkpoint(path, {**state, "step": 2, "epoch": 2})
    assert seen == [["checkpoint.pt"], [PREVIOUS_NAME]]  # old -> prev, then new -> checkpoint.pt
    assert load_checkpoint(path)["epoch"] == 2 and load_checkpoint(tmp_path / PREVIOUS_NAME)["epoch"] == 1
