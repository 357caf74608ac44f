"""A search's trials side by side: ``trials.md`` beside the summary of an Optuna study.

Why: the summary names each trial by its arm (``optuna-<hash>``) and its scores, not the settings
it tried, and the pick file holds only the selected trial. A reader comparing searches (which
settings learnt, how each trial's curve went, where ASHA stopped it) needs every trial's searched
values beside its per-epoch validation score, its status, its CPU-minutes and its test score (read
once at the end, never selected on). Written from the results table at every ``write_results``, so
it is regenerated with the table, never edited by hand; small enough to commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cjepa.atomic import atomic_write
from cjepa.sweep.study import Study
from cjepa.sweep.summary import final_rows, selected_trial

TRIALS_FILE = "trials.md"


def _cell(value: Any) -> str:
    """A searched value as text: floats to 4 significant digits, anything else as written."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _pct(value: Any) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def _trial(row: dict[str, Any]) -> str:
    """A row's trial: Tune's trial id, else (a table written before ids were recorded) its arm."""
    return str(row.get("trial_id") or row["arm"])


def _trials(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each trial's rows by epoch, trials in the order the table first saw them (the search's order)."""
    trials: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        trials.setdefault(_trial(row), []).append(row)
    return {t: sorted(rs, key=lambda r: r["epoch"]) for t, rs in trials.items()}


def trials_markdown(rows: list[dict[str, Any]], study: Study) -> str | None:
    """One line per trial: searched settings, ``study.metric`` per epoch, status, training
    CPU-minutes at its last epoch, and ``test_<metric>`` where it completed. The selected trial is in
    bold. None for a study that searches nothing (a grid)."""
    if study.search == "grid" or not rows:
        return None
    pick = selected_trial(final_rows(rows), study)
    keys = list(study.space)
    metric, test = study.metric, f"test_{study.metric}"
    head = ["trial", *keys, f"{metric} % per epoch", "status", "train CPU-min", f"{test} %"]
    lines = [f"Trials of study `{study.name}` in the order they ran; **bold**: the selected trial "
             f"({metric}, {study.mode}, completed trials); the test split is never selected on.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for trial, trial_rows in _trials(rows).items():
        last = trial_rows[-1]
        name = f"**{trial}**" if pick is not None and trial == _trial(pick) else trial
        cells = [name, *(_cell(last.get(f"factor.{k}")) for k in keys),
                 " / ".join(_pct(r.get(metric)) for r in trial_rows), str(last["status"]).lower(),
                 "" if last.get("train_cpu_min") is None else f"{last['train_cpu_min']:.1f}", _pct(last.get(test))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_trials(study_dir: Path, rows: list[dict[str, Any]], study: Study) -> Path | None:
    """``study_dir/trials.md``, atomically; nothing for a grid."""
    text = trials_markdown(rows, study)
    if text is None:
        return None
    return atomic_write(Path(study_dir) / TRIALS_FILE, lambda fh: fh.write(text + "\n"), binary=False)
