"""Ablation statistics over seeds: mean with a 95 % t-interval, and paired differences.

The paper reports single runs; a study runs every arm with the same seeds, so the difference
from the baseline can be taken *per seed* (paired), which removes the seed-to-seed noise the
arms share (same initial weights, same batches, same masks).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cjepa.metrics import TEST_PREFIX


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    n: int

    def fmt(self, scale: float = 100.0, digits: int = 1) -> str:
        if self.n == 0 or math.isnan(self.mean):
            return "n/a"
        if self.n == 1:
            return f"{self.mean * scale:.{digits}f}"
        half = (self.high - self.low) / 2 * scale
        return f"{self.mean * scale:.{digits}f} ± {half:.{digits}f}"


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> Interval:
    """Mean and two-sided Student-t interval (NaN-free input; n=1 gives a zero-width interval)."""
    from scipy import stats

    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = sum(xs) / n
    if n == 1:
        return Interval(mean, mean, mean, 1)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def paired_difference(arm: dict[int, float], baseline: dict[int, float], confidence: float = 0.95) -> Interval:
    """Mean over the shared seeds of ``arm[seed] - baseline[seed]`` with its t-interval."""
    seeds = sorted(set(arm) & set(baseline))
    return mean_ci([arm[s] - baseline[s] for s in seeds], confidence)


def by_arm_and_seed(final: Sequence[dict]) -> dict[str, dict[int, dict]]:
    """arm -> seed -> its final row (the pairing every interval here is taken over)."""
    arms: dict[str, dict[int, dict]] = {}
    for row in final:
        arms.setdefault(row["arm"], {})[int(row["seed"])] = row
    return arms


def summarize(final: Sequence[dict], metrics: Sequence[str], baseline: str | None) -> list[dict]:
    """Per arm: ``{arm, n, <metric>: Interval, <metric>_diff: Interval|None}`` from final rows.

    ``final`` holds one row per trial with keys ``arm``, ``seed`` and the metrics.
    """
    arms = by_arm_and_seed(final)
    out = []
    for name, by_seed in arms.items():
        entry: dict = {"arm": name, "n": len(by_seed)}
        for m in metrics:
            values = {s: r[m] for s, r in by_seed.items() if r.get(m) is not None}
            entry[m] = mean_ci(values.values())
            if baseline is not None and baseline in arms and name != baseline:
                base = {s: r[m] for s, r in arms[baseline].items() if r.get(m) is not None}
                entry[f"{m}_diff"] = paired_difference(values, base)
            else:
                entry[f"{m}_diff"] = None
        out.append(entry)
    return out


#: Rows read against every arm: (row name, metric prefix the engine reports them under).
#: ``raw_*``: kNN / linear probe on the pixels themselves (no encoder); ``rand_*``: the encoder
#: exactly as the run initialised it (same seed), i.e. what training added nothing to.
REFERENCES = (("raw pixels", "raw"), ("random-init encoder", "rand"))


def reference_key(prefix: str, metric: str) -> str:
    """``knn_target`` -> ``rand_knn_acc``; ``linear_context_grid2`` -> ``rand_linear_acc_grid2``;
    the test split's ``test_knn_target`` -> ``test_rand_knn_acc``.

    The references have no target/context split: at initialisation both encoders are the same
    network, and raw pixels have none, so one number serves both columns."""
    if metric.startswith(TEST_PREFIX):
        return TEST_PREFIX + reference_key(prefix, metric.removeprefix(TEST_PREFIX))
    kind, _, rest = metric.partition("_")
    suffix = rest.partition("_")[2]
    return f"{prefix}_{kind}_acc" + (f"_{suffix}" if suffix else "")


def reference_rows(final: Sequence[dict], metrics: Sequence[str]) -> list[dict]:
    """The :data:`REFERENCES` as summary entries (``reference: True``, no differences).

    One value per seed (every arm of a seed evaluates the same initial encoder); a value that is
    the same for every seed (raw pixels: no seed involved) is one number, not an interval."""
    out = []
    for name, prefix in REFERENCES:
        entry: dict = {"arm": name, "n": 0, "reference": True}
        for m in metrics:
            per_seed: dict[int, float] = {}
            for row in final:
                value = row.get(reference_key(prefix, m))
                if value is not None and not math.isnan(float(value)):
                    per_seed.setdefault(int(row["seed"]), float(value))
            values = list(per_seed.values())
            values = values[:1] if len(set(values)) == 1 else values
            entry[m], entry[f"{m}_diff"] = mean_ci(values), None
            entry["n"] = max(entry["n"], len(values))
        if entry["n"]:
            out.append(entry)
    return out


def format_summary(summary: list[dict], metrics: Sequence[str], baseline: str | None) -> str:
    """A markdown table: per arm, mean ± 95 % CI (in %) and the paired difference from the baseline;
    reference rows (:func:`reference_rows`) have no difference."""
    head = ["arm", "seeds"] + [f"{m} (%)" for m in metrics]
    if baseline:
        head += [f"Δ {m} vs {baseline}" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in summary:
        cells = [e["arm"], str(e["n"])] + [e[m].fmt() for m in metrics]
        if baseline and e.get("reference"):
            cells += ["" for _ in metrics]
        elif baseline:
            cells += ["(baseline)" if e["arm"] == baseline else
                      (e[f"{m}_diff"].fmt() if e[f"{m}_diff"] is not None else "n/a") for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readout_metrics(final: Sequence[dict], encoder: str = "target", prefix: str = "") -> list[str]:
    """Every probe x pooling the rows report for ``encoder`` (``knn_target``, ``knn_target_grid2``,
    ...), mean first, kNN before linear; ``prefix="test_"`` for the test split's."""
    head = f"{prefix}knn_{encoder}", f"{prefix}linear_{encoder}"
    found = {k for row in final for k in row if k.startswith(head) and row.get(k) is not None}
    found = {k for k in found if k in head or k.removeprefix(prefix).split("_")[-1].startswith("grid")}

    def order(name: str) -> tuple[int, int, str]:
        tail = name.removeprefix(prefix).split("_")[-1]
        cells = int(tail[4:]) if tail.startswith("grid") and tail[4:].isdigit() else 0
        return (0 if "knn" in name else 1, cells, name)

    return sorted(found, key=order)


def gains_over_random_init(final: Sequence[dict], metrics: Sequence[str]) -> list[dict]:
    """Per arm and read-out: the seed-paired gain over the same network at its random initialisation
    (``rand_*``, same seed, same read-out): whether training taught the encoder anything that read-out
    can see. ``{arm, n, <metric>: Interval}``."""
    arms = by_arm_and_seed(final)
    out = []
    for name, by_seed in arms.items():
        entry: dict = {"arm": name, "n": len(by_seed)}
        for m in metrics:
            ref = reference_key("rand", m)
            entry[m] = mean_ci(r[m] - r[ref] for r in by_seed.values()
                               if r.get(m) is not None and r.get(ref) is not None)
        out.append(entry)
    return out


def format_gains(gains: list[dict], metrics: Sequence[str]) -> str:
    """Markdown: arms x read-outs, gain in points (mean ± 95 % CI over paired seeds)."""
    head = ["arm", "seeds"] + [f"{m} − random init (pp)" for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in gains:
        lines.append("| " + " | ".join([e["arm"], str(e["n"])] + [e[m].fmt() for m in metrics]) + " |")
    return "\n".join(lines)
