"""A study's summary: per arm, final-epoch accuracy (mean ± 95 % CI over seeds) and the seed-paired
difference from the baseline, on the validation split (what every selection read) and, for
completed trials, on the test split (scored once); raw pixels and the random-initialised encoder as
rows; and each arm's gain over its own random initialisation under every read-out.
"""

from __future__ import annotations

from typing import Any

from cjepa.metrics import TEST_PREFIX
from cjepa.sweep.stats import (
    format_gains,
    format_summary,
    gains_over_random_init,
    readout_metrics,
    reference_key,
    reference_rows,
    summarize,
)
from cjepa.sweep.study import Study

#: target encoder (what the paper evaluates) and context encoder: in short runs the EMA target
#: is still mostly its initialisation (momentum 0.996 -> 1 over ~100 steps keeps ~80 % of it),
#: so differences between arms show in the context encoder first.
SUMMARY_METRICS = ("knn_target", "linear_target", "knn_context", "linear_context")
#: The same probes on the test split, scored once at the end of a completed trial (never selected on)
TEST_SUMMARY_METRICS = tuple(TEST_PREFIX + m for m in SUMMARY_METRICS)


def summary_from_rows(rows: list[dict[str, Any]], study: Study) -> str:
    finals = _with_trial_ids(final_rows(rows), study)
    metrics = [m for m in SUMMARY_METRICS if any(r.get(m) is not None for r in finals)] or [study.metric]
    tests = [m for m in TEST_SUMMARY_METRICS if any(r.get(m) is not None for r in finals)]
    status = {s: sum(r["status"] == s for r in finals) for s in ("COMPLETED", "STOPPED", "ERROR")}
    splits = sorted({str(r.get("eval_split") or "test") for r in finals})
    lines = [f"Study {study.name}: {len(finals)} trials "
             f"({', '.join(f'{n} {s.lower()}' for s, n in status.items() if n)}); "
             f"final-epoch accuracy, mean ± 95 % CI over seeds, Δ = paired by seed", "",
             f"On the {' and '.join(SPLIT_WORDS.get(s, s) for s in splits)} (what every selection read):", "",
             _table(finals, metrics, study)]
    if tests:  # completed trials only: a stopped trial never reached its test score
        lines += ["", "On the test split, scored once at the end of each completed trial (never selected on):", "",
                  _table([r for r in finals if r.get(tests[0]) is not None], tests, study)]
    lines += _gain_lines(finals) + _selection_lines(finals, study)
    words = {"raw": "raw pixels: the probes on the pixels themselves",
             "rand": "random-init encoder: the encoder exactly as initialised (same seed)"}
    shown = [text for p, text in words.items() if any(r.get(f"{p}_knn_acc") is not None for r in finals)]
    if shown:
        lines += ["", "; ".join(shown) + "; on the same evaluation subsets."]
    return "\n".join(lines)


SPLIT_WORDS = {"val": "validation split (held out of the training images, never trained on)",
               "test": "test split (no validation split: data.val_samples=0)"}


def _gain_lines(finals: list[dict[str, Any]]) -> list[str]:
    """The gain of each arm over its own random initialisation under every read-out the trials
    report (validation split; the test split's too when there): "beats raw pixels" says little on
    Fashion-MNIST, "beats the untrained network" says whether anything was learnt."""
    out = []
    for prefix, where in (("", "validation"), (TEST_PREFIX, "test")):
        metrics = [m for m in readout_metrics(finals, "target", prefix)
                   if any(r.get(reference_key("rand", m)) is not None for r in finals)]
        if metrics:  # the trials that have the split's scores (a stopped trial has no test score)
            scored = [r for r in finals if r.get(metrics[0]) is not None]
            out += ["", f"Gain over the random-initialised encoder, per read-out ({where} split; paired by seed):", "",
                    format_gains(gains_over_random_init(scored, metrics), metrics)]
    return out


def _with_trial_ids(finals: list[dict[str, Any]], study: Study) -> list[dict[str, Any]]:
    """A searched arm (``optuna-<hash of its settings>``) labelled with its Tune trial ids too: the
    console's table, Tune's folders and MLflow's child runs name a trial by its id, so the summary's
    rows say which one each is."""
    if study.search == "grid":
        return finals
    ids: dict[str, set[str]] = {}
    for row in finals:
        ids.setdefault(row["arm"], set()).add(str(row.get("trial_id") or "?"))
    return [{**r, "arm": f"{r['arm']} (trial {', '.join(sorted(ids[r['arm']]))})"} for r in finals]


def selected_trial(finals: list[dict[str, Any]], study: Study) -> dict[str, Any] | None:
    """A search's pick: of the trials' final rows, the completed one (ASHA's survivors ran the whole
    budget) best on the study's metric, which a selecting study reads on the validation split; None
    for a grid or when no trial completed. Its settings are its ``factor.*`` columns."""
    completed = [r for r in finals if r["status"] == "COMPLETED" and r.get(study.metric) is not None]
    if study.search == "grid" or not completed:
        return None
    return (max if study.mode == "max" else min)(completed, key=lambda r: r[study.metric])


def final_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each trial's (arm, seed) last epoch's row."""
    final: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        key = (row["arm"], row["seed"])
        if key not in final or row["epoch"] >= final[key]["epoch"]:
            final[key] = row
    return list(final.values())


def _selection_lines(finals: list[dict[str, Any]], study: Study) -> list[str]:
    pick = selected_trial(finals, study)
    if pick is None:
        return []
    settings = ", ".join(f"{k.removeprefix('factor.')}={v:.4g}" if isinstance(v, float) else
                         f"{k.removeprefix('factor.')}={v}" for k, v in sorted(pick.items()) if k.startswith("factor."))
    return ["", f"Selected on the validation split ({study.metric} at the last epoch, {study.mode}, completed "
                f"trials): {pick['arm']}, {study.metric} {pick[study.metric]:.4g}: {settings}"]


def _table(finals: list[dict[str, Any]], metrics: list[str], study: Study) -> str:
    entries = summarize(finals, metrics, study.baseline) + reference_rows(finals, metrics)
    return format_summary(entries, metrics, study.baseline)
