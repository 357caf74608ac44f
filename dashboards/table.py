"""The ablation table, laid out like the paper's Table 3, with the paper's numbers beside ours.

Per arm: which parts are on (EMA, var/cov, invariance; read from the trial's config), the paper's
ViT-B/16 linear-probe number where the arm exists in the paper, and our final-epoch linear and
kNN accuracy as mean ± 95 % t-interval over seeds plus the seed-paired difference from the
baseline arm (cjepa.sweep.stats). The paper's numbers are ImageNet-1K, ViT-B/16, 100 epochs,
single runs; ours are at the study's own scale, so compare *orderings and differences*, never
the absolute values.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from cjepa.sweep.stats import Interval, summarize
from dashboards.load import StudyData

#: Mo & Tong 2024, ablation (method.md §4): ViT-B/16, ImageNet-1K, 100 epochs, linear probe top-1 %.
PAPER_TABLE3: dict[str, float] = {
    "I-JEPA (EMA only)": 63.7,
    "var/cov only": 68.3,
    "EMA + invariance": 67.6,
    "C-JEPA (var/cov + inv)": 69.5,
}
PAPER_SETTING = "ImageNet-1K, ViT-B/16, 100 epochs, linear probe, single run"
#: Arms of factor studies that *are* a paper arm: beta_vicreg=0 is I-JEPA; 0.001 is the paper's default.
ALIASES: dict[str, str] = {
    "beta_vicreg=0.0": "I-JEPA (EMA only)",
    "beta_vicreg=0": "I-JEPA (EMA only)",
    "beta_vicreg=0.001": "C-JEPA (var/cov + inv)",
}
TABLE_METRICS = ("linear_target", "knn_target", "linear_context", "knn_context")  # context: see SUMMARY_METRICS


def paper_arm(arm: str) -> str | None:
    return arm if arm in PAPER_TABLE3 else ALIASES.get(arm)


def label(arm: str) -> str:
    """Legend text: the paper's arm name first where the arm is one ("I-JEPA (EMA only) [beta_vicreg=0.0]")."""
    alias = paper_arm(arm)
    return arm if alias is None or alias == arm else f"{alias} [{arm}]"


@dataclass
class Row:
    arm: str
    parts: dict[str, bool | None]  # EMA / var-cov / inv switched on
    paper: float | None
    values: dict[str, Interval]
    diffs: dict[str, Interval | None]
    n: int


def parts_of(cfg: dict[str, Any] | None) -> dict[str, bool | None]:
    """Table 3's check marks from a trial's config dict (None where the config is unknown)."""
    if not cfg:
        return {"EMA": None, "var/cov": None, "inv": None}
    loss, ema = cfg.get("loss", {}), cfg.get("ema", {})
    on = float(loss.get("beta_vicreg", 0.0)) > 0
    return {"EMA": bool(ema.get("enabled", True)),
            "var/cov": on and bool(loss.get("variance", True) or loss.get("covariance", True)),
            "inv": on and bool(loss.get("invariance", True))}


def build_rows(data: StudyData, configs: dict[str, dict[str, Any] | None]) -> tuple[list[Row], list[str]]:
    """Rows in the study's arm order, and the metrics present (linear first: the paper's metric)."""
    metrics = [m for m in TABLE_METRICS if data.has(m)]
    final = data.final().to_dict("records")
    clean = [{k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()} for r in final]
    summary = {e["arm"]: e for e in summarize(clean, metrics, data.baseline)}
    rows = []
    for arm in data.arms:
        e = summary[arm]
        rows.append(Row(arm, parts_of(configs.get(arm)), PAPER_TABLE3.get(paper_arm(arm) or ""),
                        {m: e[m] for m in metrics}, {m: e[f"{m}_diff"] for m in metrics}, e["n"]))
    return rows, metrics


def _mark(value: bool | None) -> str:
    return "?" if value is None else ("✓" if value else "–")


def _cells(row: Row, metrics: list[str], baseline: str | None) -> list[str]:
    cells = [label(row.arm), *(_mark(v) for v in row.parts.values()),
             f"{row.paper:.1f}" if row.paper is not None else "", str(row.n)]
    for m in metrics:
        cells.append(row.values[m].fmt())
        diff = row.diffs[m]
        cells.append("(baseline)" if row.arm == baseline else (_signed(diff) if diff is not None else "n/a"))
    return cells


def _signed(iv: Interval) -> str:
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
    return "\n".join(lines)


def to_html(rows: list[Row], metrics: list[str], baseline: str | None) -> str:
    head = _header(metrics, baseline)
    out = ['<table class="ablation">', "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head)
           + "</tr></thead>", "<tbody>"]
    for r in rows:
        cls = ' class="baseline"' if r.arm == baseline else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in _cells(r, metrics, baseline))
                   + "</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)
