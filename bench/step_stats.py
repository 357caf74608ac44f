"""Timing rounds and their statistics for bench/step_throughput.py.

Why interleaved rounds and per-round ratios: on a shared machine the speed drifts (other
processes, thermal state); timing every variant in each round, in a rotated order, and dividing
within the round cancels that drift, which two separate runs could not.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from step_data import Batch, Variant

# Ratio columns: key -> reference variant (the row's images/s over the reference's, per round).
REFERENCES = {"vs_ijepa": "ijepa", "vs_official": "official_ijepa", "vs_official_bf16": "official_ijepa_bf16",
              "vs_lightly": "lightly_timm", "vs_lightly_tv": "lightly_tv"}
OFFICIAL_GOAL = 1.3  # our I-JEPA step >= 1.3x the official code (issue 14)
VICREG_GOAL_PCT = 3.0  # C-JEPA (pred_blocks) at most 3 % slower than our I-JEPA


def run_rounds(variants: list[Variant], batches: list[Batch], steps: int, warmup: int, repeats: int,
               batch_size: int, log: Callable[[str], None]) -> dict[str, list[float]]:
    """images/s per variant per round; rounds rotate the order of the variants."""
    for v in variants:  # warm-up: allocator, autograd graph caches, AdamW state creation
        for i in range(warmup):
            v.step(batches[i % len(batches)])
    ips: dict[str, list[float]] = {v.name: [] for v in variants}
    n = len(variants)
    for r in range(repeats):
        order = [variants[(r + k) % n] for k in range(n)]
        line = []
        for v in order:
            gc.collect()
            gc.disable()  # no collector pauses inside the timed block
            t0 = time.perf_counter()
            for i in range(steps):
                v.step(batches[(r * steps + i) % len(batches)])
            elapsed = time.perf_counter() - t0
            gc.enable()
            ips[v.name].append(steps * batch_size / elapsed)
            line.append(f"{v.name} {ips[v.name][-1]:.0f}")
        log(f"round {r + 1}/{repeats}: " + ", ".join(line) + " img/s")
    return ips


def _quartiles(xs: Sequence[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def bootstrap_ci(xs: Sequence[float], resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median: how far the median itself may be off.

    Why next to the IQR: the IQR says how much single rounds scatter on a shared machine; the
    goals are about the *typical* ratio, and that is known much better than one round.
    """
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    return meds[int(0.025 * resamples)], meds[int(0.975 * resamples) - 1]


def _ratio_stats(xs: Sequence[float], ref: Sequence[float]) -> dict[str, Any]:
    ratios = [a / b for a, b in zip(xs, ref, strict=True)]
    r1, r3 = _quartiles(ratios)
    lo, hi = bootstrap_ci(ratios)
    return {"median": statistics.median(ratios), "q1": r1, "q3": r3, "min": min(ratios), "max": max(ratios),
            "ci95": [lo, hi]}


def summarise(ips: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Median, IQR, min-max of images/s; median, IQR, min-max and 95 % CI of per-round ratios."""
    out: dict[str, dict[str, Any]] = {}
    for name, xs in ips.items():
        q1, q3 = _quartiles(xs)
        row: dict[str, Any] = {"median": statistics.median(xs), "q1": q1, "q3": q3, "min": min(xs), "max": max(xs),
                               "rounds": xs}
        for key, ref in REFERENCES.items():
            if ref in ips and ref != name:
                row[key] = _ratio_stats(xs, ips[ref])
        out[name] = row
    return out


def _ratio(cell: dict[str, float] | None) -> str:
    if cell is None:
        return "-"
    return f"{cell['median']:.3f} [{cell['q1']:.3f}, {cell['q3']:.3f}]"


def table(summary: dict[str, dict[str, Any]], variants: list[Variant]) -> str:
    """Markdown table: one row per variant, a ratio column per reference that ran."""
    refs = [(key, ref) for key, ref in REFERENCES.items() if ref in summary]
    head = ("| variant | impl | trainable params | img/s median | IQR | min-max | "
            + " | ".join(f"ratio vs {ref} [IQR]" for _, ref in refs) + " |")
    rows = [head, "|" + "---|" * (6 + len(refs))]
    for v in variants:
        s = summary[v.name]
        cells = " | ".join(_ratio(s.get(key)) for key, _ in refs)
        rows.append(f"| {v.name} | {v.impl} | {v.trainable_params:,} | {s['median']:.0f} | "
                    f"{s['q1']:.0f}-{s['q3']:.0f} | {s['min']:.0f}-{s['max']:.0f} | {cells} |")
    return "\n".join(rows)


def _at_least(r: dict[str, Any], goal: float) -> str:
    lo, hi = r["ci95"]
    return ("met" if lo >= goal else "MISSED" if hi < goal
            else f"not resolved (median {'above' if r['median'] >= goal else 'below'} {goal:g})")


def verdict(summary: dict[str, dict[str, Any]]) -> list[str]:
    """The goals of the benchmark, read from the per-round ratios and their 95 % CI.

    A goal is "met" when the whole CI satisfies it, "MISSED" when the whole CI violates it, and
    "not resolved" when the CI straddles the threshold (then the median's side is stated).
    """
    lines = []
    c = summary.get("cjepa", {}).get("vs_ijepa")
    if c is not None:
        over = 100 * (1 / c["median"] - 1)
        lo, hi = (100 * (1 / r - 1) for r in reversed(c["ci95"]))
        iq_lo, iq_hi = 100 * (1 / c["q3"] - 1), 100 * (1 / c["q1"] - 1)
        ok = ("met" if hi <= VICREG_GOAL_PCT else "MISSED" if lo > VICREG_GOAL_PCT
              else f"not resolved (median {'within' if over <= VICREG_GOAL_PCT else 'above'} the goal)")
        lines.append(f"VICReg (pred_blocks) step-time overhead vs I-JEPA: {over:+.1f} % (95 % CI {lo:+.1f} .. "
                     f"{hi:+.1f} %, IQR of rounds {iq_lo:+.1f} .. {iq_hi:+.1f} %); goal <= {VICREG_GOAL_PCT:g} %: {ok}")
    for row, key, goal in (("ijepa", "vs_official", OFFICIAL_GOAL), ("ijepa_bf16", "vs_official_bf16", OFFICIAL_GOAL),
                           ("ijepa", "vs_lightly", 1.0), ("ijepa", "vs_lightly_tv", 1.0)):
        r = summary.get(row, {}).get(key)
        if r is not None:
            lo, hi = r["ci95"]
            lines.append(f"our {row} / {REFERENCES[key]} (equal precision): {r['median']:.3f}x "
                         f"(95 % CI {lo:.3f} .. {hi:.3f}, "
                         f"IQR of rounds {r['q1']:.3f} .. {r['q3']:.3f}); goal >= {goal:g}: {_at_least(r, goal)}")
    return lines
