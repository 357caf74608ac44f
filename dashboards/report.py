"""``cjepa report``: one study -> report.html + ablation_table.md + PNGs, logged on the study's parent run.

    cjepa report --study ray_results/term_ablation            # results.parquet + study.json
    cjepa report --experiment term_ablation [--tracking-uri URI]   # the MLflow experiment instead

Every figure is optional in the sense that a study lacking its inputs (no numeric factor, no
checkpoints on this host, eval switched off) gets a one-line note in the report instead of a
crash: a report is a summary, and a half-finished study still deserves one.
"""

from __future__ import annotations

import argparse
import html
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from cjepa.sweep.note import NOTE_TAG, mark_report_logged
from dashboards import html as H
from dashboards.load import StudyData, load_experiment, load_study_dir, reachable
from dashboards.table import PAPER_SETTING, Row, build_rows, gains_markdown, to_html, to_markdown

REPORT_HTML = "report.html"
TABLE_MD = "ablation_table.md"


@dataclass
class Report:
    out_dir: Path
    html: Path
    table_md: Path
    pngs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # figures that could not be drawn, and why
    artifact_run_id: str | None = None


T = TypeVar("T")


def _try(notes: list[str], what: str, fn: Callable[[], T | None]) -> T | None:
    try:
        return fn()
    except Exception as exc:
        notes.append(f"{what}: not drawn ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})")
        traceback.print_exc(file=sys.stderr)
        return None


def _configs_from_checkpoints(data: StudyData, notes: list[str]) -> None:
    """Older results tables lack ``config.*`` columns: read those arms' configs from their checkpoints
    (torch needed), so parts, paper arms and the inferred baseline still come from configs."""
    from dashboards.attention import trial_config
    from dashboards.load import infer_baseline

    missing = [arm for arm in data.arms if data.arm_config(arm) is None]
    for arm in missing:
        cfg = _try(notes, f"config of {arm}", lambda a=arm: trial_config(data, a))
        if cfg:
            data.configs[arm] = cfg
    if missing and data.baseline is None:
        data.baseline = infer_baseline(data)


def build_report(data: StudyData, out_dir: Path, images: bool = True,
                 attention_arms: tuple[str, str] | None = None) -> Report:
    """Write every table and figure of ``data`` into ``out_dir``; returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    if images:
        _configs_from_checkpoints(data, notes)
    rows, metrics = build_rows(data)
    table_md = out_dir / TABLE_MD
    gains = gains_markdown(data)
    table_md.write_text(to_markdown(rows, metrics, data.baseline, data.name) + (f"\n\n{gains}" if gains else "") + "\n")
    figs, curve_pngs = _curve_figures(data, metrics, out_dir, notes)
    if images:
        qual, qual_pngs = _qualitative_figures(data, out_dir, attention_arms, notes)
    else:
        qual, qual_pngs = [], []
        notes.append("masks and attention maps: skipped (--no-images)")
    intro = H.paragraph(f"Study {data.name}: {len(data.arms)} arms × {len(data.seeds)} seeds "
                        f"({', '.join(map(str, data.seeds))}); baseline arm: {data.baseline or '(none)'}. "
                        f"Source: {data.study_dir or data.tracking_uri}.")
    sections = [
        _table_section(rows, metrics, data.baseline),
        H.Section("Curves", figures=tuple(figs)),
        H.Section("Masks and attention", figures=tuple(qual)),
    ]
    if notes:
        sections.append(H.Section("Not drawn", "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                                  + "</ul>"))
    page = out_dir / REPORT_HTML
    page.write_text(H.render(f"cjepa report: {data.name}", intro, sections, out_dir))
    return Report(out_dir, page, table_md, curve_pngs + qual_pngs, notes)


def _curve_figures(data: StudyData, metrics: list[str], out_dir: Path,
                   notes: list[str]) -> tuple[list[H.Figure], list[Path]]:
    """The per-epoch and per-budget figures, drawn from the results table alone (no checkpoints): the
    report's figures and their PNGs, in page order; a figure that cannot be drawn leaves a note."""
    from dashboards import plots

    conv = _try(notes, "convergence", lambda: plots.convergence_plot(data, out_dir / "convergence.png"))
    collapse = _try(notes, "collapse", lambda: plots.collapse_plot(data, out_dir / "collapse.png"))
    budget = _try(notes, "CPU-minutes", lambda: plots.cpu_minutes_plot(data, out_dir / "cpu_minutes.png"))
    factor = plots.numeric_factor(data)
    coef = None
    if factor is None:
        notes.append("coefficient plot: the study has no numeric factor with several levels")
    else:
        coef = _try(notes, "coefficient plot", lambda: plots.coefficient_plot(
            data, factor, metrics or ["knn_target"], out_dir / "coefficient.png"))
    figs: list[H.Figure] = []
    if conv:
        figs.append(H.Figure(conv.name, "Convergence per arm", "kNN and linear-probe accuracy of the target encoder, "
                             "JEPA loss and each (unweighted) VICReg term per epoch; dashed: raw-pixel baselines "
                             "on the same evaluation subsets."))
    if budget:
        figs.append(H.Figure(budget.name, "Accuracy per training CPU-minute", "Target-encoder kNN and linear probe "
                             "against the mean CPU-minutes of training (threads × seconds, evaluation excluded); "
                             "dashed: raw pixels, dotted: the random-initialised encoder, same evaluation sets."))
    if collapse:
        figs.append(H.Figure(collapse.name, "Collapse telemetry", "Normalised per-feature std and effective rank of "
                             "pooled target features; a collapsed encoder goes to 0 and 1 respectively."))
    if coef and factor:
        figs.append(H.Figure(coef.name, f"Final accuracy vs {factor.removeprefix('factor.')}",
                             "Mean ± 95 % CI over seeds; the level 0 (term off) sits on its own axis at the left."))
    return figs, [p for p in (conv, budget, collapse, coef) if p]


def _qualitative_figures(data: StudyData, out_dir: Path, attention_arms: tuple[str, str] | None,
                         notes: list[str]) -> tuple[list[H.Figure], list[Path]]:
    """Masks and attention maps: they need trained checkpoints on this host (and torch), so a study
    without them gets notes instead; returns the figures and their PNGs, in page order."""
    from dashboards import attention as A

    trials: list = []
    pair = attention_arms or A.pick_arms(data)
    if pair is None:
        notes.append("attention maps: need a baseline (I-JEPA) arm and one more arm")
    else:
        trials = _try(notes, "loading checkpoints", lambda: A.trials_for(data, pair)) or []  # type: ignore
        if not trials:
            notes.append(f"attention maps and masks: no checkpoints on this host for both of {pair}")
    if not trials:
        return [], []
    masks = _try(notes, "masks", lambda: A.masks_figure(trials[-1], out_dir / "masks.png"))
    attention = _try(notes, "attention", lambda: A.attention_figure(trials, out_dir / "attention.png"))
    qual: list[H.Figure] = []
    if masks:
        qual.append(H.Figure(masks.name, f"Sampled multi-block masks ({trials[-1].arm}, seed {trials[-1].seed})",
                             "Left: image; right: context patches in blue, each target block in its own colour, "
                             "unmasked patches dimmed (the trial's mask config, step 0)."))
    if attention:
        qual.append(H.Figure(attention.name, "Attention maps, I-JEPA beside C-JEPA",
                             "Last block, attention received per patch (mean over heads and query tokens), "
                             "recomputed from the block's qkv by a forward hook, upsampled over the image."))
    return qual, [p for p in (masks, attention) if p]


def _table_section(rows: list[Row], metrics: list[str], baseline: str | None) -> H.Section:
    """The ablation table with the note that says how to read it (our scale is not the paper's)."""
    return H.Section("Ablation table (after the paper's Table 3)", to_html(rows, metrics, baseline) + H.paragraph(
        f"Final-epoch accuracy in %, mean ± 95 % t-interval over seeds; Δ is the seed-paired difference from the "
        f"baseline in percentage points. The paper column is Mo & Tong 2024 ({PAPER_SETTING}) — ImageNet ViT-B "
        "numbers. Ours are at this study's own scale (its dataset, model and epochs): compare orderings and "
        "differences, not absolute values. ✓/– = part switched on/off (a term with weight 0 counts as off); "
        "? = config not available. Under the arms: raw pixels (the probes on the pixels themselves) and the "
        "random-init encoder (the encoder exactly as initialised, same seeds): what training must beat.",
        "note"))


def log_to_parent(report: Report, data: StudyData) -> str | None:
    """Log the report folder as ``report/`` artifacts of the study's parent run (when reachable)."""
    if not data.parent_run_id or not reachable(data.tracking_uri):
        print(f"[report] MLflow store {data.tracking_uri} not reachable or no parent run: artifacts not logged")
        return None
    from mlflow.tracking import MlflowClient

    client = MlflowClient(data.tracking_uri)
    client.log_artifacts(data.parent_run_id, str(report.out_dir), artifact_path="report")
    run = client.get_run(data.parent_run_id)  # the run's description now links the report
    client.set_tag(run.info.run_id, NOTE_TAG, mark_report_logged(run.data.tags.get(NOTE_TAG, ""),
                                                                 run.info.experiment_id, run.info.run_id))
    return data.parent_run_id


def _one_report(args: argparse.Namespace, data: StudyData, out: Path) -> Report:
    arms = tuple(args.attention_arms) if args.attention_arms else None
    for arm in arms or ():
        if arm not in data.arms:
            from cjepa.errors import CJepaError

            raise CJepaError(f"--attention-arms: {arm!r} is not an arm; arms are {', '.join(data.arms)}")
    report = build_report(data, out, images=not args.no_images, attention_arms=arms)  # type: ignore[arg-type]
    print(report.table_md.read_text())
    for note in report.notes:
        print(f"[report] {note}")
    if not args.no_mlflow:
        report.artifact_run_id = log_to_parent(report, data)
        if report.artifact_run_id:
            print(f"[report] logged to MLflow run {report.artifact_run_id} (artifacts report/) at {data.tracking_uri}")
    print(f"[report] {report.html} ({len(report.pngs)} figures)")
    return report


def _check_page_args(args: argparse.Namespace) -> None:
    from cjepa.errors import CJepaError

    studies = args.study or []
    if len(studies) > 1 and not args.page:
        raise CJepaError("--study: several study directories need --page FILE.md (one page over them)")
    if args.page and not args.page.endswith(".md"):
        raise CJepaError(f"--page {args.page}: expected a markdown file name ending in .md")
    if args.page and not studies:
        raise CJepaError("--page: needs --study DIR [DIR ...] (the studies the page is about)")


def cmd_report(args: argparse.Namespace) -> int:
    _check_page_args(args)
    if not args.study:
        data = load_experiment(args.experiment, args.tracking_uri, args.baseline)
        _one_report(args, data, Path(args.out) if args.out else Path(f"report-{args.experiment}"))
        return 0
    loaded = [load_study_dir(s, args.tracking_uri, args.baseline) for s in args.study]  # every dir checked first
    if not args.page:
        _one_report(args, loaded[0], Path(args.out) if args.out else Path(args.study[0]) / "report")
        return 0
    from dashboards.results_page import page

    page_path = Path(args.page)
    root = Path(args.out) if args.out else page_path.parent / "results"
    for folder, flag in ((page_path.parent, "--page"), (root, "--out")):  # before any report is drawn
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from cjepa.errors import CJepaError

            raise CJepaError(f"{flag}: cannot create the folder {folder} ({exc.strerror or exc})") from None
    done = [(data, _one_report(args, data, root / data.name).out_dir) for data in loaded]
    command = "cjepa report --study " + " ".join(args.study) + f" --page {args.page}" + \
        (f" --out {args.out}" if args.out else "") + (" --no-images" if args.no_images else "")
    from cjepa.atomic import atomic_write
    from cjepa.errors import CJepaError

    text = page(done, page_path, command)
    try:
        atomic_write(page_path, lambda fh: fh.write(text), binary=False)
    except OSError as exc:
        raise CJepaError(f"--page {page_path}: cannot write it ({exc.strerror or exc})") from None
    print(f"[report] page {page_path} over {len(done)} studies")
    return 0
