"""Shared by the golden test and its recorder: the configurations, how one is run, what is kept.

The driver touches only the engine's public surface, so that it survives a refactor of the
model, the step and the loop: a :class:`cjepa.config.Config` built from dotted overrides,
:func:`cjepa.engine.train` with ``run.max_steps``, a :class:`cjepa.engine.Reporter` whose
``on_step`` is called every step (``run.log_every=1``), and the checkpoint that ``train`` writes
when ``run.max_steps`` stops it (read with :func:`cjepa.engine.load_checkpoint`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from cjepa.config import load_config
from cjepa.engine import Reporter, load_checkpoint, train
from tests.conftest import TINY, tiny_overrides

GOLDEN_PATH = Path(__file__).with_name("golden_losses.json")

#: Optimizer steps per configuration. Short enough to keep the file fast, long enough that the
#: warm-up schedule, the EMA and AdamW's moments all move (the tiny digits run has 23 steps per
#: epoch, so these steps stay inside epoch 1 and the running means are never reset).
STEPS = 8

#: Name -> overrides on top of the tiny digits config. "C-JEPA" arms keep the default
#: ``loss.beta_vicreg`` (0.001) on purpose: a changed default is a behaviour change too.
CONFIGS: dict[str, tuple[str, ...]] = {
    "ijepa": ("loss.beta_vicreg=0",),
    "pred_blocks": ("loss.vicreg_mode=pred_blocks",),
    "context_target": ("loss.vicreg_mode=context_target",),
    "two_views": ("loss.vicreg_mode=two_views",),
    "pred_blocks_ema_off": ("loss.vicreg_mode=pred_blocks", "ema.enabled=false"),
    "pred_blocks_l2": ("loss.vicreg_mode=pred_blocks", "loss.jepa=l2"),
    "two_views_hflip": ("loss.vicreg_mode=two_views", "data.hflip=0.5"),
    "pred_tokens": ("loss.vicreg_mode=pred_tokens", "loss.beta_vicreg=0.01"),
    "sigreg_ema_off": ("loss.vicreg_mode=sigreg", "loss.beta_vicreg=0.05", "ema.enabled=false"),
}

#: Always appended: a fixed seed, a stop after STEPS, a report every step, a fresh start, CPU, fp32.
#: (``run.threads=1`` comes with TINY.)
RUN_OVERRIDES: tuple[str, ...] = ("run.seed=0", f"run.max_steps={STEPS}", "run.log_every=1", "run.resume=false",
                                  "run.device=cpu", "run.precision=fp32", "data.num_workers=0")

#: Reported keys that measure the machine, not the method.
TIMING_KEYS = frozenset({"img_per_s", "epoch_time_s", "train_time_s", "train_cpu_min", "eval_time_s"})


class StepRecorder(Reporter):
    """Keeps what ``on_step`` is given: running means over the epoch so far, one dict per step."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dict[str, float]]] = []

    def on_step(self, step: int, metrics: dict[str, float]) -> None:
        self.calls.append((step, dict(metrics)))


def per_step_values(calls: list[tuple[int, dict[str, float]]]) -> list[dict[str, float]]:
    """Each step's own value, recovered from the running means ``on_step`` reports.

    The loop sums the float logs in float64 and reports ``sum / n``; ``n * mean_n - (n - 1) *
    mean_{n-1}`` gives step n's value back to ~1e-15 relative, far inside the test's 1e-5. Per-step
    values, unlike running means, make a failure name the step where behaviour first changed.
    Requires the steps to lie in the first epoch (the means reset at an epoch boundary).
    """
    steps = [s for s, _ in calls]
    assert steps == list(range(1, len(calls) + 1)), f"on_step was not called once per step: {steps}"
    out: list[dict[str, float]] = []
    previous: dict[str, float] = {}
    for n, (_, metrics) in enumerate(calls, start=1):
        assert metrics.get("epoch", 0.0) <= 1.0, "golden steps must stay within epoch 1 (running means reset)"
        row = {}
        for key, mean in sorted(metrics.items()):
            if key in TIMING_KEYS or key == "epoch":
                continue
            row[key] = n * mean - (n - 1) * previous.get(key, 0.0)
        out.append(row)
        previous = metrics
    return out


def weight_checksum(state: dict[str, torch.Tensor]) -> dict[str, float]:
    """Name-free fingerprint of a state dict's floating tensors (parameters and BN statistics).

    Independent of module names and order, so a refactor that moves or renames modules keeps it
    while any change of a value moves it: element count, sum, L1 norm and sum of squares, float64.
    """
    tensors = [t.detach().to(torch.float64) for t in state.values() if torch.is_tensor(t) and t.is_floating_point()]
    return {
        "numel": float(sum(t.numel() for t in tensors)),
        "sum": math.fsum(t.sum().item() for t in tensors),
        "abs_sum": math.fsum(t.abs().sum().item() for t in tensors),
        "sum_sq": math.fsum(t.square().sum().item() for t in tensors),
    }


def overrides_for(name: str) -> list[str]:
    """The full dotted overrides of one configuration (without the run directory)."""
    return [*TINY, *CONFIGS[name], *RUN_OVERRIDES]


def run_config(name: str, workdir: Path) -> dict[str, Any]:
    """Train configuration ``name`` for STEPS steps in ``workdir``; return what the golden file keeps."""
    run_dir = workdir / name
    cfg = load_config(None, tiny_overrides(run_dir, *CONFIGS[name], *RUN_OVERRIDES))
    recorder = StepRecorder()
    result = train(cfg, [recorder])
    assert result.step == STEPS and not result.completed, (result.step, result.completed)
    ckpt = load_checkpoint(run_dir / "checkpoint.pt")
    assert ckpt["step"] == STEPS, ckpt["step"]
    return {
        "overrides": [*CONFIGS[name], *RUN_OVERRIDES],
        "steps": per_step_values(recorder.calls),
        "weights": {"online": weight_checksum(ckpt["online"]), "target": weight_checksum(ckpt["target"])},
    }
