"""The one timing loop and the one spread statistic of the benchmarks.

Why interleaved rounds: on a shared machine the speed drifts (other processes, thermal state).
Timing every variant in each round, in an order rotated by one every round, and dividing within
the round cancels that drift, which two separate runs could not.

The spread, everywhere: **the median with the min-max range over rounds** (``Spread``). Why this
one: the benchmarks run 3 to 20 rounds, and a quartile of 3-7 values is an interpolation whose
value depends on the convention (the "exclusive" method even lands outside the data for 2 rounds);
the range is defined for any number of rounds, needs no convention, and on a shared VM it shows
plainly when a neighbour's job hit a round. Robustness comes from the median and, for the goals,
from the 95 % bootstrap CI of the median per-round ratio (``ratio_stats``), not from the spread.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


def sync(device: Any = None) -> None:
    """Wait for the device's queued work (a no-op on the CPU): a clock read after it is honest."""
    if device is not None and getattr(device, "type", str(device)).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def interleaved(variants: Mapping[str, Callable[[int], float]], rounds: int,
                log: Callable[[str], None] | None = print, unit: str = "") -> dict[str, list[float]]:
    """Each round calls every variant once, in an order rotated by one every round; ``variant(r)``
    gets the round index and returns its figure (images/s, seconds, ...). The cyclic garbage
    collector runs before each call and not inside it. Returns each variant's figure per round."""
    names = list(variants)
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            gc.collect()
            gc.disable()
            try:
                out[name].append(float(variants[name](r)))
            finally:
                gc.enable()
        if log is not None:
            log(f"round {r + 1}/{rounds}: " + ", ".join(f"{n} {out[n][-1]:.4g}" for n in names) + unit)
    return out


def seconds(fn: Callable[[], Any], device: Any = None) -> float:
    """Wall seconds of one call of ``fn``, the device's queued work included."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def median_ms(fn: Callable[[], Any], reps: int, warmup: int = 3, device: Any = None) -> float:
    """Median milliseconds of ``reps`` calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return 1000 * statistics.median(seconds(fn, device) for _ in range(reps))


def rate(fn: Callable[[], Any], items_per_call: int, calls: int, device: Any = None, warmup: int = 1) -> float:
    """Items per second of ``calls`` back-to-back calls of ``fn`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    return items_per_call * calls / seconds(lambda: [fn() for _ in range(calls)], device)


@dataclass(frozen=True)
class Spread:
    """The median of per-round figures and their range (``lo`` = min, ``hi`` = max)."""

    median: float
    lo: float
    hi: float

    def fmt(self, digits: int = 0, scale: float = 1.0) -> str:
        """``median [lo-hi]``, e.g. ``395 [57-463]``."""
        m, lo, hi = (f"{scale * x:.{digits}f}" for x in (self.median, self.lo, self.hi))
        return f"{m} [{lo}-{hi}]"


def spread(xs: Sequence[float]) -> Spread:
    """The benchmarks' one spread statistic: median, min, max."""
    if not xs:
        raise ValueError("spread of no values")
    return Spread(statistics.median(xs), min(xs), max(xs))


def bootstrap_ci(xs: Sequence[float], resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median: how far the median itself may be off.

    Why next to the spread: the range says how much single rounds scatter on a shared machine;
    the goals are about the *typical* ratio, and that is known much better than one round.
    """
    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    return meds[int(0.025 * resamples)], meds[int(0.975 * resamples) - 1]


def ratio_stats(xs: Sequence[float], ref: Sequence[float]) -> dict[str, Any]:
    """Per-round ratios ``xs[r] / ref[r]``: their spread and the 95 % CI of their median."""
    ratios = [a / b for a, b in zip(xs, ref, strict=True)]
    return {**asdict(spread(ratios)), "ci95": list(bootstrap_ci(ratios)), "rounds": ratios}


def summarise(values: Mapping[str, Sequence[float]], refs: Mapping[str, str] | None = None
              ) -> dict[str, dict[str, Any]]:
    """Per variant: its spread and rounds; for each ``key -> reference`` in ``refs`` whose reference
    ran (and is another variant), ``key``: the per-round ratios to it (``ratio_stats``)."""
    out: dict[str, dict[str, Any]] = {}
    for name, xs in values.items():
        row: dict[str, Any] = {**asdict(spread(xs)), "rounds": list(xs)}
        for key, ref in (refs or {}).items():
            if ref in values and ref != name:
                row[key] = ratio_stats(xs, values[ref])
        out[name] = row
    return out


def cell(stats: Mapping[str, Any] | None, digits: int = 0) -> str:
    """A table cell ``median [lo-hi]`` of a ``summarise`` row or a ratio entry ("-" when absent)."""
    if stats is None:
        return "-"
    return Spread(stats["median"], stats["lo"], stats["hi"]).fmt(digits)
