"""Study-level figures: convergence per arm with 95 % CI bands, collapse, and the coefficient plot.

One run's curves already exist (cjepa.tracking.plots, logged per run); these compare *arms*: each
line is the mean over seeds at each epoch and the band its Student-t 95 % interval
(cjepa.sweep.stats.mean_ci), so a gap between arms can be told from seed noise; with fewer than
3 seeds the band is the seeds' range instead (a 2-seed t-interval spans the whole panel). Accuracy panels
carry the raw-pixel kNN / linear baselines as dashed lines: an SSL number below them means the
encoder is worse than no encoder.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

matplotlib.use("Agg")  # files only; never a display (workers, CI)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from cjepa.sweep.stats import mean_ci  # noqa: E402
from dashboards.arms import default  # noqa: E402
from dashboards.load import StudyData  # noqa: E402
from dashboards.table import label  # noqa: E402

ACCURACY = {"knn_target", "linear_target", "knn_context", "linear_context"}
RAW = {"knn": "raw_knn_acc", "linear": "raw_linear_acc"}
#: metric -> (panel title, y label with unit)
CONVERGENCE: dict[str, tuple[str, str]] = {
    "knn_target": ("kNN accuracy, target encoder", "test accuracy (%)"),
    "linear_target": ("Linear probe, target encoder", "test accuracy (%)"),
    "knn_context": ("kNN accuracy, context encoder", "test accuracy (%)"),
    "linear_context": ("Linear probe, context encoder", "test accuracy (%)"),
    "loss_jepa": ("JEPA loss", "smooth-L1 / L2 loss (per element)"),
    "vicreg_inv": ("VICReg invariance (unweighted)", "mean squared difference"),
    "vicreg_var": ("VICReg variance (unweighted)", "hinge on per-feature std"),
    "vicreg_cov": ("VICReg covariance (unweighted)", "sum of squared off-diag. cov. / D"),
    "sigreg": ("SIGReg statistic (unweighted)", "Epps-Pulley, mean over directions"),
}
COLLAPSE: dict[str, tuple[str, str]] = {
    "target_std_mean_normalized": ("Collapse: normalised std of target features",
                                   "std × √D (1 = isotropic, 0 = collapsed)"),
    "target_eff_rank": ("Collapse: effective rank (RankMe) of target features", "effective rank (1 = collapsed)"),
}
DPI = 110


def _scale(metric: str) -> float:
    return 100.0 if metric in ACCURACY else 1.0


def _bounds(metric: str) -> tuple[float, float]:
    """Where a band may be drawn: accuracy stays in [0, 100] %, RankMe >= 1, every other figure >= 0
    (a t-interval over few seeds leaves these ranges easily)."""
    if metric in ACCURACY:
        return 0.0, 100.0
    return (1.0 if metric.endswith("eff_rank") else 0.0), math.inf


#: below this many seeds the band is the seeds' range: with 2 seeds the t-interval is ±12.7 x the
#: half-difference and fills the panel without telling arms apart.
MIN_SEEDS_FOR_CI = 3


def band_name(seeds: int) -> str:
    return "band = 95 % t-interval" if seeds >= MIN_SEEDS_FOR_CI else "band = min-max over seeds"


def arm_curve(data: StudyData, arm: str, metric: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs, mean, band low, band high over the arm's seeds (epochs with no value are skipped).

    The band is the Student-t 95 % interval with >= MIN_SEEDS_FOR_CI seeds, else the seeds' range."""
    sub = data.df[data.df["arm"] == arm]
    xs, mean, low, high = [], [], [], []
    for epoch, group in sub.groupby("epoch"):
        values = group[metric].dropna().tolist()
        iv = mean_ci(values)
        if iv.n:
            xs.append(int(epoch))
            mean.append(iv.mean)
            ci = iv.n >= MIN_SEEDS_FOR_CI
            low.append(iv.low if ci else min(values))
            high.append(iv.high if ci else max(values))
    return xs, mean, low, high


def _panel(ax: Any, data: StudyData, metric: str, title: str, ylabel: str) -> None:
    s = _scale(metric)
    drawn = 0
    for i, arm in enumerate(data.arms):
        xs, mean, low, high = arm_curve(data, arm, metric)
        if not xs:
            continue
        color = f"C{i % 10}"  # earlier arms thicker, so an arm hidden under an identical one still shows
        ax.plot(xs, [v * s for v in mean], marker="osD^v<>p"[i % 8], markersize=4, color=color,
                linewidth=max(1.2, 3.0 - 0.6 * i), label=label(data, arm))
        lo, hi = _bounds(metric)
        ax.fill_between(xs, [max(v * s, lo) for v in low], [min(v * s, hi) for v in high], color=color,
                        alpha=0.12, linewidth=0)
        drawn += 1
    kind = metric.split("_", 1)[0]
    if metric in ACCURACY and kind in RAW and data.has(RAW[kind]):
        raw = float(data.df[RAW[kind]].dropna().iloc[-1]) * 100
        ax.axhline(raw, color="0.3", linestyle="--", linewidth=1.2)
        ax.annotate(f"raw pixels, {kind}: {raw:.1f} %", xy=(0.99, raw), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=8, color="0.3")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel, fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if not drawn:
        ax.text(0.5, 0.5, "not recorded in this study", ha="center", va="center", transform=ax.transAxes)


def _grid_figure(data: StudyData, panels: dict[str, tuple[str, str]], path: Path, title: str, cols: int) -> Path:
    """Panels in a grid and one legend for the whole figure below them (per-panel legends hid the curves)."""
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.9 * rows + 0.9), squeeze=False)
    try:
        for ax, (metric, (name, ylabel)) in zip(axes.flat, panels.items()):
            _panel(ax, data, metric, name, ylabel)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        handles: dict[str, Any] = {}
        for ax in axes.flat:  # every arm once, in study order, even if its first panel lacks it
            for handle, name in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(name, handle)
        order = [label(data, a) for a in data.arms if label(data, a) in handles]
        seeds = len(data.seeds)
        fig.suptitle(f"{title} — study {data.name}: mean over {seeds} seed{'s' * (seeds != 1)}, "
                     f"{band_name(seeds)}", fontsize=11)
        fig.tight_layout(rect=(0, 0.9 / (3.9 * rows + 0.9), 1, 1))
        if order:
            fig.legend([handles[n] for n in order], order, loc="lower center", ncol=min(4, len(order)),
                       fontsize=9, frameon=False)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


def convergence_plot(data: StudyData, path: Path) -> Path:
    """The panels the study logged: accuracy of the encoders it evaluated (``eval.encoders`` may
    be the target alone), the JEPA loss and each regulariser term (a SIGReg study has no VICReg
    terms, an I-JEPA-only one neither)."""
    panels = {m: v for m, v in CONVERGENCE.items() if data.has(m)}
    return _grid_figure(data, panels, path, "Convergence per arm", cols=4)


def collapse_plot(data: StudyData, path: Path) -> Path:
    return _grid_figure(data, COLLAPSE, path, "Collapse telemetry per arm", cols=2)


def numeric_factor(data: StudyData) -> str | None:
    """The factor column to put on a coefficient plot: numeric, several levels (beta_vicreg / beta_sim first)."""
    cols = [c for c in data.factors if pd.api.types.is_numeric_dtype(data.df[c])
            and not pd.api.types.is_bool_dtype(data.df[c]) and data.df[c].nunique() > 1]
    cols.sort(key=lambda c: (not c.endswith(("beta_vicreg", "beta_sim")), c))
    return cols[0] if cols else None


def config_default(key: str) -> float | None:
    """The dotted line of the coefficient plot: ``cjepa.config``'s default of the factor (the paper's
    recipe), where it is a positive number a log axis can show."""
    value = default(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def _coefficient_points(final: Any, factor: str, metrics: Sequence[str], zero_ax: Any, log_ax: Any,
                        positive: list[float]) -> None:
    """Each metric's mean ± 95 % CI per level, dodged side by side so equal values stay visible."""
    names = {"linear_target": "linear probe (target enc.)", "knn_target": "kNN (target enc.)"}
    for i, metric in enumerate(metrics):
        s, (lo, hi) = _scale(metric), _bounds(metric)  # CIs are clipped to the metric's range
        dodge = (i - (len(metrics) - 1) / 2) * 0.12
        for ax, xs in ((zero_ax, [0.0]), (log_ax, positive)):
            if ax is None:
                continue
            ivs = [mean_ci(final.loc[final[factor] == x, metric].dropna().tolist()) for x in xs]
            ok = [(x, iv) for x, iv in zip(xs, ivs) if iv.n]
            if not ok:
                continue
            px = [x + 3 * dodge if ax is zero_ax else x * 10 ** dodge for x, _ in ok]
            ax.errorbar(px, [iv.mean * s for _, iv in ok],
                        yerr=[[iv.mean * s - max(iv.low * s, lo) for _, iv in ok],
                              [min(iv.high * s, hi) - iv.mean * s for _, iv in ok]],
                        marker="os^D"[i % 4], capsize=4, color=f"C{i}",
                        label=names.get(metric, metric) if ax is (log_ax or zero_ax) else None)


def coefficient_plot(data: StudyData, factor: str, metrics: Sequence[str], path: Path) -> Path:
    """Final metric vs the factor's level: log x axis, with level 0 on its own narrow axis at the left
    (a log axis cannot show 0, and 0 is the most important level: the arm without the term)."""
    final = data.final()
    levels = sorted(float(v) for v in final[factor].dropna().unique())
    has_zero, positive = 0.0 in levels, [v for v in levels if v > 0]
    widths = ([1] if has_zero else []) + ([5] if positive else [])
    fig, axes = plt.subplots(1, len(widths), figsize=(8, 4.6), sharey=True, squeeze=False,
                             gridspec_kw={"width_ratios": widths, "wspace": 0.06})
    axes = list(axes[0])
    zero_ax = axes[0] if has_zero else None
    log_ax = axes[-1] if positive else None
    try:
        _coefficient_points(final, factor, metrics, zero_ax, log_ax, positive)
        for kind, raw_key in RAW.items():
            idx = next((i for i, m in enumerate(metrics) if m.startswith(kind)), None)
            if data.has(raw_key) and idx is not None:
                raw = float(data.df[raw_key].dropna().iloc[-1]) * 100
                for ax in axes:
                    ax.axhline(raw, color=f"C{idx}", linestyle="--", linewidth=1,
                               label=f"raw pixels, {kind} ({raw:.1f} %)" if ax is axes[-1] else None)
        key = factor.removeprefix("factor.")
        if zero_ax is not None:
            zero_ax.set_xticks([0.0])
            zero_ax.set_xlim(-1, 1)
            zero_ax.set_xlabel("0 (off)")
        if log_ax is not None:
            log_ax.set_xscale("log")
            default = config_default(key)
            span = positive + ([default] if default else [])
            log_ax.set_xlim(min(span) / 3, max(span) * 3)
            log_ax.set_xlabel(f"{key} (log scale)")
            if default:
                log_ax.axvline(default, color="0.6", linestyle=":", label=f"paper default {default:g}")
        axes[0].set_ylabel("final-epoch test accuracy (%)\n(CI clipped to 0-100)")
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[-1].legend(fontsize=8)
        fig.suptitle(f"Final accuracy vs {key} — study {data.name} (mean ± 95 % CI over seeds)", fontsize=11)
        fig.subplots_adjust(left=0.1, right=0.95, bottom=0.14, top=0.88)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path


RANDOM_INIT = {"knn": "rand_knn_acc", "linear": "rand_linear_acc"}
Curve = tuple[list[float], list[float], list[float], list[float]]


def cpu_minutes_curve(data: StudyData, arm: str, metric: str) -> Curve:
    """Mean training CPU-minutes, then mean accuracy and its band, per epoch (as :func:`arm_curve`)."""
    epochs, mean, low, high = arm_curve(data, arm, metric)
    minutes = data.df[data.df["arm"] == arm].groupby("epoch")["train_cpu_min"].mean()
    keep = [i for i, e in enumerate(epochs) if e in minutes.index and not math.isnan(minutes[e])]
    return ([float(minutes[epochs[i]]) for i in keep], [mean[i] for i in keep], [low[i] for i in keep],
            [high[i] for i in keep])


def _budget_panel(ax: Any, data: StudyData, metric: str) -> None:
    for i, arm in enumerate(data.arms):
        xs, mean, low, high = cpu_minutes_curve(data, arm, metric)
        if xs:
            color = f"C{i % 10}"
            ax.plot(xs, [v * 100 for v in mean], marker="osD^v<>p"[i % 8], markersize=4, color=color,
                    label=label(data, arm))
            ax.fill_between(xs, [v * 100 for v in low], [v * 100 for v in high], color=color, alpha=0.12, linewidth=0)
    kind = metric.split("_", 1)[0]
    for name, col, style in (("raw pixels", RAW.get(kind), "--"), ("random init", RANDOM_INIT.get(kind), ":")):
        if col and data.has(col):
            y = float(data.df[col].dropna().mean()) * 100
            ax.axhline(y, color="0.3", linestyle=style, linewidth=1.2)
            ax.annotate(f"{name}: {y:.1f} %", xy=(0.99, y), xycoords=("axes fraction", "data"), ha="right",
                        va="bottom", fontsize=8, color="0.3")
    ax.set_title(CONVERGENCE.get(metric, (metric, ""))[0], fontsize=10)
    ax.set_xlabel("training CPU-minutes (threads x s / 60)")
    ax.set_ylabel("test accuracy (%)", fontsize=9)
    ax.grid(alpha=0.3)


def cpu_minutes_plot(data: StudyData, path: Path, metrics: Sequence[str] = ("knn_target", "linear_target")
                     ) -> Path | None:
    """Accuracy against training CPU-minutes (threads x seconds of training, evaluation excluded),
    one line per arm, raw pixels and the random-initialised encoder as horizontal lines: the
    budget view of convergence (what a laptop's 30 CPU-minutes buy, issue 10). None without
    ``train_cpu_min`` in the table."""
    if not data.has("train_cpu_min"):
        return None
    legend_rows = math.ceil(len(data.arms) / 4)
    height = 4.4 + 0.28 * legend_rows
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.6 * len(metrics), height), squeeze=False)
    try:
        for ax, metric in zip(axes.flat, metrics):
            _budget_panel(ax, data, metric)
        seeds = len(data.seeds)
        fig.suptitle(f"Accuracy per CPU-minute — study {data.name}: mean over {seeds} seed{'s' * (seeds != 1)}, "
                     f"{band_name(seeds)}", fontsize=11)
        handles, names = axes.flat[0].get_legend_handles_labels()
        fig.tight_layout(rect=(0, (0.28 * legend_rows + 0.2) / height, 1, 1))  # room for the legend below
        if names:
            fig.legend(handles, names, loc="lower center", ncol=min(4, len(names)), fontsize=9, frameon=False)
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)
    return path
