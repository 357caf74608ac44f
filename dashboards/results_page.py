"""``cjepa report --study A B ... --page docs/results.md``: one page over several studies.

Each study gets its own full report (tables, figures, report.html) in ``<out>/<study>/``; the page
puts together what a reader needs to judge the paper at the studies' scale: the setting, the
verdict on each of the paper's claims (dashboards.claims: decided by paired intervals, never by
hand), the ablation tables with raw pixels and the random-initialised encoder, accuracy per arm and
epoch with paired differences, convergence, and collapse telemetry. Everything on it is computed
from the studies' results tables, so rerunning the studies and this command rewrites it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from pathlib import Path

from cjepa.sweep.stats import Interval, mean_ci
from dashboards.claims import Claim, Reach, convergence_claim, ordering_claims, per_epoch
from dashboards.load import StudyData
from dashboards.table import signed

COLLAPSE_METRICS = (("target_std_mean_normalized", "target std (normalised; 0 = collapsed)"),
                    ("target_eff_rank", "target effective rank (1 = collapsed)"))


def _signed(iv: Interval | None) -> str:
    return "" if iv is None else signed(iv)


def claims_table(claims: Sequence[Claim]) -> list[str]:
    lines = ["| claim (paper) | metric | Δ ours (pp, paired, 95 % CI) | verdict |", "|---|---|---|---|"]
    lines += [f"| {c.text} | {c.metric} | {_signed(c.diff)} | **{c.verdict}** |" for c in claims]
    return lines


def epochs_table(data: StudyData, metric: str) -> list[str]:
    table = per_epoch(data, metric)
    epochs = sorted(int(e) for e in data.df["epoch"].unique())
    head = ["arm"] + [f"epoch {e}" for e in epochs] + [f"Δ epoch {e}" for e in epochs]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm, cells in table.items():
        values = [iv.fmt() for iv, _ in cells]
        diffs = ["(baseline)" if arm == data.baseline else _signed(d) for _, d in cells]
        lines.append("| " + " | ".join([arm, *values, *diffs]) + " |")
    return lines


def reach_table(rows: Sequence[Reach], level_text: str) -> list[str]:
    lines = [f"| arm | first epoch at {level_text} | training CPU-minutes by then (mean) |", "|---|---|---|"]
    for r in rows:
        epoch = str(r.epoch) if r.epoch is not None else "not reached"
        cpu = f"{r.cpu_min:.1f}" if r.cpu_min is not None else ""
        lines.append(f"| {r.arm} | {epoch} | {cpu} |")
    return lines


def collapse_table(data: StudyData) -> list[str]:
    present = [(m, h) for m, h in COLLAPSE_METRICS if data.has(m)]
    if not present:
        return []
    lines = ["| arm | " + " | ".join(h for _, h in present) + " |", "|---|" + "---|" * len(present)]
    final = data.final()
    for arm in data.arms:
        rows = final[final["arm"] == arm]
        cells = [mean_ci(rows[m].dropna().tolist()).fmt(scale=1.0, digits=2) for m, _ in present]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def setting(data: StudyData) -> str:
    """The scale the study ran at, read from its baseline's config."""
    cfg = data.arm_config(data.baseline or data.arms[0]) or {}

    def v(key: str, default: object = "?") -> object:
        return cfg.get(key, default)

    subset = v("data.train_subset", 0)
    return (f"{v('data.dataset')} ({subset or 'all'} training images), ViT {v('model.embed_dim')}/"
            f"{v('model.depth')}/{v('model.num_heads')} patch {v('model.patch_size')}, {v('run.epochs')} epochs at "
            f"batch {v('optim.batch_size')}, reading `{v('loss.vicreg_mode')}`, beta_vicreg of the C-JEPA arms "
            f"per the study; evaluation every epoch on {v('eval.train_samples')} / {v('eval.test_samples')} "
            f"images (kNN k={v('eval.knn_k')}, linear probe {v('eval.linear_epochs')} epochs), target encoder, "
            f"mean-pooled tokens; {len(data.seeds)} paired seeds ({', '.join(map(str, data.seeds))}).")


def study_section(data: StudyData, report_path: Path, report_dir: str) -> tuple[list[str], list[Claim]]:
    """The page's section for one study (its report in ``report_path``, linked as ``report_dir``),
    and the claims it decided (for the page's verdict list)."""
    claims = ordering_claims(data)
    conv = convergence_claim(data)
    if conv is not None:
        claims.append(conv[0])
    lines = [f"## Study `{data.name}`", "", setting(data), "",
             f"Full report: [{report_dir}/report.html]({report_dir}/report.html); figures: "
             f"[convergence]({report_dir}/convergence.png), [accuracy per CPU-minute]({report_dir}/cpu_minutes.png), "
             f"[collapse]({report_dir}/collapse.png)"
             + (f", [coefficient]({report_dir}/coefficient.png)" if (report_path / "coefficient.png").exists()
                else "") + ".", ""]
    if claims:
        lines += ["### The paper's claims at this scale", "", *claims_table(claims), ""]
    lines += ["### Final epoch: ablation table", "", (report_path / "ablation_table.md").read_text().strip(), ""]
    for metric in ("knn_target", "linear_target"):
        if data.has(metric):
            lines += [f"### {metric} per arm and epoch (%, mean ± 95 % CI; Δ paired from "
                      f"`{data.baseline}`, points)", "", *epochs_table(data, metric), ""]
    if conv is not None:
        lines += ["### Convergence", "", *reach_table(conv[1], "I-JEPA's final linear_target"), "",
                  "CPU-minutes are threads × training seconds (evaluation excluded), so they grow when other "
                  "work shares the cores.", ""]
    collapse = collapse_table(data)
    if collapse:
        lines += ["### Collapse telemetry, final epoch (mean ± 95 % CI)", "", *collapse, ""]
    return lines, claims


def page(studies: Sequence[tuple[StudyData, Path]], page_path: Path, command: str) -> str:
    """The whole page; ``studies`` pairs each study with the folder its report was written to."""
    body: list[str] = []
    verdicts: list[str] = []
    for data, report_dir in studies:
        rel = os.path.relpath(report_dir, page_path.parent)
        section, claims = study_section(data, report_dir, rel)
        body += section
        verdicts += [f"- **{c.verdict}** ({data.name}, {c.metric}): {c.text}; Δ {_signed(c.diff)} points"
                     for c in claims]
    head = ["# Results: the paper's claims at laptop scale", "",
            f"Generated by `{command}` on {dt.date.today().isoformat()} from the studies' results tables; "
            "rerun the studies and the command to regenerate. Verdicts are decided by the seed-paired 95 % "
            "interval alone (dashboards/claims.py): **reproduces** = the paper's direction, interval excludes 0; "
            "**not resolved** = interval contains 0; **reversed** = the other direction, excluding 0. The orderings "
            "read the test split (`test_*`, scored once at each trial's last epoch) where a study has a validation "
            "split; the per-epoch curves and the convergence claim read the validation split.", ""]
    if verdicts:
        head += ["## Verdicts", "", *verdicts, ""]
    return "\n".join(head + body) + "\n"
