"""The ablation table, laid out like the paper's Table 3, with the paper's numbers beside ours.

Per arm: which parts are on (EMA, var/cov, invariance) and whether it is one of the paper's arms,
both read from the trial's typed config (dashboards.arms), the paper's ViT-B/16 linear-probe
number where it is, and our final-epoch linear and kNN accuracy as mean ± 95 % t-interval over
seeds plus the seed-paired difference from the baseline arm (cjepa.sweep.stats). Under the arms,
raw pixels and the random-initialised encoder: what an encoder must beat to have learnt anything.
The paper's numbers are ImageNet-1K, ViT-B/16, 100 epochs, single runs; ours are at the study's
own scale, so compare *orderings and differences*, never the absolute values.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from cjepa.sweep.stats import Interval, reference_rows, summarize
from dashboards.arms import PAPER_TABLE3, paper_arm, parts_of
from dashboards.load import StudyData

__all__ = ["PAPER_SETTING", "PAPER_TABLE3", "Row", "build_rows", "label", "paper_arm_of", "titled", "to_html",
           "to_markdown"]

PAPER_SETTING = "ImageNet-1K, ViT-B/16, 100 epochs, linear probe, single run"
TABLE_METRICS = ("linear_target", "knn_target", "linear_context", "knn_context")  # context: see SUMMARY_METRICS


def paper_arm_of(data: StudyData, arm: str) -> str | None:
    """The paper's arm that ``arm`` reproduces, from its config, not its label: at the study's own
    recipe where the arm is the only one with that arm's parts (dashboards.claims.table3_arms),
    else with the paper's default coefficients (dashboards.arms.paper_arm)."""
    from dashboards.claims import table3_arms  # claims imports this module's neighbours, not this one

    at_recipe = {ours: paper for paper, ours in table3_arms(data).items()}
    return at_recipe.get(arm) or paper_arm(data.arm_config(arm))


def titled(arm: str, paper: str | None) -> str:
    """Legend text: the paper's arm name first where the arm is one ("I-JEPA (EMA only) [beta_vicreg=0.0]")."""
    return arm if paper is None or paper == arm else f"{paper} [{arm}]"


def label(data: StudyData, arm: str) -> str:
    """:func:`titled` with the paper arm read from the arm's config in the study's table."""
    return titled(arm, paper_arm_of(data, arm))


@dataclass
class Row:
    arm: str  # the arm, or a reference row's name
    title: str  # the first cell: the arm's label (paper name first), or the reference's name
    parts: dict[str, bool | None]  # EMA / var-cov / inv switched on; empty for a reference row
    paper: float | None
    values: dict[str, Interval]
    diffs: dict[str, Interval | None]
    n: int
    reference: bool = False  # raw pixels / random-init encoder: read against every arm, no Δ


def build_rows(data: StudyData) -> tuple[list[Row], list[str]]:
    """Rows in the study's arm order, then the raw-pixel and random-init encoder rows (where the
    engine reported them), and the metrics present (linear first: the paper's metric)."""
    metrics = [m for m in TABLE_METRICS if data.has(m)]
    final = data.final().to_dict("records")
    clean = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in final]
    summary = {e["arm"]: e for e in summarize(clean, metrics, data.baseline)}
    rows = []
    for arm in data.arms:
        e = summary[arm]
        rows.append(Row(arm, label(data, arm), parts_of(data.arm_config(arm)),
                        PAPER_TABLE3.get(paper_arm_of(data, arm) or ""), {m: e[m] for m in metrics},
                        {m: e[f"{m}_diff"] for m in metrics}, e["n"]))
    for e in reference_rows(clean, metrics):
        rows.append(Row(e["arm"], e["arm"], {}, None, {m: e[m] for m in metrics}, {m: None for m in metrics},
                        e["n"], reference=True))
    return rows, metrics


def _mark(value: bool | None) -> str:
    return "?" if value is None else ("✓" if value else "–")


def _cells(row: Row, metrics: list[str], baseline: str | None) -> list[str]:
    parts = [_mark(v) for v in row.parts.values()] if not row.reference else ["", "", ""]
    cells = [row.title, *parts, f"{row.paper:.1f}" if row.paper is not None else "", str(row.n)]
    for m in metrics:
        cells.append(row.values[m].fmt())
        diff = row.diffs[m]
        if row.reference:
            cells.append("")
        else:
            cells.append("(baseline)" if row.arm == baseline else (signed(diff) if diff is not None else "n/a"))
    return cells


def signed(iv: Interval) -> str:
    """An interval with its sign always shown (``+5.0 ± 1.2``): a difference, not a level."""
    text = iv.fmt()
    return text if text.startswith("-") or text == "n/a" else "+" + text


def _header(metrics: list[str], baseline: str | None) -> list[str]:
    head = ["arm", "EMA", "var/cov", "inv", "paper lin. % (ViT-B, IN-1K)", "seeds"]
    for m in metrics:
        head += [f"ours {m} %", f"Δ {m}"]  # the caption names the baseline and the pairing
    return head


def to_markdown(rows: list[Row], metrics: list[str], baseline: str | None, study: str) -> str:
    head = _header(metrics, baseline)
    lines = [f"Ablation table, study `{study}`: final-epoch accuracy in %, mean ± 95 % t-interval over seeds; "
             f"Δ = seed-paired difference from `{baseline}` (percentage points).",
             f"Paper column: Mo & Tong 2024 ({PAPER_SETTING}); ours are at this study's own scale "
             "(dataset, model, epochs), so compare orderings and differences, not absolute values.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cells(r, metrics, baseline)) + " |" for r in rows]
    if any(r.reference for r in rows):
        lines += ["", "raw pixels: the same probes on the pixels themselves; random-init encoder: the encoder "
                  "exactly as initialised (same seeds). An arm below them has learnt nothing the probes can use."]
    return "\n".join(lines)


def to_html(rows: list[Row], metrics: list[str], baseline: str | None) -> str:
    head = _header(metrics, baseline)
    out = ['<table class="ablation">', "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
           + "</tr></thead>", "<tbody>"]
    for r in rows:
        cls = ' class="reference"' if r.reference else (' class="baseline"' if r.arm == baseline else "")
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r, metrics, baseline))
                   + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def gains_markdown(data: StudyData) -> str:
    """Each arm's seed-paired gain over the same network at its random initialisation, under every
    read-out of the target encoder the study reports (mean, gridK; kNN and linear): "beats raw
    pixels" says little on Fashion-MNIST, "beats its own untrained network" says whether it learnt.
    Empty when the study has no random-init scores."""
    from cjepa.sweep.stats import format_gains, gains_over_random_init, readout_metrics, reference_key

    finals = [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}  # NaN -> absent
              for r in data.final().to_dict("records")]
    metrics = [m for m in readout_metrics(finals) if any(r.get(reference_key("rand", m)) is not None for r in finals)]
    if not metrics:
        return ""
    for row in finals:
        row["arm"] = label(data, row["arm"])
    return "\n".join(["Gain over the random-initialised encoder (same seed, same read-out), percentage points, "
                      "mean ± 95 % t-interval over paired seeds:", "",
                      format_gains(gains_over_random_init(finals, metrics), metrics)])
