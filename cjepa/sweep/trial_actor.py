"""A one-worker CPU trial trained inside Tune's trial actor itself, without a ``TorchTrainer``.

Why: a trial that runs a ``TorchTrainer`` starts, besides Tune's trial actor, Train V2's
controller, its placement-group cleaner, synchronisation actor, dataset manager and the worker
(which imports torch and cjepa again), and sets up a gloo group of one; on 2 cores that was
~20 s of CPU work per trial before its first step (docs/benchmarks.md, "Sweep utilisation").
With one CPU worker there is nothing for Ray Train to distribute, so the trial actor trains.

What a trial keeps, the same as under Ray Train (:mod:`cjepa.distributed.ray_trainer`, whose
pieces this reuses): a scratch run dir restored from the trial's latest checkpoint (Tune's,
``tune.get_checkpoint``), so a crashed trial that Tune retries (``max_failures``) resumes
exactly, and so does a restored study; one report per epoch with the checkpoint attached
(:class:`~cjepa.distributed.reporter.TuneReporter`), which is what ASHA, the collapse stopper
and the results table read; the MLflow run, continued after a restart (its id is in the
checkpoint); the export of the final files into ``run.output_dir``. Several workers per trial, or
GPUs, still go through Ray Train (``Study.trial_runner``).

Library not used here: Ray Train itself, for the reasons above; Tune's function-trainable API is
the Ray way to train in the trial (``tune.report`` / ``tune.get_checkpoint``).
"""

from __future__ import annotations

import copy
import shutil
import sys
from pathlib import Path

from cjepa.config import Config
from cjepa.distributed.reporter import COMPANION_FILES, TuneReporter
from cjepa.engine.checkpoint import CHECKPOINT_NAME
from cjepa.sweep.plan import Tracking


def train_in_trial_actor(cfg: Config, tracking: Tracking | None, name: str) -> None:
    """Train ``cfg`` in this Tune trial's process, reporting each epoch to Tune.

    ``name`` is the trial's stable name (its run dir, hence the scratch dir, survives a retry);
    ``tracking`` is the trial's MLflow run (:meth:`Tracking.for_trial`), or None.
    """
    from ray import tune

    from cjepa.distributed.ray_trainer import (
        absolute_paths,
        main_reporters,
        remove_run_dir,
        restore_run_dir,
        train_telling_reporters,
        worker_run_dir,
    )

    user_cfg = absolute_paths(cfg)  # as given: MLflow's params, tags and run name come from it
    run_cfg = copy.deepcopy(user_cfg)
    run_dir = worker_run_dir(name, 0)
    restore_run_dir(run_dir, tune.get_checkpoint())
    out = Path(user_cfg.run.output_dir)
    if (out / CHECKPOINT_NAME).is_file():
        # Exported only when the trial finished: its last state. A driver killed before Tune's experiment
        # state (saved every >= 10 s) recorded the trial as done restores it with an older checkpoint or
        # none, which re-trained it and opened a second MLflow run (bench/study_load.py, docs/study_load.md).
        export_run(out, run_dir)
    run_cfg.run.output_dir = str(run_dir)
    run_cfg.run.resume = True  # a retry continues from the checkpoint just restored
    mlflow = tracking.reporter_kwargs() if tracking else None
    reporters = [*main_reporters(user_cfg, mlflow, run_name=name), TuneReporter()]  # Grafana's label: the trial
    try:
        train_telling_reporters(run_cfg, reporters)
    except BaseException:  # failed, or ended by ASHA / the stopper: its epochs complete the results table
        try:
            export_run(run_dir, out, files=("metrics.jsonl",))
        except OSError as err:  # the error that ended the run is the one to report
            print(f"[cjepa] warning: could not copy metrics.jsonl to {out}: {err}", file=sys.stderr)
        raise
    export_run(run_dir, out)
    remove_run_dir(run_dir)


def export_run(run_dir: Path, output_dir: Path, files: tuple[str, ...] = (CHECKPOINT_NAME, *COMPANION_FILES)) -> None:
    """Copy the run's files to where the single-process tools look for them; by default the set
    the Ray Train path exports from its final checkpoint (exact-resume state and companions)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    for file in files:
        if (run_dir / file).is_file():
            shutil.copy2(run_dir / file, output_dir / file)
