"""The paper's claims, checked against a study: which reproduce at its scale, which do not.

Mo & Tong 2024 (method.md §4) make two kinds of claim a study can test. Table 3 orders four arms
(ViT-B/16, ImageNet-1K, 100 epochs, linear probe): I-JEPA 63.7 < EMA + invariance 67.6 <
variance/covariance only 68.3 < C-JEPA 69.5; and Figure 1 says C-JEPA's curve rises faster. Each
ordering becomes a *paired* difference over the study's seeds (cjepa.sweep.stats) with a verdict
that only the interval decides: in the paper's direction with the 95 % interval excluding 0 ->
"reproduces"; the interval containing 0 -> "not resolved"; the other direction, excluding 0 ->
"reversed". Nothing here is judged by hand, so a rerun of the study rewrites the verdicts.

Table 3's arms are found by what they are, not by their labels: the study's baseline is I-JEPA;
an arm is one of the paper's arms when its parts (EMA, var/cov, invariance; dashboards.arms) are
that arm's and its config differs from the baseline's only in the switches and weight of those
terms. So the ablation is checked at the study's own recipe (reading, coefficients, schedule),
which need not be the paper's defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from cjepa.sweep.stats import Interval, mean_ci, paired_difference
from dashboards.arms import PAPER_PARTS, PAPER_TABLE3, parts_of, terms
from dashboards.load import StudyData

#: The keys an ablation arm may change relative to the baseline (the Table 3 switches).
TERM_KEYS = ("loss.beta_vicreg", "loss.invariance", "loss.variance", "loss.covariance")
#: (better arm, worse arm): every ordering Table 3 implies, the headline first.
ORDERINGS = (("C-JEPA (var/cov + inv)", "I-JEPA (EMA only)"), ("var/cov only", "I-JEPA (EMA only)"),
             ("EMA + invariance", "I-JEPA (EMA only)"), ("C-JEPA (var/cov + inv)", "var/cov only"),
             ("C-JEPA (var/cov + inv)", "EMA + invariance"), ("var/cov only", "EMA + invariance"))
#: Config columns that differ between trials without being part of an arm (seeds, paths, names).
IGNORED_KEYS = ("run.seed", "run.output_dir", "run.resume")


@dataclass
class Claim:
    text: str  # the paper's claim, with its number
    metric: str
    diff: Interval | None  # paired difference, better minus worse (fraction, not %)
    verdict: str


def verdict(diff: Interval | None) -> str:
    """``reproduces`` / ``not resolved`` / ``reversed`` from a paired interval of better minus worse
    (see the module doc)."""
    if diff is None or diff.n < 2 or math.isnan(diff.low):
        return "not measured (fewer than 2 paired seeds)"
    if diff.low > 0:
        return "reproduces"
    if diff.high < 0:
        return "reversed"
    return "not resolved"


def _differs_only_in_terms(cfg: dict, base: dict) -> bool:
    keys = (set(cfg) | set(base)) - set(TERM_KEYS) - set(IGNORED_KEYS)
    return all(cfg.get(k) == base.get(k) for k in keys)


def table3_arms(data: StudyData) -> dict[str, str]:
    """Paper arm name -> this study's arm, for the baseline and every arm that is one of Table 3's
    at the baseline's recipe (exactly one candidate per paper arm; an ambiguous one is left out)."""
    if data.baseline is None or data.arm_config(data.baseline) is None:
        return {}
    base = data.arm_config(data.baseline) or {}
    found: dict[str, list[str]] = {}
    for arm in data.arms:
        cfg = data.arm_config(arm)
        if cfg is None or not _differs_only_in_terms(cfg, base):
            continue
        parts = parts_of(cfg)
        name = None if terms(cfg)["sigreg"] else PAPER_PARTS.get((bool(parts["EMA"]), bool(parts["var/cov"]),
                                                                  bool(parts["inv"])))
        if name:
            found.setdefault(name, []).append(arm)
    return {name: arms[0] for name, arms in found.items() if len(arms) == 1}


def _by_seed(rows: pd.DataFrame, arm: str, metric: str) -> dict[int, float]:
    """seed -> value of ``metric`` for ``arm`` among ``rows`` (one row per seed)."""
    mine = rows[(rows["arm"] == arm) & rows[metric].notna()]
    return dict(zip(mine["seed"].astype(int), mine[metric].astype(float)))


def final_by_seed(data: StudyData, arm: str, metric: str) -> dict[int, float]:
    """Each trial's last epoch (a trial ASHA stopped early counts with the epoch it reached)."""
    return _by_seed(data.final(), arm, metric)


def reported(data: StudyData, metric: str) -> str:
    """The column a final-epoch verdict reads: the test split's (``test_<metric>``, scored once at each
    trial's end) where the study has one, else ``metric`` (a study without a validation split scored
    the test split every epoch under the plain name). The per-epoch curves read the validation split."""
    return f"test_{metric}" if data.has(f"test_{metric}") else metric


def ordering_claims(data: StudyData, metrics: tuple[str, ...] = ("linear_target", "knn_target")) -> list[Claim]:
    """One claim per Table 3 ordering and metric whose two arms are in the study, on the test split
    where the study has one (:func:`reported`): a grid selects nothing, so its verdicts are reported once."""
    arms = table3_arms(data)
    out = []
    for better, worse in ORDERINGS:
        if better not in arms or worse not in arms:
            continue
        for metric in (reported(data, m) for m in metrics):
            if not data.has(metric):
                continue
            diff = paired_difference(final_by_seed(data, arms[better], metric),
                                     final_by_seed(data, arms[worse], metric))
            text = (f"{better} > {worse} (paper: {PAPER_TABLE3[better]} vs {PAPER_TABLE3[worse]}, "
                    f"{PAPER_TABLE3[better] - PAPER_TABLE3[worse]:+.1f})")
            out.append(Claim(text, metric, diff, verdict(diff)))
    return out


@dataclass
class Reach:
    """When an arm first reaches a level: the epoch and the mean training CPU-minutes by then."""

    arm: str
    epoch: int | None  # None: never within the study's epochs
    cpu_min: float | None


def mean_curve(data: StudyData, arm: str, metric: str) -> dict[int, float]:
    rows = data.df[(data.df["arm"] == arm) & data.df[metric].notna()]
    return {int(e): float(v) for e, v in rows.groupby("epoch")[metric].mean().items()}


def reach(data: StudyData, arm: str, metric: str, level: float) -> Reach:
    curve = mean_curve(data, arm, metric)
    epoch = next((e for e in sorted(curve) if curve[e] >= level), None)
    cpu = None
    if epoch is not None and data.has("train_cpu_min"):
        rows = data.df[(data.df["arm"] == arm) & (data.df["epoch"] == epoch)]
        cpu = float(rows["train_cpu_min"].mean())
    return Reach(arm, epoch, cpu)


def at_epoch(data: StudyData, arm: str, metric: str, epoch: int) -> dict[int, float]:
    return _by_seed(data.df[data.df["epoch"] == epoch], arm, metric)


def convergence_claim(data: StudyData, metric: str = "linear_target") -> tuple[Claim, list[Reach]] | None:
    """Figure 1's claim, that C-JEPA's curve rises faster, as the paired difference from I-JEPA at
    the *first* evaluation (the verdict), plus for every arm the epoch and CPU-minutes at which it
    first reaches I-JEPA's final mean accuracy (the question "how much sooner"; one value per epoch
    is the study's resolution)."""
    arms = table3_arms(data)
    if "C-JEPA (var/cov + inv)" not in arms or data.baseline is None or not data.has(metric):
        return None
    base_curve = mean_curve(data, data.baseline, metric)
    if not base_curve:
        return None
    first, last = min(base_curve), max(base_curve)
    rows = [reach(data, arm, metric, base_curve[last]) for arm in data.arms]
    cjepa = arms["C-JEPA (var/cov + inv)"]
    diff = paired_difference(at_epoch(data, cjepa, metric, first), at_epoch(data, data.baseline, metric, first))
    c = next(r for r in rows if r.arm == cjepa)
    when = f"epoch {c.epoch}" if c.epoch is not None else "not within the study"
    text = (f"C-JEPA ahead of I-JEPA at the first evaluation (epoch {first}), a lead at one epoch: Figure 1's "
            f"\"rises faster\" is a rate this study does not measure; C-JEPA reaches I-JEPA's final {metric} "
            f"({base_curve[last] * 100:.1f} %, epoch {last}) at {when}")
    best = max(base_curve, key=lambda e: base_curve[e])
    if base_curve[best] > base_curve[last]:  # then "reaching I-JEPA's final" is easy: I-JEPA's own curve fell
        text += f" (I-JEPA's curve falls: its best, {base_curve[best] * 100:.1f} %, was at epoch {best})"
    return Claim(text, metric, diff, verdict(diff)), rows


def per_epoch(data: StudyData, metric: str) -> dict[str, list[tuple[Interval, Interval | None]]]:
    """arm -> per epoch (mean ± CI over seeds, paired difference from the baseline at that epoch)."""
    out: dict[str, list[tuple[Interval, Interval | None]]] = {}
    epochs = sorted(int(e) for e in data.df["epoch"].unique())
    for arm in data.arms:
        cells = []
        for epoch in epochs:
            values = at_epoch(data, arm, metric, epoch)
            diff = (None if arm == data.baseline or data.baseline is None
                    else paired_difference(values, at_epoch(data, data.baseline, metric, epoch)))
            cells.append((mean_ci(values.values()), diff))
        out[arm] = cells
    return out
