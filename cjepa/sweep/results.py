"""A study's durable outputs: the MLflow parent run and the Parquet results table.

One Parquet file per study (pyarrow), one row per trial and epoch: study, arm, seed, the
factor values (``factor.<key>`` columns), the trial's whole resolved config as typed columns
(``config.<section>.<key>``: the dashboards read an arm's parts and paper identity from them, not
from its label), every reported metric, the trial's MLflow run id and checkpoint path, its status
and why it stopped. The summary (mean ± 95 % CI over seeds and the
seed-paired difference from the baseline arm) is computed from the final row of each trial.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from cjepa.atomic import atomic_write
from cjepa.errors import StudyError
from cjepa.sweep.child_runs import child_run_ids
from cjepa.sweep.note import NOTE_TAG, parent_note
from cjepa.sweep.pick import write_pick
from cjepa.sweep.plan import Tracking
from cjepa.sweep.search_table import write_trials
from cjepa.sweep.stopper import read_stop_reasons
from cjepa.sweep.study import Study, trial_config
from cjepa.sweep.summary import summary_from_rows
from cjepa.sweep.trial_files import final_checkpoint, run_records
from cjepa.tracking.store import redact

#: Files that mean "this study has run here before" (tuner.pkl: Tune's restorable state).
OUTPUT_FILES = ("study.json", "results.parquet", "summary.md", "tuner.pkl")
#: Prefix of the typed config columns (``config.loss.beta_vicreg``); Tune's own are ``config/...``.
CONFIG_PREFIX = "config."
#: Columns that say which trial and epoch a row is, not what it measured.
ID_COLUMNS = {"study", "arm", "seed", "trial_id", "mlflow_run_id", "status", "stop_reason", "epoch", "checkpoint_path",
              "eval_split"}
_DROP = {"config", "date", "hostname", "node_ip", "pid", "timestamp", "time_this_iter_s", "time_total_s",
         "time_since_restore", "iterations_since_restore", "done", "should_checkpoint", "experiment_tag"}


def param_key(name: str) -> str:
    """An MLflow param key for a free-form name: MLflow allows only alphanumerics and ``_-. :/``,
    so an arm like ``EMA + invariance`` or ``I-JEPA (EMA only)`` becomes ``EMA _ invariance`` /
    ``I-JEPA _EMA only_`` (the exact name stays in the child runs' ``arm`` tag)."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", name)[:250]


def open_parent(study: Study, tracking_uri: str, study_dir: Path, resume: bool) -> str:
    """The study's MLflow parent run: reused on ``--resume`` (its id is kept in study.json)."""
    from mlflow.tracking import MlflowClient

    from cjepa.tracking import get_or_create_experiment

    client = MlflowClient(tracking_uri)
    state = study_dir / "study.json"
    arms = len(study.arm_settings()) if study.search == "grid" else study.num_samples
    if resume and state.exists():
        run_id = json.loads(state.read_text())["parent_run_id"]
        client.update_run(run_id, status="RUNNING")
        note = parent_note(study.name, arms, len(study.seeds), study.baseline,
                           experiment_id=client.get_run(run_id).info.experiment_id)
        client.set_tag(run_id, NOTE_TAG, note)  # the study may have grown: the note says what it is now
        return run_id
    exp = get_or_create_experiment(client, study.name)
    note = parent_note(study.name, arms, len(study.seeds), study.baseline, experiment_id=exp)
    run = client.create_run(exp, run_name=study.name, tags={"study": study.name, "cjepa.role": "study",
                                                            NOTE_TAG: note})
    params = {"base": study.base, "seeds": str(list(study.seeds)), "search": study.search,
              "scheduler": study.scheduler, "metric": study.metric, "baseline": str(study.baseline),
              "workers_per_trial": str(study.workers_per_trial), "overrides": " ".join(study.overrides)[:5000]}
    params.update({f"factor.{k}": str(v)[:5000] for k, v in study.factors.items()})
    params.update({param_key(f"arm.{k}"): json.dumps(v, default=str)[:5000] for k, v in study.arms.items()})
    for key, value in params.items():
        client.log_param(run.info.run_id, key, redact(value))
    # Credentials never land on disk: a server behind auth is reached via MLFLOW_TRACKING_USERNAME/PASSWORD.
    atomic_write(state, lambda fh: fh.write(json.dumps({"parent_run_id": run.info.run_id,
                                                        "tracking_uri": redact(tracking_uri)})), binary=False)
    return run.info.run_id


def finish_parent(tracking_uri: str, run_id: str, study_dir: Path, table: Path, summary: str,
                  study: Study | None = None) -> str:
    """Log the table and summary on the parent run; with ``study``, its note gains the summary.
    Returns the experiment's id (for the study's last line: the link to its runs)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    if not (study_dir / "summary.md").exists():
        write_summary(study_dir, summary)
    client.log_artifact(run_id, str(table))
    client.log_artifact(run_id, str(study_dir / "summary.md"))
    experiment_id = client.get_run(run_id).info.experiment_id
    if study is not None:
        arms = len(study.arm_settings()) if study.search == "grid" else study.num_samples
        client.set_tag(run_id, NOTE_TAG, parent_note(study.name, arms, len(study.seeds), study.baseline, summary,
                                                     experiment_id))
    client.set_terminated(run_id, "FINISHED")
    return experiment_id


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars from pandas
        return value.item()
    return value


def config_columns(study: Study, arm: str, settings: dict[str, Any], seed: int, study_dir: Path,
                   extra: list[str] | None = None) -> dict[str, Any]:
    """``config.<section>.<key>`` -> the trial's resolved value (tuples as lists; Parquet keeps
    bool/int/float/str), with ``run.output_dir`` where the runner really put the trial.

    Read from the ``config.yaml`` the trial wrote when it started (what ran), and rebuilt from the
    study script only for a trial that never started: a script edited before ``--resume`` then
    changes no earlier trial's row."""
    from cjepa.sweep.naming import trial_dir_name

    run_dir = study_dir / "runs" / trial_dir_name(study.name, arm, seed)
    cfg = _written_config(run_dir / "config.yaml") or trial_config(study, settings, seed, extra)
    flat = cfg.flat()
    flat["run.output_dir"] = str(run_dir)
    return {CONFIG_PREFIX + k: (list(v) if isinstance(v, tuple) else v) for k, v in flat.items()}


def _written_config(path: Path) -> Any:
    """The config a trial wrote, or None (not started, or unreadable: then the script's is used)."""
    from cjepa.config import from_saved, read_yaml
    from cjepa.errors import ConfigError

    try:
        return from_saved(read_yaml(path)) if path.is_file() else None
    except ConfigError:
        return None


def trial_rows(study: Study, arms: dict[str, dict[str, Any]], grid: Any, study_dir: Path,
               tracking: Tracking | None = None, extra: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per trial and epoch of a finished (or stopped) Tune grid; see the module docstring."""
    from cjepa.sweep.naming import flat_config, trial_arm

    stops = read_stop_reasons(study_dir / "stop_reasons.jsonl")
    ids = child_run_ids(tracking, study)
    rows: list[dict[str, Any]] = []
    for result in grid:
        config = flat_config(result.config or {})
        if "seed" not in config:
            continue
        arm, settings = trial_arm(config, study, arms)
        seed = int(config["seed"])
        df = result.metrics_dataframe
        records = [] if df is None or "epoch" not in df else df.to_dict("records")
        by_epoch = {int(r["epoch"]): r for r in records if r.get("epoch") is not None}  # restores repeat none
        for epoch, rec in run_records(study_dir, study.name, arm, seed).items():
            by_epoch.setdefault(epoch, rec)
        last = max(by_epoch) if by_epoch else 0
        trial_id = (result.metrics or {}).get("trial_id", "")
        columns = config_columns(study, arm, settings, seed, study_dir, extra)
        status, reason = _status(study, result, last, columns[CONFIG_PREFIX + "run.epochs"], stops.get(trial_id))
        common = {"study": study.name, "arm": arm, "seed": seed, "trial_id": trial_id,
                  "mlflow_run_id": ids.get((arm, str(seed)), ""), "status": status, "stop_reason": reason,
                  # where the per-epoch probes read (the test_* columns: the test split, once)
                  "eval_split": "val" if columns.get(CONFIG_PREFIX + "data.val_samples", 0) > 0 else "test",
                  **{f"factor.{k}": (v if isinstance(v, (int, float, bool, str)) else str(v))
                     for k, v in settings.items()},
                  **columns}
        last_checkpoint = final_checkpoint(result, common[CONFIG_PREFIX + "run.output_dir"])
        for epoch in sorted(by_epoch) or [0]:
            rec = by_epoch.get(epoch, {})
            metrics = {k: _clean(v) for k, v in rec.items() if k not in _DROP and not k.startswith("config/")}
            path = str(metrics.pop("checkpoint_path", "") or "") or (last_checkpoint if epoch == last else "")
            rows.append({**common, **metrics, "epoch": epoch, "checkpoint_path": path})
    return rows


def _status(study: Study, result: Any, last: int, epochs: int, stop: str | None) -> tuple[str, str]:
    """(status, why it stopped) of a trial whose last epoch is ``last`` of its own config's ``epochs``
    (not the study script's now: a script edited to train longer does not make a finished trial stopped)."""
    if result.error is not None:  # a RayTaskError's own first line is "ray::ImplicitFunc.train() (pid=...)":
        error = getattr(result.error, "cause", None) or result.error  # the trial's exception says what failed
        return "ERROR", redact(str(error).strip().splitlines()[0])[:300]
    if last < epochs:
        return "STOPPED", stop or ("asha: below the rung cutoff" if study.scheduler == "asha" else "stopped")
    return "COMPLETED", ""


def write_results(study: Study, arms: dict[str, dict[str, Any]], grid: Any, study_dir: Path,
                  tracking: Tracking | None = None, extra: list[str] | None = None) -> tuple[Path, str]:
    """Write ``study_dir/results.parquet``; return its path and the markdown summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = study_dir / "results.parquet"
    rows = merge_rows(read_rows(path), trial_rows(study, arms, grid, study_dir, tracking, extra))
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    table = pa.Table.from_pylist([{k: row.get(k) for k in keys} for row in rows])
    atomic_write(path, lambda fh: pq.write_table(table, fh))
    summary = summary_from_rows(rows, study)
    write_summary(study_dir, summary)
    write_pick(study_dir, rows, study)  # a search's pick, small enough to commit (the table is not)
    write_trials(study_dir, rows, study)  # and its trials side by side
    return path, summary


def write_summary(study_dir: Path, summary: str) -> Path:
    """``summary.md``, atomically: a kill mid-write leaves the previous summary, never half of one."""
    return atomic_write(study_dir / "summary.md", lambda fh: fh.write(summary + "\n"), binary=False)


def existing_outputs(study_dir: str | Path) -> list[str]:
    """Which of a study's outputs (:data:`OUTPUT_FILES`, Tune's experiment state) already exist."""
    text = str(study_dir)
    scheme, sep, _ = text.partition("://")
    if sep and scheme != "file":  # s3://, gs://, ...: ask the same filesystem layer Tune writes through
        import pyarrow.fs

        try:
            fs, base = pyarrow.fs.FileSystem.from_uri(text)
            infos = fs.get_file_info([f"{base}/{name}" for name in OUTPUT_FILES])
        except (OSError, ValueError) as exc:
            raise StudyError(f"cannot check whether {text} already holds a study ({exc}); check --storage") from None
        return [name for name, info in zip(OUTPUT_FILES, infos) if info.type != pyarrow.fs.FileType.NotFound]
    path = Path(text.split("://", 1)[1] if sep else text)
    if not path.is_dir():
        return []
    states = sorted(p.name for p in path.glob("experiment_state-*"))[:1]
    return [n for n in OUTPUT_FILES if (path / n).exists()] + states


def check_not_overwriting(study_dir: str | Path, resume: bool, name: str) -> None:
    """Refuse, before Ray starts, to run a study again over its own results without ``--resume``.

    Why: Tune would start a fresh experiment in the same folder, "complete" every trial at once,
    and the results table, summary and study.json of the earlier run would be replaced.
    """
    found = [] if resume else existing_outputs(study_dir)
    if found:
        raise StudyError(f"study {name!r} already has results in {study_dir} ({', '.join(found)}); pass --resume "
                         "to continue it, or --name NEW to start a new study beside it (nothing was changed)")


def done_trials(study_dir: Path) -> set[tuple[str, int]]:
    """(arm, seed) of every trial results.parquet already holds with metrics: what ``--extend`` skips."""
    return {(r["arm"], int(r["seed"])) for r in read_rows(Path(study_dir) / "results.parquet") if has_metrics(r)}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of an earlier results.parquet (none if there is none yet)."""
    if not path.exists():
        return []
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError on a damaged file; the file stays as it is
        raise StudyError(f"{path} cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                         "move it away and rerun with --resume (Tune's state rebuilds it)") from None


def has_metrics(row: dict[str, Any]) -> bool:
    """Whether a row measured anything: ids, factor and config columns are set on placeholder rows too."""
    return any(v is not None for k, v in row.items()
               if k not in ID_COLUMNS and not k.startswith(("factor.", CONFIG_PREFIX)))


def merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of an earlier write plus this one, per trial (arm, seed) and epoch; the table is only added to.

    A new row replaces an old one of the same trial and epoch unless that would drop metrics (a
    resumed study whose Tune state lost a trial's history reports it as one metric-less row); a
    metric-less placeholder row is kept only for a trial that has no row with metrics at all.
    """
    trials: dict[tuple[Any, Any], dict[Any, dict[str, Any]]] = {}
    for row in [*old, *new]:
        epochs = trials.setdefault((row.get("arm"), row.get("seed")), {})
        previous = epochs.get(row.get("epoch"))
        if previous is None or has_metrics(row) or not has_metrics(previous):
            epochs[row.get("epoch")] = row
    out: list[dict[str, Any]] = []
    for epochs in trials.values():
        kept = {e: r for e, r in epochs.items() if has_metrics(r)} or epochs
        out += [kept[e] for e in sorted(kept, key=lambda e: (e is None, e or 0))]
    return out
