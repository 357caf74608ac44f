"""One in-memory shape for a study, whichever store it comes from.

Two sources: a study directory (``results.parquet`` + ``study.json``, what the sweep layer
writes) or an MLflow experiment (child runs' metric histories with ``arm``/``seed`` tags, for
studies whose storage is gone or lives elsewhere). Both end as a pandas frame with the columns of
the results table (study, arm, seed, factor.<key>..., config.<section>.<key>..., epoch, metrics...,
mlflow_run_id, checkpoint_path, status), so the plots and tables never care where the numbers came
from. An arm's identity (its parts, whether it is one of the paper's arms, the baseline when none
was recorded) is read from its ``config.*`` columns (:mod:`dashboards.arms`), never its label.

MLflow is only touched when the store is reachable *now*: a tracking server's own client retries
for minutes, so servers are probed with a bounded ``/health`` request first.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from dashboards.arms import PAPER_PARTS, paper_arm

CHECKPOINT_NAME = "checkpoint.pt"  # cjepa.engine.checkpoint.CHECKPOINT_NAME (no torch import here)
CONFIG_PREFIX = "config."  # cjepa.sweep.results.CONFIG_PREFIX


def _plain(value: Any) -> Any:
    """A cell as plain Python: numpy scalars -> int/float/bool, Parquet list cells (arrays) -> lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value.item() if hasattr(value, "item") else value


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


@dataclass
class StudyData:
    """A study's per-trial, per-epoch table plus what the report needs around it."""

    name: str
    df: pd.DataFrame
    baseline: str | None = None
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    study_dir: Path | None = None
    #: arm -> config (dotted key -> value) read elsewhere (a checkpoint), for tables without config.* columns
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def arm_config(self, arm: str) -> dict[str, Any] | None:
        """The arm's resolved config from its first row's ``config.*`` columns; else :attr:`configs`;
        None for an older table whose config is nowhere (the parts then show as unknown)."""
        cols = [c for c in self.df.columns if c.startswith(CONFIG_PREFIX)]
        rows = self.df.loc[self.df["arm"] == arm, cols].iterrows() if cols else iter(())
        for _, row in rows:
            values = {c.removeprefix(CONFIG_PREFIX): _plain(v) for c, v in row.items() if not _missing(v)}
            if values:
                return values
        return self.configs.get(arm)

    @property
    def arms(self) -> list[str]:
        """Arms in the study's order, numeric factor levels ascending (the baseline first on ties)."""
        order = list(dict.fromkeys(self.df["arm"]))
        numeric = [c for c in self.factors if pd.api.types.is_numeric_dtype(self.df[c])]
        if numeric:
            first = self.df.drop_duplicates("arm").set_index("arm")[numeric]
            order.sort(key=lambda a: tuple(float(first.loc[a, c]) for c in numeric))
        return order

    @property
    def factors(self) -> list[str]:
        return [c for c in self.df.columns if c.startswith("factor.")]

    @property
    def seeds(self) -> list[int]:
        return sorted(int(s) for s in self.df["seed"].unique())

    def final(self) -> pd.DataFrame:
        """One row per trial: its last epoch (the numbers the ablation table compares)."""
        return self.df.sort_values("epoch").groupby(["arm", "seed"], sort=False).tail(1).reset_index(drop=True)

    def has(self, metric: str) -> bool:
        return metric in self.df.columns and self.df[metric].notna().any()


def reachable(uri: str | None, timeout: float = 2.0) -> bool:
    """True when an MLflow store can be used without waiting on retries (server up, SQLite file present)."""
    if not uri:
        return False
    from cjepa.tracking.store import is_remote, sqlite_path

    if is_remote(uri):
        from cjepa.tracking.ui import health_ok

        return health_ok(uri, timeout)
    path = sqlite_path(uri)
    return path is None or path.exists()


def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def _number(text: Any) -> Any:
    """MLflow params are strings: '0.01' -> 0.01, 'true' -> True, anything else unchanged."""
    if not isinstance(text, str):
        return text
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _baseline_param(params: dict[str, str]) -> str | None:
    value = params.get("baseline")
    return None if value in (None, "", "None") else value


IJEPA = PAPER_PARTS[(True, False, False)]


def infer_baseline(data: StudyData) -> str | None:
    """Without a recorded baseline: the arm whose config is I-JEPA's (EMA on, no VICReg term acting,
    the default EMA schedule); else the only arm that is I-JEPA at the study's own recipe (EMA on,
    no regulariser at all); for an older table without configs, an arm named after I-JEPA; else none."""
    for arm in data.arms:
        if paper_arm(data.arm_config(arm)) == IJEPA:
            return arm
    from dashboards.arms import terms

    plain = [a for a in data.arms if (cfg := data.arm_config(a)) is not None
             and terms(cfg) == {"EMA": True, "var": False, "cov": False, "inv": False, "sigreg": False}]
    if len(plain) == 1:
        return plain[0]
    return next((a for a in data.arms if a.startswith("I-JEPA") and data.arm_config(a) is None), None)


def load_study_dir(study_dir: str | Path, tracking_uri: str | None = None, baseline: str | None = None) -> StudyData:
    """Read ``DIR/results.parquet`` and ``DIR/study.json``; the baseline from ``baseline``, else the
    parent run's ``baseline`` param (when the store is reachable), else :func:`infer_baseline`."""
    from cjepa.errors import CJepaError

    study_dir = Path(study_dir)
    table = study_dir / "results.parquet"
    if not table.is_file():
        raise CJepaError(f"--study {study_dir}: no results.parquet there (is it a study directory "
                         "`<storage>/<study>` whose study has finished?)")
    try:
        df = pd.read_parquet(table)
    except Exception as exc:  # pyarrow's ArrowInvalid ("Parquet magic bytes not found"), OSError, ...
        text = " ".join(str(exc).split()).rsplit("': ", 1)[-1]  # pyarrow repeats the path: keep what is wrong
        why = f"{type(exc).__name__}: {text.split('. ')[0][:160]}"
        raise CJepaError(f"--study {study_dir}: {table} cannot be read ({why}); move it away and rerun the "
                         "study with --resume, which rebuilds it from Tune's state and the trials' metrics.jsonl, "
                         "or report from MLflow with --experiment NAME") from None
    state = json.loads((study_dir / "study.json").read_text()) if (study_dir / "study.json").is_file() else {}
    uri = tracking_uri or state.get("tracking_uri")
    parent = state.get("parent_run_id")
    name = str(df["study"].iloc[0]) if "study" in df and len(df) else study_dir.name
    if baseline is None and parent and reachable(uri):
        try:
            baseline = _baseline_param(_client(uri).get_run(parent).data.params)
        except Exception as exc:  # the table alone still makes a report
            print(f"[report] warning: parent run {parent} not readable at {uri}: {exc}")
    data = StudyData(name, df, baseline, parent, uri, study_dir)
    data.baseline = data.baseline or infer_baseline(data)
    return data


def load_experiment(experiment: str, tracking_uri: str | None = None, baseline: str | None = None) -> StudyData:
    """Rebuild the results table from an MLflow experiment: child runs tagged ``arm``/``seed``.

    Factor values come from the parent's ``factor.<key>`` params and each child's config params;
    checkpoints from the child's ``run_dir`` tag (the run's output directory)."""
    from cjepa.errors import CJepaError
    from cjepa.tracking.store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    if not reachable(uri):
        raise CJepaError(f"tracking store {uri} is not reachable (start the server or check the path)")
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise CJepaError(f"--experiment {experiment!r}: no such MLflow experiment in {uri}")
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    parents = [r for r in runs if r.data.tags.get("cjepa.role") == "study"]
    parent = parents[0] if parents else None
    factor_keys = [k.removeprefix("factor.") for k in (parent.data.params if parent else {}) if k.startswith("factor.")]
    from cjepa.config import Config

    known = set(Config().flat())  # a child run's params are its config's dotted keys (MLflowReporter)
    rows: list[dict[str, Any]] = []
    for run in runs:
        tags, params = run.data.tags, run.data.params
        if "arm" not in tags or "seed" not in tags:
            continue
        common = {"study": tags.get("study", experiment), "arm": tags["arm"], "seed": int(tags["seed"]),
                  "trial_id": tags.get("trial_id", ""), "mlflow_run_id": run.info.run_id,
                  "status": run.info.status, "stop_reason": "",
                  "checkpoint_path": str(Path(tags["run_dir"]) / CHECKPOINT_NAME) if "run_dir" in tags else "",
                  **{f"factor.{k}": _number(params.get(k)) for k in factor_keys},
                  **{CONFIG_PREFIX + k: _number(v) for k, v in params.items() if k in known}}
        by_epoch: dict[int, dict[str, Any]] = {}
        for key in run.data.metrics:
            for m in client.get_metric_history(run.info.run_id, key):
                by_epoch.setdefault(int(m.step), {})[key] = m.value
        for epoch in sorted(by_epoch):
            rows.append({**common, **by_epoch[epoch], "epoch": epoch})
    if not rows:
        raise CJepaError(f"--experiment {experiment!r}: no child runs tagged arm/seed in {uri}")
    df = pd.DataFrame(rows)
    data = StudyData(experiment, df, baseline or (_baseline_param(parent.data.params) if parent else None),
                     parent.info.run_id if parent else None, uri, None)
    data.baseline = data.baseline or infer_baseline(data)
    return data


def checkpoint_file(path: Any) -> Path | None:
    """A trial's checkpoint: the results table holds Ray's checkpoint *directory*, MLflow the run dir."""
    if not isinstance(path, str) or not path:  # None / NaN for trials that never checkpointed
        return None
    p = Path(path)
    p = p / CHECKPOINT_NAME if p.is_dir() else p
    return p if p.is_file() else None
