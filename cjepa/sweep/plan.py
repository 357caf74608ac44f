"""What the runner hands around: the planned trials, the planned study, where it logs. Frozen values.

Why: the runner used to pass a 5-tuple (arms, Configs, storage, study dir, the trials an
extension adds) and an untyped ``tracking`` dict through about ten signatures, and changed the
Study in place on the way (a CLI flag, the runner a resumed study keeps). A reader had to know
each position and key, and could not tell which Study a trial or the results table had seen.
Each value here is built once, before Ray starts, and never changed after: a changed study is a
new value (``dataclasses.replace``), so what the dry run prints is what the trials run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cjepa.config import Config
    from cjepa.sweep.study import Study

#: A trial of a grid study: its arm's name and its seed.
TrialKey = tuple[str, int]


@dataclass(frozen=True)
class TrialPlan:
    """The trials a study's design makes: its named arms and, for a grid, each (arm, seed)'s Config.

    Why: the Configs are built and validated once, at the driver (:func:`cjepa.sweep.study.plan_study`),
    and pickled to the trials, which run them as they are. Optuna trials sample their settings inside
    Tune and build their Config there, so an Optuna plan has one arm, ``"optuna"``, and no Configs."""

    arms: dict[str, dict[str, Any]]
    configs: dict[TrialKey, Config] = field(default_factory=dict)


@dataclass(frozen=True)
class StudyPlan:
    """A study checked against its storage, ready to run: what ``run_study`` runs and ``--dry-run`` prints.

    Why one value: the Tuner, each trial and the results table read the same study (after the command
    line's flags and, for a study resumed or extended, the trial runner it started with), the same
    Configs and the same command-line overrides; none of them rebuilds or changes any of it."""

    study: Study
    trials: TrialPlan
    extra: tuple[str, ...]  # the command line's key=value overrides, applied after the study's own
    storage: str  # resolved: a local path or a URI Tune writes through
    study_dir: Path
    resume: bool = False
    #: ``--extend``: the (arm, seed) trials its results.parquet lacks (empty: nothing to run); None: the whole study
    only: tuple[TrialKey, ...] | None = None

    @property
    def arms(self) -> dict[str, dict[str, Any]]:
        return self.trials.arms

    def trial_config(self, arm: str, seed: int) -> Config:
        """The Config trial (arm, seed) runs: the planned one (a grid's), else built from the arm's settings."""
        from cjepa.sweep.study import trial_config

        planned = self.trials.configs.get((arm, seed))
        return planned if planned is not None else trial_config(self.study, self.arms[arm], seed, list(self.extra))

    def trial_count(self) -> int:
        """How many trials this run starts: an extension's, the grid's arms x seeds, or Optuna's samples."""
        if self.only is not None:
            return len(self.only)
        study = self.study
        return len(self.arms) * len(study.seeds) if study.search == "grid" else study.num_samples


@dataclass(frozen=True)
class Tracking:
    """Where MLflow runs go: the tracking store, the experiment (a study's name) and the parent run;
    for one trial (:meth:`for_trial`) also the child run's name and tags.

    Why: the same four facts reached the parent run, each trial and the results table as a dict
    whose keys only :class:`cjepa.tracking.MLflowReporter`'s signature named."""

    uri: str
    experiment: str
    parent_run_id: str | None = None
    run_name: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def for_trial(self, run_name: str, tags: Mapping[str, str]) -> Tracking:
        """A child run of this study's parent: its name in the runs table and its tags (arm, seed, ...)."""
        return replace(self, run_name=run_name, tags=dict(tags))

    def reporter_kwargs(self) -> dict[str, Any]:
        """:class:`~cjepa.tracking.MLflowReporter`'s keyword arguments: the form
        :func:`cjepa.distributed.fit_distributed` carries to rank 0 (it is shared with ``cjepa train``)."""
        return {"tracking_uri": self.uri, "experiment": self.experiment, "parent_run_id": self.parent_run_id,
                "run_name": self.run_name, "tags": dict(self.tags)}


def prepare_study(study: Study, storage: str | None, resume: bool, extra: list[str] | tuple[str, ...],
                  extend: bool = False) -> StudyPlan:
    """Everything checked before Ray starts: the study, a writable storage, no earlier results
    overwritten without ``--resume``; for ``--extend``, the (arm, seed) trials results.parquet lacks.
    The dry run calls it too. ``study`` itself is not changed: the plan holds the study that runs."""
    from cjepa.distributed.preflight import resolve_storage
    from cjepa.errors import StudyError
    from cjepa.sweep.results import check_not_overwriting, done_trials, existing_outputs
    from cjepa.sweep.study import plan_study

    trials = plan_study(study, list(extra))
    storage = resolve_storage(storage)
    study_dir = Path(storage) / study.name
    only = None
    if not extend:
        check_not_overwriting(study_dir, resume, study.name)
        if resume and not existing_outputs(study_dir):  # a mistyped --storage must not start a new study
            raise StudyError(nothing_to("resume", study.name, study_dir,
                                        "no study.json, results.parquet or Tune state"))
    elif study.search != "grid":
        raise StudyError(f"study {study.name!r}: --extend adds levels or seeds to a grid study; "
                         "an Optuna study grows with --resume and a larger num_samples")
    elif "results.parquet" not in existing_outputs(study_dir):
        raise StudyError(nothing_to("extend", study.name, study_dir, "no results.parquet"))
    else:
        done = done_trials(study_dir)
        only = tuple((a, s) for a in trials.arms for s in study.seeds if (a, s) not in done)
    return StudyPlan(keep_ray_train_runner(study, study_dir), trials, tuple(extra), storage, study_dir, resume, only)

def nothing_to(verb: str, name: str, study_dir: Path, missing: str) -> str:
    """The one line for ``--resume`` / ``--extend`` on a storage that holds no such study (nothing started)."""
    return (f"study {name!r}: nothing to {verb} in {study_dir} ({missing}); check --storage and --name, "
            f"or run it first without --{verb} (nothing was started)")


def keep_ray_train_runner(study: Study, study_dir: Path) -> Study:
    """The study as it continues: one whose trials trained in Ray Train (its ``train/`` folder holds
    their checkpoints, e.g. one started before trials trained in their actor) resumes and extends
    there too: under ``auto`` its unfinished trials would otherwise start over, and open second MLflow runs."""
    if study.trial_runner == "auto" and study.trains_in_trial_actor() and (study_dir / "train").is_dir():
        print(f"study {study.name}: its trials trained in Ray Train ({study_dir / 'train'}); they continue there")
        return replace(study, trial_runner="ray_train")
    return study
