"""End to end on CPU (issue 23 item 5): an ImageNet-layout tree of real photo crops (20 classes, a
flat ``val/`` with ``LOC_val_solution.csv``, JPEGs of mixed sizes and aspect ratios) is converted
by ``cjepa data convert`` and trained by ``cjepa train --workers 2`` at 64 px through the shard
stream; a run whose rank 1 is SIGKILLed mid-epoch resumes from the epoch-1 checkpoint and ends
with exactly the weights of the uninterrupted run (the stream's promise: a batch is a function of
(seed, step, world size, loader workers)); a ``--full --dry-run`` study on the shards lists its
trials.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import ray
import ray.cloudpickle
import torch

from cjepa.config import load_config
from cjepa.distributed import fit_distributed
from cjepa.engine import Reporter, load_checkpoint, read_metrics
from tests.data.test_stream import photo_folder

pytestmark = pytest.mark.integration
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

CLASSES, PER_CLASS, VAL_PER_CLASS = 20, 12, 3
KILL_STEP = 10  # epoch 2 of 2 (7 steps per epoch): resumed from the epoch-1 checkpoint at step 7


class KillOnce(Reporter):
    """Rank 1 SIGKILLs its own process at KILL_STEP once (a marker file); every rank logs its start epoch."""

    def __init__(self, rank: int, out: str) -> None:
        self.rank, self.out = rank, Path(out)

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict) -> None:
        with (self.out / "starts.jsonl").open("a") as fh:
            fh.write(json.dumps([self.rank, start_epoch]) + "\n")

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        if self.rank == 1 and step == KILL_STEP and not (self.out / "killed").exists():
            (self.out / "killed").touch()
            os.kill(os.getpid(), signal.SIGKILL)


def killer(out: str):
    return lambda rank: [KillOnce(rank, out)]
REPO = Path(__file__).resolve().parents[2]


def imagenet_tree(root: Path) -> Path:
    """``train/<wnid>/*.JPEG`` and a flat ``val/`` whose labels are in ``LOC_val_solution.csv``."""
    photo_folder(root / "train", CLASSES, PER_CLASS, sides=(48, 120))
    flat = photo_folder(root / "val_by_class", CLASSES, VAL_PER_CLASS, sides=(48, 120), seed=1)
    (root / "val").mkdir()
    lines = ["ImageId,PredictionString"]
    for i, path in enumerate(sorted(flat.rglob("*.JPEG"))):
        name = f"ILSVRC2012_val_{i + 1:08d}"
        path.rename(root / "val" / f"{name}.JPEG")
        lines.append(f"{name},{path.parent.name} 1 2 3 4")
    (root / "LOC_val_solution.csv").write_text("\n".join(lines) + "\n")
    for d in (root / "val_by_class").iterdir():
        d.rmdir()
    (root / "val_by_class").rmdir()
    return root


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """``cjepa data convert`` through the CLI's main in this process (no interpreter to start; the same command
    code; ``--ray`` conversion is tested in test_convert_ray.py). ``--workers 1``: the shards are written here,
    never by a process forked from this one, which may hold an earlier module's Ray threads."""
    from cjepa.cli import main

    root = imagenet_tree(tmp_path_factory.mktemp("imagenet") / "ILSVRC")
    out = tmp_path_factory.mktemp("shards") / "in20"
    assert main(["data", "convert", str(root), str(out), "--format", "jpeg", "--resize", "80", "--shard-size", "32",
                 "--workers", "1"]) == 0
    classes = [json.loads((out / s / "classes.json").read_text()) for s in ("train", "val")]
    assert classes[0] == classes[1] and len(classes[0]) == CLASSES  # one class index for both splits
    return out


@pytest.fixture(scope="module")
def ray_local():
    if not ray.is_initialized():
        ray.init(num_cpus=4)
    yield


OVERRIDES = ["data.dataset=parquet", "data.val_samples=0", "model.img_size=64", "model.patch_size=8",
             "model.in_chans=3",
             "model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.pred_embed_dim=16",
             "model.pred_depth=1", "mask.target_scale=[0.1,0.15]", "mask.min_keep=4", "optim.batch_size=32",
             "optim.warmup_epochs=0.5", "run.epochs=2", "run.threads=1", "run.precision=fp32", "run.log_every=1",
             "data.num_workers=1", "data.hflip=0.5", "eval.every=2", "eval.train_samples=120",
             "eval.test_samples=40", "eval.linear_epochs=5", "eval.raw_baseline=false"]


def test_convert_train_two_workers_kill_and_resume(shards: Path, ray_local, tmp_path: Path) -> None:
    from cjepa.config.presets import resolve_config_path

    overrides = [*OVERRIDES, f"data.root={shards}", f"data.cache_dir={tmp_path / 'cache'}"]
    cli_run = tmp_path / "cli"
    cmd = [sys.executable, "-m", "cjepa", "train", "--workers", "2", "--storage", str(tmp_path / "ray"),
           "--no-mlflow", *overrides, f"run.output_dir={cli_run}"]
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    faulty = load_config(resolve_config_path(None), [*overrides, f"run.output_dir={tmp_path / 'faulty'}"])  # as the CLI
    # The CLI's uninterrupted reference trains alongside the faulty run (2 + 2 workers on the 4 Ray CPUs; Train
    # runs "cli-<hash>" and "faulty-<hash>"); its output goes to files, which cannot fill up as a pipe would.
    with (tmp_path / "cli.out").open("w") as out, (tmp_path / "cli.err").open("w") as err:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=out, stderr=err)
        try:
            fit_distributed(faulty, num_workers=2, storage_path=str(tmp_path / "ray"), max_failures=1,
                            reporters=killer(str(tmp_path)))
            proc.wait(timeout=600)
        finally:
            if proc.poll() is None:  # the faulty run failed, or the CLI hangs: no stray driver left behind
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, (tmp_path / "cli.err").read_text()[-3000:]
    records = read_metrics(cli_run)
    assert [m["epoch"] for m in records] == [1, 2] and 0.0 < records[-1]["knn_target"] <= 1.0
    straight = load_checkpoint(cli_run / "checkpoint.pt")
    assert straight["step"] == 14  # 240 images: 2 ranks x 1 lane of 120 rows, 7 batches of 16 per epoch

    assert (tmp_path / "killed").exists(), "the kill hook never fired"
    starts = sorted(json.loads(line) for line in (tmp_path / "starts.jsonl").read_text().splitlines())
    assert starts == [[0, 0], [0, 1], [1, 0], [1, 1]]  # both ranks restarted from the epoch-1 checkpoint
    resumed = load_checkpoint(tmp_path / "faulty" / "checkpoint.pt")
    assert resumed["step"] == 14
    for name, w in straight["online"].items():  # killed + resumed == uninterrupted, bit for bit
        assert torch.equal(resumed["online"][name], w), name


def test_full_dry_run_lists_trials_on_the_shards(shards: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, str(REPO / "sweeps" / "vicreg_coeff.py"), "--full", "--dry-run", "--storage",
           str(tmp_path / "results"), "data.val_samples=40", f"data.root={shards}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "study vicreg_coeff_full: 6 arms x 3 seeds" in proc.stdout
    refused = subprocess.run(cmd[:-1], capture_output=True, text=True, timeout=300)  # no data.root
    assert refused.returncode == 2 and "data.dataset=parquet needs data.root" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
