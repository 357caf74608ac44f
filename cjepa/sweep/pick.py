"""A search's pick as a small committed-able file: ``pick.yaml`` beside the study's summary.

Why a file of its own: the results table (``results.parquet``) is a run artefact that lives under
the study's storage and is not tracked (it holds every trial's whole config and checkpoint paths);
a machine restart loses it. The pick is what later studies build on (``fair_search --winners``
runs each family's pick on paired seeds), so it is written as a few lines of YAML, at full
precision, that a results folder under ``docs/`` can keep.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml

from cjepa.atomic import atomic_write
from cjepa.sweep.study import Study
from cjepa.sweep.summary import final_rows, selected_trial

PICK_FILE = "pick.yaml"


def _value(v: Any) -> Any:
    """A factor column's value as a config value (pairs such as crops are stored as their text)."""
    return list(ast.literal_eval(v)) if isinstance(v, str) and v.startswith("(") else v


def pick_record(rows: list[dict[str, Any]], study: Study) -> dict[str, Any] | None:
    """The selected trial (see :func:`selected_trial`) as a record: which trial, its score on the
    study's metric, and its searched settings as config values; None when nothing was selected."""
    pick = selected_trial(final_rows(rows), study)
    if pick is None:
        return None
    settings = {k.removeprefix("factor."): _value(v) for k, v in sorted(pick.items()) if k.startswith("factor.")}
    return {"study": study.name, "trial_id": pick.get("trial_id"), "arm": pick["arm"], "metric": study.metric,
            "mode": study.mode, "value": float(pick[study.metric]), "settings": settings}


def write_pick(study_dir: Path, rows: list[dict[str, Any]], study: Study) -> Path | None:
    """``study_dir/pick.yaml``, atomically; nothing when the study selects nothing (a grid)."""
    record = pick_record(rows, study)
    if record is None:
        return None
    text = yaml.safe_dump(record, sort_keys=False)
    return atomic_write(Path(study_dir) / PICK_FILE, lambda fh: fh.write(text), binary=False)


def read_pick(path: Path) -> dict[str, Any]:
    """A ``pick.yaml``'s searched settings; a file that is not one is refused in one line."""
    record = yaml.safe_load(Path(path).read_text())
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise SystemExit(f"{path}: expected a search's pick (a mapping with 'settings'), as a study writes it")
    return record["settings"]
