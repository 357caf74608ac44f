"""The previous Ray checkpoint is found and fetched as checkpoint.prev.pt (no Ray cluster needed:
a ``ray.train.Checkpoint`` on a local folder laid out as Ray storage is)."""

from __future__ import annotations

from pathlib import Path

from ray.train import Checkpoint

from cjepa.distributed.ray_checkpoints import copy_previous_checkpoint, previous_checkpoint_path


def _storage(root: Path, epochs: list[int], without_file: tuple[int, ...] = (), layout: str = "epoch_{:04d}") -> Path:
    for e in epochs:
        folder = root / layout.format(e)
        folder.mkdir(parents=True)
        if e not in without_file:
            (folder / "checkpoint.pt").write_bytes(f"epoch {e}".encode())
    (root / "checkpoint_manager_snapshot.json").write_text("{}")  # other entries Ray keeps there
    return root


def test_the_newest_older_folder_is_fetched_as_prev(tmp_path):
    storage = _storage(tmp_path / "exp", [1, 2, 3])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dst = copy_previous_checkpoint(Checkpoint(str(storage / "epoch_0003")), run_dir)
    assert dst == run_dir / "checkpoint.prev.pt" and dst.read_bytes() == b"epoch 2"


def test_no_previous_folder_or_file_gives_none(tmp_path):
    storage = _storage(tmp_path / "exp", [1, 4], without_file=(1,))
    assert previous_checkpoint_path(Checkpoint(str(storage / "epoch_0001"))) is None  # the first one
    assert previous_checkpoint_path(Checkpoint(str(storage / "epoch_0004"))) is None  # epoch 1 has no file
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert copy_previous_checkpoint(Checkpoint(str(storage / "epoch_0004")), run_dir) is None
    assert not (run_dir / "checkpoint.prev.pt").exists()


def test_tune_checkpoint_folders_of_a_trial_trained_in_its_actor(tmp_path):
    """Tune names a trial's checkpoints checkpoint_000000, ...; an epoch_ folder beside them is not one of them."""
    storage = _storage(tmp_path / "trial", [0, 1, 2], layout="checkpoint_{:06d}")
    (storage / "epoch_0009").mkdir()
    (storage / "epoch_0009" / "checkpoint.pt").write_bytes(b"not tune's")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dst = copy_previous_checkpoint(Checkpoint(str(storage / "checkpoint_000002")), run_dir)
    assert dst is not None and dst.read_bytes() == b"epoch 1"
    assert previous_checkpoint_path(Checkpoint(str(storage / "checkpoint_000000"))) is None
