"""Tune's console for a study: one quiet table of arm, seed, epoch and the probe metrics.

``--verbose`` gives Ray's own output instead. The table is Tune's ``CLIReporter`` (the library's
table, not ours) with two corrections a user of a 2-core laptop asked for:

* Tune's "Logical resource usage: 0/2 CPUs" counts what the *trial* processes reserve, and a
  trial reserves no CPU (its Ray Train workers hold them, runner.build_tuner); the line is
  replaced by what the cluster really has in use (``ray.available_resources``);
* a list-valued search choice is sampled as an index (Tune cannot sample tuples), so its
  column is headed ``name#`` to say the number is the choice's position, not its value.
"""

from __future__ import annotations

import os
from typing import Any

from cjepa.sweep.naming import _indexed
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


def progress_reporter(study: Study, extension: bool = False) -> Any:
    """Tune's table with the arm (or Optuna's sampled values) and seed, and :data:`METRIC_COLUMNS`,
    reprinted at most every 30 s (two trials on 2 cores change little faster)."""
    from ray.tune import CLIReporter

    class StudyReporter(CLIReporter):
        def report(self, trials: list, done: bool, *sys_info: str) -> None:
            super().report(trials, done, *true_usage(sys_info, _cluster_usage()))

    if extension:  # an --extend experiment's trials are {"trial": {"arm", "seed"}} (build_tuner)
        params = {"trial/arm": "arm", "trial/seed": "seed"}
    elif study.search == "grid":
        params = {"arm": "arm", "seed": "seed"}
    else:
        params = {**{k: k.rsplit(".", 1)[-1] + ("#" if _indexed(d) else "") for k, d in study.space.items()},
                  "seed": "seed"}
    return StudyReporter(metric_columns=dict(METRIC_COLUMNS), parameter_columns=params,
                         max_column_length=32, max_report_frequency=30)  # metric/mode: Tune's, from TuneConfig


def console_options(study: Study, verbose: bool, extension: bool = False) -> dict[str, Any]:
    """``tune.RunConfig`` arguments for the console: quiet by default (the table only: no per-trial
    metric box), Ray's own output with ``verbose``.

    Ray 2.60's default output engine ignores a ``progress_reporter`` (ray-project/ray#38202); the
    documented way back to the table reporter is ``RAY_AIR_NEW_OUTPUT=0``, read when the Tuner
    runs, so it is set here in the driver only (a value the user exported wins)."""
    if verbose:
        return {}
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    return {"progress_reporter": progress_reporter(study, extension), "verbose": 1}  # 1: the experiment's table only
