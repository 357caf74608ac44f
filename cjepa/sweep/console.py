"""Tune's console for a study: one quiet table of arm, seed, epoch and the probe metrics, the
study's ETA, and one line per finished trial; nothing per step.

``--verbose`` gives Ray's own output instead (every trial's step lines, "Checkpoint successfully
created" per epoch: ~50 lines a minute in the main job, issue 27). Quiet, the trials' own output stays
in Ray's log files (``connect_ray(log_to_driver=False)``). The table is Tune's ``CLIReporter`` (the library's
table, not ours) with two corrections a user of a 2-core laptop asked for:

* Tune's "Logical resource usage: 0/2 CPUs" counts what the *trial* processes reserve, and a
  trial reserves no CPU (its Ray Train workers hold them, runner.build_tuner); the line is
  replaced by what the cluster really has in use (``ray.available_resources``);
* a list-valued search choice is sampled as an index (Tune cannot sample tuples), so its
  column is headed ``name#`` to say the number is the choice's position, not its value.
"""

from __future__ import annotations

import os
import time
from typing import Any

from cjepa.sweep.naming import _indexed, flat_config
from cjepa.sweep.study import Study

#: Tune's live table: the probe metrics under short names (columns with no value yet are hidden).
METRIC_COLUMNS = {"epoch": "epoch", "loss": "loss", "knn_target": "kNN tgt", "linear_target": "lin tgt",
                  "knn_context": "kNN ctx", "linear_context": "lin ctx"}
TUNE_USAGE_PREFIX = "Logical resource usage:"


def cluster_usage_line(total: dict[str, float], available: dict[str, float]) -> str:
    """``Resources in use (trial workers): 2/2 CPUs, 0/0 GPUs``: the cluster's, not Tune's count."""
    parts = []
    for key, label in (("CPU", "CPUs"), ("GPU", "GPUs")):
        whole = total.get(key, 0.0)
        parts.append(f"{whole - available.get(key, 0.0):g}/{whole:g} {label}")
    return "Resources in use (trial workers): " + ", ".join(parts)


def true_usage(sys_info: tuple[str, ...], usage: str | None) -> list[str]:
    """``sys_info`` with Tune's resource line replaced by ``usage`` (kept when that is unknown)."""
    if usage is None:
        return list(sys_info)
    out = []
    for block in sys_info:
        lines = [usage if line.startswith(TUNE_USAGE_PREFIX) else line for line in block.split("\n")]
        out.append("\n".join(lines))
    return out


def _cluster_usage() -> str | None:
    import ray

    if not ray.is_initialized():
        return None
    try:
        return cluster_usage_line(ray.cluster_resources(), ray.available_resources())
    except Exception:  # a console line must never stop a study
        return None


FINISHED = ("TERMINATED", "ERROR")


def trial_label(config: dict[str, Any]) -> str:
    """``beta_vicreg=0.01 s0``: a trial's arm (or Optuna's sampled values) and seed, as in the table."""
    flat = flat_config(config)
    if "arm" in flat:
        return f"{flat['arm']} s{flat.get('seed')}"
    values = ", ".join(f"{k.rsplit('.', 1)[-1]}={v:.3g}" if isinstance(v, float) else f"{k.rsplit('.', 1)[-1]}={v}"
                       for k, v in flat.items() if k not in ("seed", "trial"))
    return f"{values} s{flat.get('seed')}"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 05 min``: an ETA is read at a glance, not to the second."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class StudyClock:
    """The study's ETA, from the trial-epochs trained since this driver started (a resumed study's
    earlier epochs do not make it look fast). A finished or stopped trial counts in full: ASHA's
    stopped trials will train no more."""

    def __init__(self, epochs: int, trials: int) -> None:
        self.epochs, self.trials = max(epochs, 1), trials
        self.start: tuple[float, int] | None = None

    def epochs_done(self, status: str, last_result: dict[str, Any] | None) -> int:
        if status in FINISHED:
            return self.epochs
        return min(int((last_result or {}).get("epoch") or 0), self.epochs)

    def line(self, done: list[int], now: float | None = None) -> str:
        """``Study: 5/12 trial-epochs, ETA 3 min`` from each known trial's epochs done."""
        now = time.monotonic() if now is None else now
        total = max(self.trials, len(done)) * self.epochs
        trained = sum(done)
        if self.start is None:
            self.start = (now, trained)
        t0, before = self.start
        if trained >= total:
            eta = "done"
        elif trained > before and now > t0:
            eta = f"ETA {duration((total - trained) * (now - t0) / (trained - before))}"
        else:
            eta = "ETA after the first epoch"
        return f"Study: {trained}/{total} trial-epochs, {eta}"


def progress_reporter(study: Study, extension: bool = False, epochs: int = 0, trials: int = 0) -> Any:
    """Tune's table with the arm (or Optuna's sampled values) and seed, and :data:`METRIC_COLUMNS`,
    reprinted at most every 30 s (two trials on 2 cores change little faster), with the study's ETA
    (:class:`StudyClock`) under the resource line."""
    from ray.tune import CLIReporter

    clock = StudyClock(epochs, trials)

    class StudyReporter(CLIReporter):
        def report(self, trials: list, done: bool, *sys_info: str) -> None:
            eta = clock.line([clock.epochs_done(t.status, t.last_result) for t in trials])
            super().report(trials, done, *true_usage(sys_info, _cluster_usage()), eta)

    if extension:  # an --extend experiment's trials are {"trial": {"arm", "seed"}} (build_tuner)
        params = {"trial/arm": "arm", "trial/seed": "seed"}
    elif study.search == "grid":
        params = {"arm": "arm", "seed": "seed"}
    else:
        params = {**{k: k.rsplit(".", 1)[-1] + ("#" if _indexed(d) else "") for k, d in study.space.items()},
                  "seed": "seed"}
    return StudyReporter(metric_columns=dict(METRIC_COLUMNS), parameter_columns=params,
                         max_column_length=32, max_report_frequency=30)  # metric/mode: Tune's, from TuneConfig


def console_options(study: Study, verbose: bool, extension: bool = False, epochs: int = 0,
                    trials: int = 0) -> dict[str, Any]:
    """``tune.RunConfig`` arguments for the console: quiet by default (the table, the ETA and one line
    per finished trial (:class:`~cjepa.sweep.trial_lines.TrialLines`); no per-trial metric box), Ray's
    own output with ``verbose``. ``epochs``: a trial's full length, ``trials``: the study's trial count
(for the ETA and the per-trial lines).

    Ray 2.60's default output engine ignores a ``progress_reporter`` (ray-project/ray#38202); the
    documented way back to the table reporter is ``RAY_AIR_NEW_OUTPUT=0``, read when the Tuner
    runs, so it is set here in the driver only (a value the user exported wins)."""
    if verbose:
        return {}
    from cjepa.sweep.trial_lines import TrialLines

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune's "Experiment state snapshotting has been triggered multiple times" (3 lines, when two short
    # trials end together): the state is written either way; 0 is Tune's documented off switch.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    return {"progress_reporter": progress_reporter(study, extension, epochs, trials), "verbose": 1,  # 1: the table
            "callbacks": [TrialLines(epochs, trials)]}
