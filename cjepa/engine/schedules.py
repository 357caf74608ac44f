"""Learning-rate, weight-decay and EMA-momentum schedules as pure functions of the global step.

Because nothing here keeps state, a resumed run recomputes exactly the values an uninterrupted
run would have used (dinov2 keeps step-indexed arrays for the same reason). Semantics follow the
official I-JEPA schedulers (linear warm-up then cosine lr; cosine-shaped weight decay; linear
momentum reaching ``ema.end`` at the last step). The official ``train.py`` falls back to
``ipe_scale=1.25`` (a schedule stretched past the run, so momentum would never reach its end),
but every published I-JEPA config sets ``ipe_scale: 1.0``, which is what this matches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cjepa.config import Config


def warmup_cosine(step: int, total: int, warmup: int, start: float, peak: float, final: float) -> float:
    """Linear ``start -> peak`` over ``warmup`` steps, then cosine ``peak -> final`` at ``total``."""
    if step < warmup:
        return start + (peak - start) * step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return final + (peak - final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def cosine(step: int, total: int, start: float, end: float) -> float:
    """Half-cosine from ``start`` (step 0) to ``end`` (step ``total``)."""
    progress = min(1.0, step / max(1, total))
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear(step: int, total: int, start: float, end: float) -> float:
    progress = min(1.0, step / max(1, total))
    return start + (end - start) * progress


def momentum_at(step: int, total: int, start: float, end: float, shape: str, enabled: bool = True) -> float:
    """EMA momentum; 0 when EMA is switched off (the target copies the online encoder)."""
    if not enabled:
        return 0.0
    if shape == "constant":
        return start
    if shape == "cosine":
        return cosine(step, total, start, end)
    return linear(step, total, start, end)


@dataclass(frozen=True)
class Schedules:
    """All per-step values of one run, derived from the config and the epoch length."""

    cfg: Config
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.cfg.run.epochs * self.steps_per_epoch

    @property
    def warmup_steps(self) -> int:
        return int(round(self.cfg.optim.warmup_epochs * self.steps_per_epoch))

    def lr(self, step: int) -> float:
        o = self.cfg.optim
        return warmup_cosine(step, self.total_steps, self.warmup_steps, o.start_lr, o.lr, o.final_lr)

    def weight_decay(self, step: int) -> float:
        o = self.cfg.optim
        return cosine(step, self.total_steps, o.weight_decay, o.final_weight_decay)

    def momentum(self, step: int) -> float:
        e = self.cfg.ema
        return momentum_at(step, self.total_steps, e.start, e.end, e.schedule, e.enabled)
