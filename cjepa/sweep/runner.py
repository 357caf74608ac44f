"""Run a :class:`~cjepa.sweep.study.Study` with Ray Tune; each trial trains in its own actor or in Ray Train.

Ray 2.60: the Tune trainable is a *function*. With one CPU worker per trial it trains in the
trial actor itself (:mod:`cjepa.sweep.trial_actor`: Tune's checkpoints, no Train processes to
start). Otherwise it builds a ``TorchTrainer`` (Train V2, through
:func:`cjepa.distributed.fit_distributed`) with ``TuneReportCallback`` so rank 0's per-epoch
report reaches Tune; that trainer run is named after the trial, so restoring the study makes
each unfinished trial's trainer continue from its own last checkpoint. Either way the MLflow
run continues too (its id is in the checkpoint). Tune gives us the search (grid, or OptunaSearch with TPE),
ASHA on ``epoch``, the stopper, restore and the progress table; we add the MLflow parent run,
the Parquet results table and the seed-paired summary.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cjepa.config import Config
from cjepa.sweep.console import console_options
from cjepa.sweep.naming import _indexed, _slug, child_run_name, flat_config, trial_arm, trial_dir_name
from cjepa.sweep.plan import StudyPlan, Tracking, TrialKey, prepare_study
from cjepa.sweep.study import Study, trial_config

TRIAL_DRIVER_MEMORY = 256 * 2**20  # bytes: a Tune trial function process with torch imported


@dataclass(frozen=True)
class StudyResult:
    """What a finished run of a study left: its folder, its results table, its summary, its MLflow parent."""

    study_dir: Path
    table: Path  # Parquet, one row per trial and epoch
    summary_md: str
    parent_run_id: str | None


def _optuna_space(study: Study) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {}
    for key, dim in study.space.items():
        if dim.kind == "loguniform":
            space[key] = tune.loguniform(dim.low, dim.high)
        elif dim.kind == "uniform":
            space[key] = tune.uniform(dim.low, dim.high)
        elif _indexed(dim):
            space[key] = tune.choice(list(range(len(dim.choices))))
        else:
            space[key] = tune.choice(list(dim.choices))
    return space


def _optuna_points(study: Study) -> list[dict[str, Any]] | None:
    """``Study.initial_points`` in the searcher's terms (indices for list-valued choices)."""
    if not study.initial_points:
        return None
    return [{k: (study.space[k].choices.index(v) if _indexed(study.space[k]) else v) for k, v in point.items()}
            for point in study.initial_points]


def run_trial(config: dict[str, Any], plan: StudyPlan, tracking: Tracking | None) -> None:
    """The Tune trainable: one training run for (arm, seed), of the Config the driver validated
    (grid) or of the settings Optuna sampled for this trial (validated here, once)."""
    from ray import tune

    from cjepa.distributed.preflight import refuse_repeat_failure, remember_failure

    study = plan.study
    arm, settings = trial_arm(config, study, plan.arms)
    seed = int(flat_config(config)["seed"])
    planned = plan.trials.configs.get((arm, seed))  # a grid trial's; an Optuna trial builds its own, here
    cfg = copy.deepcopy(planned) if planned is not None else trial_config(study, settings, seed, list(plan.extra))
    name = trial_dir_name(study.name, arm, seed)
    trial_id = tune.get_context().get_trial_id()
    _record_start(plan, name, trial_id)
    cfg.run.output_dir = str(Path(plan.storage) / study.name / "runs" / name)
    record_config(cfg)
    track = None
    if tracking:
        tags = {"study": study.name, "arm": arm, "seed": str(seed), "trial_id": trial_id}
        track = tracking.for_trial(child_run_name(study, arm, settings, seed, trial_id), tags)
    # A deterministic failure (a non-finite loss recurs at the same step) is not re-trained by Tune's retry.
    refuse_repeat_failure(cfg.run.output_dir)
    try:
        _train(plan, cfg, track, name)
    except Exception as exc:
        remember_failure(cfg.run.output_dir, exc)
        raise


def _train(plan: StudyPlan, cfg: Config, track: Tracking | None, name: str) -> None:
    """Train one trial where the study says: in this trial actor, or in a TorchTrainer's workers."""
    from ray.tune.integration.ray_train import TuneReportCallback

    from cjepa.distributed import fit_distributed
    from cjepa.sweep.trial_actor import train_in_trial_actor

    study = plan.study
    if study.trains_in_trial_actor():
        train_in_trial_actor(cfg, track, name)
        return
    resources = {"CPU": study.cpus_per_worker} if not study.use_gpu else None
    fit_distributed(cfg, study.workers_per_trial, use_gpu=study.use_gpu, resources_per_worker=resources,
                    storage_path=str(Path(plan.storage) / study.name / "train"), name=name,
                    tracking=track.reporter_kwargs() if track else None, callbacks=[TuneReportCallback()])


def _record_start(plan: StudyPlan, name: str, trial_id: str) -> None:
    """One line in the study folder's trial_starts.jsonl: every start of a trial function, restarts included
    (what a crashed, restored or extended study ran; its tests and the study benchmarks read it), with
    the process it ran in (a reused trial actor runs several)."""
    record = {"trial": name, "trial_id": trial_id, "time": time.time(), "pid": os.getpid()}
    with (Path(plan.storage) / plan.study.name / "trial_starts.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def record_config(cfg: Config) -> None:
    """The trial's config.yaml in its ``run.output_dir``, written before it trains unless one is there.

    Why: the results table describes each trial by this file (what ran, not what the study script says
    now). The trainer writes its own copy beside its checkpoint, exported there when the trial finishes;
    a trial stopped by ASHA or the stopper, or failed, exported none, and its rows were rebuilt from the
    script. A retried or resumed trial keeps the file of its first start."""
    from cjepa.atomic import atomic_write
    from cjepa.distributed.ray_trainer import absolute_paths

    path = Path(cfg.run.output_dir) / "config.yaml"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = absolute_paths(cfg).to_yaml()  # the data paths as the trainer's own copy gives them
        atomic_write(path, lambda fh: fh.write(text), binary=False)


def _search(plan: StudyPlan) -> tuple[dict[str, Any], Any, int]:
    """(param space, search algorithm or None, num_samples): the grid of arms x seeds, an extension's
    (arm, seed) pairs, or Optuna's space with TPE (its first points tried first)."""
    from ray import tune

    study = plan.study
    if plan.only is not None:
        return {"trial": tune.grid_search([{"arm": a, "seed": s} for a, s in plan.only])}, None, 1
    if study.search == "grid":
        return {"arm": tune.grid_search(list(plan.arms)), "seed": tune.grid_search(list(study.seeds))}, None, 1
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    search_alg = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=study.seeds[0]),
                              points_to_evaluate=_optuna_points(study))
    return {**_optuna_space(study), "seed": study.seeds[0]}, search_alg, study.num_samples


def _trial_resources(study: Study) -> dict[str, float]:
    """What a Tune trial reserves. A trial that trains in its own actor holds its worker's CPUs. One
    that only drives a TorchTrainer (whose controller asks for 0 CPU) leaves them to its workers and
    asks for no CPU: with even 0.01 CPU, two one-CPU workers of two trials no longer fit 2 cores and
    the trials train one after the other (measured: docs/benchmarks.md, "Sweep utilisation"). Tune
    refuses an all-zero request, so that trial reserves memory instead: about what the waiting
    driver process holds."""
    if study.trains_in_trial_actor():
        return {"cpu": study.cpus_per_worker}
    return {"cpu": 0, "memory": TRIAL_DRIVER_MEMORY}


def reuses_trial_actors(study: Study) -> bool:
    """Whether the next trial runs in the process of one that ended (Tune's ``reuse_actors``).

    A trial that trains in its actor spends ~8-12 s before its first step importing torch, timm,
    MLflow and cjepa in a new process, and tiny trials train in < 1 s (docs/study_load.md); a reused
    actor keeps its imports and its cached dataset. Nothing of a trial's own state survives it: the
    config, seed, threads, run dir, MLflow run and checkpoint are all set per trial, and a trial whose
    thread does not end within Tune's 2 s is not reused (Tune starts a new actor). Trials that drive a
    ``TorchTrainer`` are not reused: their work happens in Train's own worker processes."""
    return study.trains_in_trial_actor()


def build_tuner(plan: StudyPlan, tracking: Tracking | None = None, verbose: bool = False) -> Any:
    """A fresh Tuner, or the restored one when the plan resumes and the study exists in storage.

    An extension (``plan.only``, ``--extend``) runs just its (arm, seed) trials, as a Tune experiment of
    its own beside the study's (Tune cannot add trials to a finished experiment, and restoring one
    cannot change its search space)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from cjepa.sweep.stopper import CollapseStopper

    study = plan.study
    trainable = tune.with_resources(tune.with_parameters(run_trial, plan=plan, tracking=tracking),
                                    _trial_resources(study))
    name = study.name if plan.only is None else extension_name(study.name, plan.only)
    path = str(Path(plan.storage) / name)
    epochs = plan.trial_config(next(iter(plan.arms)), study.seeds[0]).run.epochs
    # a restored Tuner keeps its pickled reporter and callbacks; the env var counts
    console = console_options(study, verbose, extension=plan.only is not None, epochs=epochs,
                              trials=plan.trial_count())
    if plan.resume and tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=study.grace_period)
                 if study.scheduler == "asha" else None)
    space, search_alg, num_samples = _search(plan)
    stop = (CollapseStopper(study.collapse_std, study.collapse_patience, Path(path) / "stop_reasons.jsonl")
            if study.collapse_std > 0 else None)

    def trial_name(trial: Any) -> str:
        cfg = flat_config(trial.config)
        arm = cfg["arm"] if study.search == "grid" else trial.trial_id
        return _slug(f"{arm}-s{cfg['seed']}")

    return tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(metric=study.metric, mode=study.mode, scheduler=scheduler, search_alg=search_alg,
                                    num_samples=num_samples, max_concurrent_trials=study.max_concurrent,
                                    trial_name_creator=trial_name, trial_dirname_creator=trial_name,
                                    reuse_actors=reuses_trial_actors(study)),
        run_config=tune.RunConfig(name=name, storage_path=plan.storage, stop=stop,
                                  failure_config=tune.FailureConfig(max_failures=study.max_failures),
                                  # a trial trained in its actor: Tune's checkpoints, the last two (as Ray Train's)
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2), **console),
    )


def extension_name(study_name: str, pairs: Sequence[TrialKey]) -> str:
    """The Tune experiment of one extension, named after what it adds (the same additions resume it)."""
    digest = hashlib.sha1(json.dumps(sorted(pairs), default=str).encode()).hexdigest()[:8]
    return f"{study_name}-extend-{digest}"


def open_tracking(plan: StudyPlan, tracking_uri: str | None) -> Tracking:
    """The study's MLflow parent run, opened (or, resumed or extended, reopened) on a checked store."""
    from cjepa.sweep.results import open_parent
    from cjepa.tracking import check_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    # an extension keeps the study's parent
    parent = open_parent(plan.study, uri, plan.study_dir, plan.resume or plan.only is not None)
    return Tracking(uri, plan.study.name, parent)


def run_study(study: Study, storage: str | None = None, resume: bool = False, tracking_uri: str | None = None,
              extra: list[str] | None = None, mlflow: bool = True, verbose: bool = False,
              extend: bool = False) -> StudyResult:
    """Validate, run (or resume, or extend), then write the results table and print the summary.
    ``verbose``: Ray Tune's whole console output instead of the quiet table (:func:`console_options`)."""
    from cjepa.distributed.preflight import check_ray_address, connect_ray
    from cjepa.sweep.results import finish_parent, write_results

    plan = prepare_study(study, storage, resume, list(extra or []), extend)  # before Ray
    study, study_dir = plan.study, plan.study_dir
    if plan.only == ():
        print(f"study {study.name}: every trial of the grid is in {study_dir / 'results.parquet'}; nothing to run")
    else:
        check_ray_address()  # RAY_ADDRESS with no cluster behind it: one line in seconds, before the parent run
    tracking = open_tracking(plan, tracking_uri) if mlflow else None
    grid: Any = []
    if plan.only != ():
        # A trial whose trainer had already finished when the driver died ends, after a restore,
        # without a new report: Tune must not reject that final (metric-less) result.
        os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
        connect_ray(log_to_driver=verbose)  # quiet: the trials' step and checkpoint lines stay in Ray's logs
        grid = build_tuner(plan, tracking, verbose=verbose).fit()
    table, summary = write_results(study, plan.arms, grid, study_dir, tracking, list(plan.extra))
    print("\n" + summary)
    if tracking is not None and tracking.parent_run_id:
        from cjepa.tracking.ui import study_link_line

        experiment_id = finish_parent(tracking.uri, tracking.parent_run_id, study_dir, table, summary, study)
        print(study_link_line(tracking.uri, experiment_id), flush=True)  # the study's last line
    return StudyResult(study_dir, table, summary, tracking.parent_run_id if tracking else None)
