"""The engine -> Ray Train bridge: a :class:`~cjepa.engine.Reporter` that calls ``ray.train.report``.

Why ``on_checkpoint`` and not ``on_epoch``: Train V2 makes ``ray.train.report`` a collective
(every worker must call it the same number of times, in step), and a checkpoint can only be
attached once the engine has written it. The engine calls ``on_checkpoint`` exactly once per
epoch on every rank, after the (rank-0) checkpoint write, so one report per epoch carries both
the metrics and, where one was written, the checkpoint.

The checkpoint directory handed to Ray holds ``checkpoint.pt`` (the engine's exact-resume
state, the only file a resume needs) plus ``metrics.jsonl``/``config.yaml``/``masks.png`` so
that a resume on another node and the driver's export get the run's history with it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from cjepa.engine.checkpoint import CHECKPOINT_NAME
from cjepa.engine.reporting import Reporter

#: Files of the rank-0 run dir that travel with every reported checkpoint (when present).
COMPANION_FILES = ("metrics.jsonl", "config.yaml", "masks.png")


def checkpoint_dir_name(epoch: int) -> str:
    """Name of an epoch's checkpoint folder in Ray storage (sortable, readable)."""
    return f"epoch_{epoch:04d}"


def flat_metrics(epoch: int, metrics: dict[str, Any]) -> dict[str, float]:
    """Numbers only (``ray.train.report`` refuses tensors; Tune and MLflow want scalars), with
    ``epoch`` always present: Tune's ``training_iteration`` restarts at 1 after a restore, so
    schedulers must use ``epoch`` as their time attribute."""
    out = {k: float(v) for k, v in metrics.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out["epoch"] = float(epoch)
    return out


class RayReporter(Reporter):
    """Reports every epoch to Ray Train from every rank; rank 0 attaches its checkpoint.

    Put it on every rank and *last* in each rank's reporter list: ``report`` blocks until all
    workers arrive, so reporters after it would run only after the whole group synchronised.
    Ray copies (SYNC upload) the checkpoint into ``RunConfig.storage_path/<name>/epoch_NNNN``;
    we hand it a throw-away copy in a temp dir so the engine's own file is never moved.

    ``commit_wait``: after which reported checkpoints rank 0 blocks until the controller has
    registered them (``get_all_reported_checkpoints(COMMITTED)``). ``report`` only queues the
    result for the controller's next poll (every ~2 s, RAY_TRAIN_HEALTH_CHECK_INTERVAL_S); a
    worker that dies before that poll (seen: a SIGKILL 7 steps later) loses that checkpoint and
    the restart begins from the one before. Later epochs lose only time (resume is exact and
    MLflow skips epochs it has), but losing the *first* checkpoint restarts from scratch and
    orphans the MLflow run whose id it held. So by default only the first checkpoint of each
    (re)start waits: ~1 s once, instead of ~1 s per epoch ("always").
    """

    def __init__(self, companions: tuple[str, ...] = COMPANION_FILES, commit_wait: str = "first") -> None:
        if commit_wait not in ("first", "always", "never"):
            raise ValueError(f"commit_wait: expected first, always or never, got {commit_wait!r}")
        self.companions = companions
        self.commit_wait = commit_wait
        self._committed_once = False
        self.run_dir: Path | None = None

    def on_start(self, run_dir: Path, start_epoch: int, extra: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)

    def on_checkpoint(self, epoch: int, metrics: dict[str, float], checkpoint: Path | None) -> None:
        flat = flat_metrics(epoch, metrics)
        name = checkpoint_dir_name(epoch)
        if checkpoint is None:
            self._send(flat, name, None)
            return
        tmp = Path(tempfile.mkdtemp(prefix="cjepa-ckpt-"))
        try:
            shutil.copy2(checkpoint, tmp / CHECKPOINT_NAME)
            for file in self.companions:
                src = Path(checkpoint).parent / file
                if src.is_file():
                    shutil.copy2(src, tmp / file)
            self._send(flat, name, tmp)
            if self.commit_wait == "always" or (self.commit_wait == "first" and not self._committed_once):
                self._wait_committed()
                self._committed_once = True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _send(self, flat: dict[str, float], name: str, directory: Path | None) -> None:
        import ray.train

        if directory is None:
            ray.train.report(flat, checkpoint_dir_name=name)
        else:
            ray.train.report(flat, checkpoint=ray.train.Checkpoint.from_directory(str(directory)),
                             checkpoint_dir_name=name, delete_local_checkpoint_after_upload=True)

    def _wait_committed(self) -> None:
        import ray.train

        ray.train.get_all_reported_checkpoints(consistency_mode=ray.train.CheckpointConsistencyMode.COMMITTED)


class TuneReporter(RayReporter):
    """The same per-epoch report from a run trained inside a Tune trial itself (no Ray Train):
    ``ray.tune.report``, which copies the checkpoint into the trial's storage before it returns.

    No commit wait: a Tune function trainable reports synchronously (its training thread pauses
    in ``report`` until the Tune controller asks for the next result, i.e. has taken this one), so
    a trial killed after ``report`` returned restarts from that checkpoint. Tune names the
    folders ``checkpoint_NNNNNN``; the epoch is in the metrics.
    """

    def __init__(self, companions: tuple[str, ...] = COMPANION_FILES) -> None:
        super().__init__(companions, commit_wait="never")

    def _send(self, flat: dict[str, float], name: str, directory: Path | None) -> None:
        from ray import tune

        tune.report(flat, checkpoint=None if directory is None else tune.Checkpoint.from_directory(str(directory)))
