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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cjepa.sweep.console import console_options
from cjepa.sweep.naming import _indexed, _slug, child_run_name, flat_config, trial_arm, trial_dir_name
from cjepa.sweep.study import Study, plan_study, trial_config

TRIAL_DRIVER_MEMORY = 256 * 2**20  # bytes: a Tune trial function process with torch imported


@dataclass
class StudyResult:
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


def run_trial(config: dict[str, Any], study: Study, arms: dict[str, dict[str, Any]], extra: list[str],
              tracking: dict[str, Any] | None, storage: str, configs: dict[tuple[str, int], Any]) -> None:
    """The Tune trainable: one Ray Train run for (arm, seed), of the Config the driver validated
    (grid) or of the settings Optuna sampled for this trial (validated here, once)."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from cjepa.distributed import fit_distributed
    from cjepa.distributed.preflight import refuse_repeat_failure, remember_failure
    from cjepa.sweep.trial_actor import train_in_trial_actor

    arm, settings = trial_arm(config, study, arms)
    seed = int(flat_config(config)["seed"])
    cfg = copy.deepcopy(configs[(arm, seed)]) if (arm, seed) in configs else trial_config(study, settings, seed, extra)
    name = trial_dir_name(study.name, arm, seed)
    with (Path(storage) / study.name / "trial_starts.jsonl").open("a") as fh:  # audit: what ran when
        fh.write(json.dumps({"trial": name, "trial_id": tune.get_context().get_trial_id(),
                             "time": time.time()}) + "\n")
    cfg.run.output_dir = str(Path(storage) / study.name / "runs" / name)
    track = None
    if tracking:
        tags = {"study": study.name, "arm": arm, "seed": str(seed), "trial_id": tune.get_context().get_trial_id()}
        run_name = child_run_name(study, arm, settings, seed, tags["trial_id"])
        track = {**tracking, "run_name": run_name, "tags": tags}
    resources = {"CPU": study.cpus_per_worker} if not study.use_gpu else None
    # A deterministic failure (a non-finite loss recurs at the same step) is not re-trained by Tune's retry.
    refuse_repeat_failure(cfg.run.output_dir)
    try:
        if study.trains_in_trial_actor():
            train_in_trial_actor(cfg, track, name)
        else:
            fit_distributed(cfg, study.workers_per_trial, use_gpu=study.use_gpu, resources_per_worker=resources,
                            storage_path=str(Path(storage) / study.name / "train"), name=name, tracking=track,
                            callbacks=[TuneReportCallback()])
    except Exception as exc:
        remember_failure(cfg.run.output_dir, exc)
        raise
    with (Path(storage) / study.name / "trial_ends.jsonl").open("a") as fh:  # bench/sweep_utilisation.py
        fh.write(json.dumps({"trial": name, "time": time.time()}) + "\n")


def _search(study: Study, arms: dict[str, dict[str, Any]], only: list[tuple[str, int]] | None
            ) -> tuple[dict[str, Any], Any, int]:
    """(param space, search algorithm or None, num_samples): the grid of arms x seeds, an extension's
    (arm, seed) pairs, or Optuna's space with TPE (its first points tried first)."""
    from ray import tune

    if only is not None:
        return {"trial": tune.grid_search([{"arm": a, "seed": s} for a, s in only])}, None, 1
    if study.search == "grid":
        return {"arm": tune.grid_search(list(arms)), "seed": tune.grid_search(list(study.seeds))}, None, 1
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    search_alg = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=study.seeds[0]),
                              points_to_evaluate=_optuna_points(study))
    return {**_optuna_space(study), "seed": study.seeds[0]}, search_alg, study.num_samples


def build_tuner(study: Study, arms: dict[str, dict[str, Any]], extra: list[str], tracking: dict[str, Any] | None,
                storage: str, resume: bool, configs: dict[tuple[str, int], Any] | None = None, verbose: bool = False,
                only: list[tuple[str, int]] | None = None):
    """A fresh Tuner, or the restored one when ``resume`` and the study exists in storage.

    ``only``: an extension (``--extend``): just these (arm, seed) trials, as a Tune experiment of its
    own beside the study's (Tune cannot add trials to a finished experiment, and restoring one
    cannot change its search space)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from cjepa.sweep.stopper import CollapseStopper

    trainable = tune.with_parameters(run_trial, study=study, arms=arms, extra=extra, tracking=tracking,
                                     storage=storage, configs=configs or {})
    # A trial that trains in its own actor holds its worker's CPUs. One that only drives a
    # TorchTrainer (whose controller asks for 0 CPU) leaves them to its workers and asks for no
    # CPU: with even 0.01 CPU, two one-CPU workers of two trials no longer fit 2 cores and the
    # trials train one after the other (measured: docs/benchmarks.md, "Sweep utilisation"). Tune
    # refuses an all-zero request, so that trial reserves memory instead: about what the waiting
    # driver process holds.
    trial_resources = ({"cpu": study.cpus_per_worker} if study.trains_in_trial_actor()
                       else {"cpu": 0, "memory": TRIAL_DRIVER_MEMORY})
    trainable = tune.with_resources(trainable, trial_resources)
    name = study.name if only is None else extension_name(study.name, only)
    path = str(Path(storage) / name)
    epochs = trial_config(study, next(iter(arms.values())), study.seeds[0], extra).run.epochs
    trials = len(only) if only is not None else (len(arms) * len(study.seeds) if study.search == "grid"
                                                 else study.num_samples)
    # a restored Tuner keeps its pickled reporter and callbacks; the env var counts
    console = console_options(study, verbose, extension=only is not None, epochs=epochs, trials=trials)
    if resume and tune.Tuner.can_restore(path):
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    scheduler = (ASHAScheduler(time_attr="epoch", max_t=epochs, grace_period=study.grace_period)
                 if study.scheduler == "asha" else None)
    space, search_alg, num_samples = _search(study, arms, only)
    stop = (CollapseStopper(study.collapse_std, study.collapse_patience, Path(path) / "stop_reasons.jsonl")
            if study.collapse_std > 0 else None)

    def trial_name(trial) -> str:
        cfg = flat_config(trial.config)
        arm = cfg["arm"] if study.search == "grid" else trial.trial_id
        return _slug(f"{arm}-s{cfg['seed']}")

    return tune.Tuner(
        trainable, param_space=space,
        tune_config=tune.TuneConfig(metric=study.metric, mode=study.mode, scheduler=scheduler, search_alg=search_alg,
                                    num_samples=num_samples, max_concurrent_trials=study.max_concurrent,
                                    trial_name_creator=trial_name, trial_dirname_creator=trial_name),
        run_config=tune.RunConfig(name=name, storage_path=storage, stop=stop,
                                  failure_config=tune.FailureConfig(max_failures=study.max_failures),
                                  # a trial trained in its actor: Tune's checkpoints, the last two (as Ray Train's)
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2), **console),
    )


def extension_name(study_name: str, pairs: list[tuple[str, int]]) -> str:
    """The Tune experiment of one extension, named after what it adds (the same additions resume it)."""
    digest = hashlib.sha1(json.dumps(sorted(pairs), default=str).encode()).hexdigest()[:8]
    return f"{study_name}-extend-{digest}"


def prepare_study(study: Study, storage: str | None, resume: bool, extra: list[str], extend: bool = False
                  ) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, int], Any], str, Path, list | None]:
    """Everything checked before Ray starts: the study, a writable storage, no earlier results
    overwritten without ``--resume``. Returns (arms, the grid trials' Configs, storage, study dir,
    the (arm, seed) trials an ``--extend`` adds, or None). The dry run calls it too."""
    from cjepa.distributed.preflight import resolve_storage
    from cjepa.errors import StudyError
    from cjepa.sweep.results import check_not_overwriting, done_trials, existing_outputs

    arms, configs = plan_study(study, extra)
    storage = resolve_storage(storage)
    study_dir = Path(storage) / study.name
    if not extend:
        check_not_overwriting(study_dir, resume, study.name)
        if resume and not existing_outputs(study_dir):  # a mistyped --storage must not start a new study
            raise StudyError(nothing_to("resume", study.name, study_dir,
                                        "no study.json, results.parquet or Tune state"))
        return arms, configs, storage, study_dir, None
    if study.search != "grid":
        raise StudyError(f"study {study.name!r}: --extend adds levels or seeds to a grid study; "
                         "an Optuna study grows with --resume and a larger num_samples")
    if "results.parquet" not in existing_outputs(study_dir):
        raise StudyError(nothing_to("extend", study.name, study_dir, "no results.parquet"))
    done = done_trials(study_dir)
    return arms, configs, storage, study_dir, [(a, s) for a in arms for s in study.seeds if (a, s) not in done]


def nothing_to(verb: str, name: str, study_dir: Path, missing: str) -> str:
    """The one line for ``--resume`` / ``--extend`` on a storage that holds no such study (nothing started)."""
    return (f"study {name!r}: nothing to {verb} in {study_dir} ({missing}); check --storage and --name, "
            f"or run it first without --{verb} (nothing was started)")


def keep_ray_train_runner(study: Study, study_dir: Path) -> None:
    """A study whose trials trained in Ray Train (its ``train/`` folder holds their checkpoints,
    e.g. one started before trials trained in their actor) resumes and extends there too: under
    ``auto`` its unfinished trials would otherwise start over, and open second MLflow runs."""
    if study.trial_runner == "auto" and study.trains_in_trial_actor() and (study_dir / "train").is_dir():
        study.trial_runner = "ray_train"
        print(f"study {study.name}: its trials trained in Ray Train ({study_dir / 'train'}); they continue there")


def run_study(study: Study, storage: str | None = None, resume: bool = False, tracking_uri: str | None = None,
              extra: list[str] | None = None, mlflow: bool = True, verbose: bool = False,
              extend: bool = False) -> StudyResult:
    """Validate, run (or resume, or extend), then write the results table and print the summary.
    ``verbose``: Ray Tune's whole console output instead of the quiet table (:func:`console_options`)."""
    from cjepa.distributed.preflight import check_ray_address, connect_ray
    from cjepa.sweep.results import finish_parent, open_parent, write_results

    extra = list(extra or [])
    arms, configs, storage, study_dir, only = prepare_study(study, storage, resume, extra, extend)  # before Ray
    keep_ray_train_runner(study, study_dir)
    if only == []:
        print(f"study {study.name}: every trial of the grid is in {study_dir / 'results.parquet'}; nothing to run")
    else:
        check_ray_address()  # RAY_ADDRESS with no cluster behind it: one line in seconds, before the parent run
    tracking = None
    parent = None
    if mlflow:
        from cjepa.tracking import check_tracking_uri, resolve_tracking_uri

        uri = resolve_tracking_uri(tracking_uri)
        check_tracking_uri(uri)
        parent = open_parent(study, uri, study_dir, resume or extend)  # an extension keeps the study's parent
        tracking = {"tracking_uri": uri, "experiment": study.name, "parent_run_id": parent}
    grid: Any = []
    if only != []:
        # A trial whose trainer had already finished when the driver died ends, after a restore,
        # without a new report: Tune must not reject that final (metric-less) result.
        os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
        connect_ray(log_to_driver=verbose)  # quiet: the trials' step and checkpoint lines stay in Ray's logs
        grid = build_tuner(study, arms, extra, tracking, storage, resume, configs, verbose=verbose, only=only).fit()
    table, summary = write_results(study, arms, grid, study_dir, tracking, extra)
    print("\n" + summary)
    if tracking and parent:
        from cjepa.tracking.ui import study_link_line

        experiment_id = finish_parent(tracking["tracking_uri"], parent, study_dir, table, summary, study)
        print(study_link_line(tracking["tracking_uri"], experiment_id), flush=True)  # the study's last line
    return StudyResult(study_dir, table, summary, parent)
