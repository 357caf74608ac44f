"""The study parent run's description in the MLflow UI (the ``mlflow.note.content`` tag, markdown).

Why: the UI shows a run's description at the top of its page, and a new user otherwise has to
find out alone that seed-averaged curves are MLflow's own Group by -> arm, and that the HTML
report is an artifact of this run. The note is written when the study opens (how to browse),
again when it finishes (with the summary table), and its report line is flipped by
``cjepa report`` once the report has been logged.
"""

from __future__ import annotations

from cjepa.tracking.ui import runs_url

NOTE_TAG = "mlflow.note.content"
REPORT_PATH = "report/report.html"
REPORT_PENDING = (f"**Report:** `cjepa report --study <storage>/<study>` logs it under this run's **Artifacts** as "
                  f"`{REPORT_PATH}` (rerun it after the study changes).")


def report_logged(experiment_id: str, run_id: str) -> str:
    """The note's report line once ``cjepa report`` has logged it (a link inside the MLflow UI)."""
    return (f"**Report:** [{REPORT_PATH}](#/experiments/{experiment_id}/runs/{run_id}/artifacts/{REPORT_PATH}) "
            f"under this run's **Artifacts** (with `ablation_table.md` and the figures beside it).")


def parent_note(study: str, arms: int, seeds: int, baseline: str | None, summary: str | None = None,
                experiment_id: str | None = None) -> str:
    """Markdown: what this run is, how to see the arms' seed-averaged curves, where the outputs are.

    With ``experiment_id``, a link that opens the study's runs in the "Model training" view: MLflow
    3.17 otherwise opens an experiment on its GenAI overview, and the switch is easy to miss."""
    table = ("the experiment's runs table (click **Model training** if MLflow opens its GenAI overview)"
             if experiment_id is None else f"[the study's runs]({runs_url('', experiment_id)}) (the Model training "
                                           "view; the child runs are under this parent run's **+**)")
    lines = [
        f"**Study `{study}`**: {arms} arm{'s' * (arms != 1)} × {seeds} seed{'s' * (seeds != 1)}; "
        f"baseline arm: {f'`{baseline}`' if baseline else '(none)'}. Each child run is one (arm, seed); "
        "its name starts with what differs, the exact arm is its `arm` tag.",
        "",
        f"**Seed-averaged curves:** open {table}, switch to **Chart view** (second icon above the table), then "
        "**Group by → tags → arm**: "
        "each arm is drawn as the mean of its seeds with a min-max band. Type `knn_target` or `vicreg_` in "
        "*Search metric charts* to find a metric.",
        "",
        "**Results:** `results.parquet` (one row per trial and epoch) and `summary.md` under this run's "
        "**Artifacts** once the study has finished.",
        "",
        REPORT_PENDING,
    ]
    if summary:
        lines += ["", "**Summary** (final epoch):", "", summary]
    return "\n".join(lines)


def mark_report_logged(note: str, experiment_id: str, run_id: str) -> str:
    """The note with its report line saying the report is there (added if an older note lacks it)."""
    done = report_logged(experiment_id, run_id)
    if done in note:
        return note
    return note.replace(REPORT_PENDING, done) if REPORT_PENDING in note else (note + "\n\n" + done).lstrip()
