"""Per-epoch training curves of one run as a PNG (logged as an MLflow artifact at the end).

MLflow's UI draws one metric per chart; the questions a C-JEPA run raises need several on one
axis: did the JEPA loss fall while the VICReg terms held, does the kNN/linear accuracy beat the
raw-pixel baseline (drawn as a dashed line, since an SSL number means little without it), and did
the features collapse (normalised std towards 0, effective rank towards 1)?
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ENCODERS = ("target", "context", "pred")
PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Objective", "loss (log scale)", ("loss", "loss_jepa", "loss_vicreg")),
    ("VICReg terms (unweighted)", "value", ("vicreg_inv", "vicreg_var", "vicreg_cov")),
    ("Probe accuracy", "test accuracy", ()),  # knn_*/linear_* + raw baselines, filled below
    ("Collapse: normalised feature std", "std x sqrt(D) (1 = isotropic, 0 = collapsed)",
     tuple(f"{e}_std_mean_normalized" for e in ENCODERS)),
    ("Collapse: effective rank (RankMe)", "effective rank", tuple(f"{e}_eff_rank" for e in ENCODERS)),
    ("Schedules", "value (log scale)", ("lr", "weight_decay", "ema_momentum")),
)


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for rec in records:
        value = rec.get(key)
        if isinstance(value, (int, float)) and math.isfinite(value) and "epoch" in rec:
            xs.append(float(rec["epoch"]))
            ys.append(float(value))
    return xs, ys


def _last(records: Sequence[dict[str, Any]], key: str) -> float | None:
    ys = _series(records, key)[1]
    return ys[-1] if ys else None


def plot_curves(records: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Draw the per-epoch ``records`` (each with an ``epoch`` key, as in metrics.jsonl) to ``path``.

    Metrics a run does not have (I-JEPA has no VICReg terms, eval may be off) leave their panel
    saying so instead of failing: the plot is a summary, never a reason for a run to crash.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)  # no display on workers; keeps an interactive backend if set
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), squeeze=False)
    try:
        for ax, (name, ylabel, keys) in zip(axes.flat, PANELS):
            drawn = _draw_accuracy(ax, records) if name == "Probe accuracy" else _draw(ax, records, keys)
            if name in ("Objective", "Schedules") and drawn and all(
                    y > 0 for k in keys for y in _series(records, k)[1]):
                ax.set_yscale("log")  # terms (and lr vs momentum) differ by orders of magnitude
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
            if drawn:
                ax.legend(fontsize=8)
            else:
                ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
        fig.suptitle(title or "C-JEPA training curves")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)
    return path


def _draw(ax: Any, records: Sequence[dict[str, Any]], keys: Sequence[str]) -> int:
    drawn = 0
    for key in keys:
        xs, ys = _series(records, key)
        if xs:
            ax.plot(xs, ys, marker="o", markersize=3, label=key)
            drawn += 1
    return drawn


def _draw_accuracy(ax: Any, records: Sequence[dict[str, Any]]) -> int:
    drawn = 0
    for kind, color in (("knn", "C0"), ("linear", "C1")):
        for enc, style in zip(ENCODERS, ("-", "-.", ":")):
            xs, ys = _series(records, f"{kind}_{enc}")
            if xs:
                ax.plot(xs, ys, style, color=color, marker="o", markersize=3, label=f"{kind} ({enc})")
                drawn += 1
        raw = _last(records, f"raw_{kind}_acc")
        if raw is not None:
            ax.axhline(raw, color=color, linestyle="--", linewidth=1, label=f"{kind} raw pixels ({raw:.3f})")
            drawn += 1
    return drawn
