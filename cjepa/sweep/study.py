"""What a study is: a base config, arms (factor settings), seeds, a budget and a search.

A study script in ``sweeps/`` reads like the paper's table it reproduces: the factors and their
levels (or named arms), the seeds, the baseline arm, the budget. Everything is checked here,
before Ray starts: every factor key must be a config key, every level must have the key's type
and give a valid config, and the metric a scheduler or searcher optimises must be one the
engine reports under that config.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cjepa.config import Config, check_data_source, load_config, set_value
from cjepa.errors import ConfigError
from cjepa.metrics import TEST_PREFIX, final_metrics, reported_metrics, split_of
from cjepa.sweep.plan import TrialPlan

SEARCHES = ("grid", "optuna")
SCHEDULERS = ("none", "asha")
TRIAL_RUNNERS = ("auto", "actor", "ray_train")


@dataclass(frozen=True)
class Space:
    """An Optuna search dimension: ``kind`` in loguniform | uniform | choice."""

    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Study:
    """A study's design (frozen: a flag, a profile or the runner makes a new one with ``dataclasses.replace``,
    so the study a trial and the results table read is the one that was checked and planned)."""

    name: str
    base: str = "cjepa_fmnist_cpu"  # preset name in configs/ or a YAML path
    overrides: tuple[str, ...] = ()  # fixed settings and budget, e.g. ("run.epochs=4",)
    factors: dict[str, list[Any]] = field(default_factory=dict)  # grid: key -> levels (product)
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)  # or named arms: name -> settings
    baseline: str | None = None  # arm that paired differences are taken against
    seeds: tuple[int, ...] = (0, 1, 2)
    search: str = "grid"
    space: dict[str, Space] = field(default_factory=dict)  # optuna only
    num_samples: int = 8  # optuna only
    initial_points: tuple[dict[str, Any], ...] = ()  # optuna only: settings tried first (seed the TPE)
    metric: str = "knn_target"
    mode: str = "max"
    scheduler: str = "none"
    grace_period: int = 1  # ASHA: epochs before a trial can be stopped
    collapse_std: float = 0.0  # > 0: stop a trial whose target_std_mean_normalized stays below
    collapse_patience: int = 2  # ... for this many consecutive epochs
    max_concurrent: int = 2
    workers_per_trial: int = 1
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    # Where a trial trains (cjepa/sweep/trial_actor.py): "actor" = in Tune's trial actor itself,
    # "ray_train" = in a TorchTrainer's workers; "auto" = actor for one CPU worker per trial (no
    # Train controller, worker process or gloo group to start: docs/benchmarks.md), else ray_train.
    trial_runner: str = "auto"
    # Tune retries of a crashed trial (a worker killed, a node lost), each from the trial's last
    # checkpoint; a deterministic failure (a non-finite loss) is not retried (failed.json).
    max_failures: int = 3

    def arm_settings(self) -> dict[str, dict[str, Any]]:
        """Named arms: the explicit ones, or the product of the factors' levels."""
        if self.arms:
            return {name: dict(values) for name, values in self.arms.items()}
        keys = list(self.factors)
        out = {}
        for combo in itertools.product(*(self.factors[k] for k in keys)):
            settings = dict(zip(keys, combo))
            out[arm_name(settings)] = settings
        return out

    def trains_in_trial_actor(self) -> bool:
        """Whether each trial trains in Tune's trial actor (``trial_runner``) rather than Ray Train."""
        if self.trial_runner == "auto":
            return self.workers_per_trial == 1 and not self.use_gpu
        return self.trial_runner == "actor"


def arm_name(settings: dict[str, Any]) -> str:
    """``beta_vicreg=0.001,beta_sim=25`` (last part of each key; stable order)."""
    return ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in settings.items()) or "base"


def resolve_base(base: str) -> Path:
    from cjepa.config.presets import resolve_config_path

    return resolve_config_path(base)


def trial_config(study: Study, settings: dict[str, Any], seed: int, extra: list[str] | None = None) -> Config:
    """The full, validated config of one trial: the base preset, the study's and the command
    line's text overrides, then the arm's typed values and the seed as they are (no text round trip)."""
    return load_config(resolve_base(study.base), [*study.overrides, *(extra or [])],
                       settings={**settings, "run.seed": seed}, source=f"study {study.name!r}")


def validate_study(study: Study, extra: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Check the whole study before Ray starts; return its arms. Raises ConfigError naming the problem."""
    return plan_study(study, extra).arms


def plan_study(study: Study, extra: list[str] | None = None) -> TrialPlan:
    """:func:`validate_study`, and every grid trial's validated Config keyed by (arm, seed).

    These Configs are what the trials run: built and validated once here, at the driver, then
    pickled once by Ray to the trial and its workers. Optuna trials sample their settings inside
    Tune, so their Configs are built (and validated, once) in the trial; the plan then has none."""
    where = f"study {study.name!r}"
    _check_shape(study, extra or [], where)
    if study.search == "optuna":
        _check_space(study, extra, where)
    arms = study.arm_settings() if study.search == "grid" else {"optuna": {}}
    if not arms:
        raise ConfigError(f"{where}: no arms (give factors with levels or named arms)")
    if study.baseline is not None and study.baseline not in arms:
        raise ConfigError(f"{where}: baseline {study.baseline!r} is not an arm; arms are {', '.join(arms)}")
    configs: dict[tuple[str, int], Config] = {}
    for name, settings in arms.items():  # every arm must be a valid config (type + value checks)
        try:
            for seed in study.seeds if study.search == "grid" else study.seeds[:1]:
                configs[(name, seed)] = trial_config(study, settings, seed, extra)
            check_data_source(configs[(name, study.seeds[0])])
        except ConfigError as exc:
            raise ConfigError(f"{where}, arm {name!r}: {exc}") from None
        _check_metrics(study, configs[(name, study.seeds[0])], f"{where}, arm {name!r}")
    return TrialPlan(arms, configs if study.search == "grid" else {})


def _check_shape(study: Study, extra: list[str], where: str) -> None:
    """Search, scheduler, budget, factors and overrides: what the study is made of."""
    if study.search not in SEARCHES:
        raise ConfigError(f"{where}: search must be one of {', '.join(SEARCHES)}, got {study.search!r}")
    if study.scheduler not in SCHEDULERS:
        raise ConfigError(f"{where}: scheduler must be one of {', '.join(SCHEDULERS)}, got {study.scheduler!r}")
    if study.mode not in ("max", "min"):
        raise ConfigError(f"{where}: mode must be max or min, got {study.mode!r}")
    _check_budget(study, where)
    if study.factors and study.arms:
        raise ConfigError(f"{where}: give factors (a grid) or named arms, not both")
    for key, levels in study.factors.items():
        if not isinstance(levels, (list, tuple)) or not levels:
            raise ConfigError(f"{where}: factor {key!r} has no levels")
    _check_overrides(study, extra, where)
    for key in swept_keys(study):
        try:
            set_value(Config(), key, _probe_value(study, key), source=where)
        except ConfigError as exc:
            raise ConfigError(str(exc)) from None


def _check_space(study: Study, extra: list[str] | None, where: str) -> None:
    """An Optuna space: its dimensions, its sample count and the points tried first."""
    if not study.space:
        raise ConfigError(f"{where}: search=optuna needs a space")
    for key, dim in study.space.items():
        if dim.kind not in ("loguniform", "uniform", "choice"):
            raise ConfigError(f"{where}: space {key!r}: kind must be loguniform, uniform or choice")
        if dim.kind == "choice" and not dim.choices:
            raise ConfigError(f"{where}: space {key!r}: choice needs choices")
        if dim.kind != "choice" and not (math.isfinite(dim.low) and math.isfinite(dim.high)
                                         and dim.low < dim.high and (dim.kind == "uniform" or dim.low > 0)):
            raise ConfigError(f"{where}: space {key!r}: need 0 < low < high for {dim.kind}")
    if study.num_samples < 1:
        raise ConfigError(f"{where}: num_samples must be >= 1")
    for i, point in enumerate(study.initial_points):
        if set(point) != set(study.space):
            raise ConfigError(f"{where}: initial_points[{i}] must set exactly the space's keys "
                              f"({', '.join(sorted(study.space))}), got {', '.join(sorted(point))}")
        for key, value in point.items():
            dim = study.space[key]
            if dim.kind == "choice" and value not in dim.choices:
                raise ConfigError(f"{where}: initial_points[{i}] {key}={value!r} is not one of {list(dim.choices)}")
            if dim.kind != "choice" and not dim.low <= value <= dim.high:
                raise ConfigError(f"{where}: initial_points[{i}] {key}={value!r} is outside [{dim.low}, {dim.high}]")
        try:
            trial_config(study, point, study.seeds[0], extra)
        except ConfigError as exc:
            raise ConfigError(f"{where}: initial_points[{i}]: {exc}") from None


def _check_metrics(study: Study, cfg: Config, where: str) -> None:
    """The metric a scheduler, searcher or stopper reads must be one this config reports, every
    evaluated epoch, and must not be read from the test split: a study that selects on test
    reports a maximum over test noise, not an estimate (docs/architecture.md, "Validation split")."""
    if not (study.scheduler == "asha" or study.collapse_std > 0 or study.search == "optuna"):
        return
    known = reported_metrics(cfg)
    needed = [study.metric] + (["target_std_mean_normalized"] if study.collapse_std > 0 else [])
    for metric in needed:
        if metric in final_metrics(cfg):
            raise ConfigError(f"{where}: metric {metric!r} is the test split's, scored once at the end of a run; "
                              f"a study selects on the validation split: use {metric.removeprefix(TEST_PREFIX)!r}")
        if metric not in known:
            raise ConfigError(f"{where}: metric {metric!r} is never reported with this "
                              f"config (eval.every={cfg.eval.every}); reported: {', '.join(sorted(known))}")
        if split_of(cfg, metric) == "test":
            raise ConfigError(f"{where}: metric {metric!r} would be read from the test split (data.val_samples=0): "
                              "a study that selects (ASHA, Optuna, the collapse stopper) needs a validation split; "
                              "set data.val_samples > 0")


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
#: Keys the runner sets for every trial: an override of them would be dropped without a word.
RUNNER_KEYS = {"run.seed": "each trial's seed comes from the study's seeds (--seeds)",
               "run.output_dir": "each trial writes under <storage>/<study>/runs/ (--storage)"}


def swept_keys(study: Study) -> set[str]:
    """The config keys the study itself sets per trial: its factors, arm settings or search space."""
    return {k for settings in study.arms.values() for k in settings} | set(study.factors) | set(study.space)


def _check_budget(study: Study, where: str) -> None:
    """Name, seeds and the resources of a study: the values the sweep CLI flags set."""
    if not isinstance(study.name, str) or not NAME.fullmatch(study.name):
        raise ConfigError(f"{where}: name must be 1-100 letters, digits, '_', '.' or '-' (a folder under "
                          f"--storage), starting with a letter or digit")
    if not study.seeds:
        raise ConfigError(f"{where}: seeds is empty")
    if any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in study.seeds):
        raise ConfigError(f"{where}: seeds must be integers >= 0, got {list(study.seeds)}")
    if len(set(study.seeds)) != len(study.seeds):
        raise ConfigError(f"{where}: seeds must be distinct (each names a trial), got {list(study.seeds)}")
    for key, flag in (("max_concurrent", "--max-concurrent"), ("workers_per_trial", "--workers-per-trial"),
                      ("grace_period", None), ("collapse_patience", None), ("num_samples", None)):
        value = getattr(study, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: {key}{f' ({flag})' if flag else ''} must be an integer >= 1, got {value!r}")
    if not isinstance(study.max_failures, int) or isinstance(study.max_failures, bool) or study.max_failures < 0:
        raise ConfigError(f"{where}: max_failures must be an integer >= 0, got {study.max_failures!r}")
    if study.trial_runner not in TRIAL_RUNNERS:
        raise ConfigError(f"{where}: trial_runner (--trial-runner) must be one of {', '.join(TRIAL_RUNNERS)}, "
                          f"got {study.trial_runner!r}")
    if study.trial_runner == "actor" and (study.workers_per_trial > 1 or study.use_gpu):
        raise ConfigError(f"{where}: trial_runner 'actor' trains one CPU worker in the trial itself; "
                          f"workers_per_trial={study.workers_per_trial}, use_gpu={study.use_gpu} need 'ray_train' "
                          "(or 'auto')")
    if not (math.isfinite(study.cpus_per_worker) and study.cpus_per_worker > 0):
        raise ConfigError(f"{where}: cpus_per_worker must be a finite number > 0, got {study.cpus_per_worker!r}")
    if not (math.isfinite(study.collapse_std) and study.collapse_std >= 0):
        raise ConfigError(f"{where}: collapse_std must be a finite number >= 0 (0 = off), got {study.collapse_std!r}")


def _check_overrides(study: Study, extra: list[str], where: str) -> None:
    """Refuse an override the study would drop: a swept key (each arm sets it last) or a runner key."""
    swept = swept_keys(study)
    for key in sorted(swept & set(RUNNER_KEYS)):
        raise ConfigError(f"{where}: {key} cannot be a factor, arm setting or search dimension: {RUNNER_KEYS[key]}")
    for source, items in (("the study's overrides", study.overrides), ("override", extra)):
        for item in items:
            key = item.partition("=")[0].strip()
            if key in swept:
                kind = "a factor" if key in study.factors else ("in the search space" if key in study.space
                                                                else "an arm setting")
                raise ConfigError(f"{where}: {source} {item!r}: {key} is {kind} of the study (every trial sets "
                                  f"it), so the override would be dropped; remove it or change the study")
            if key in RUNNER_KEYS:
                raise ConfigError(f"{where}: {source} {item!r}: {RUNNER_KEYS[key]}; remove the override")


def _probe_value(study: Study, key: str) -> Any:
    """One level of ``key`` for a type check (every level is checked again via trial_config)."""
    if key in study.factors:
        for level in study.factors[key]:
            set_value(Config(), key, level, source=f"study {study.name!r}, factor {key}")
        return study.factors[key][0]
    if key in study.space:
        dim = study.space[key]
        return dim.choices[0] if dim.kind == "choice" else dim.low
    for settings in study.arms.values():
        if key in settings:
            return settings[key]
    raise KeyError(key)
