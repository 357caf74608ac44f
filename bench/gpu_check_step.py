"""Stage (b) of bench/gpu_check.py: training-step images/s, peak memory and MFU of one variant.

The step is the trainer's own (``cjepa.engine.step.train_step`` around ``cjepa.method.CJEPA``:
target forward, online forward, loss, backward, AdamW, EMA) on a model built exactly as
``cjepa.engine.trainer.train`` builds it,
under the trainer's autocast policy (bf16). Batches and masks come from
bench/step_throughput.py's ``make_batches`` (random images, real multi-block masks of steps
0..n-1), moved to the device before the clock starts, so only the step is timed. ``train_step``
reads the loss back every step (one host sync), so per-step wall times are real step times.

``torch.compile`` (``compile_=True``) compiles the online network and the target encoder in
place with ``dynamic=True``: the context length changes from step to step, and one dynamic
graph avoids a recompile per new length. The first steps (warm-up) include compilation.
On CUDA OOM the batch is halved and retried (down to ``min_batch``).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from gpu_check_flops import analytic_flops, mfu, step_flops
from step_throughput import make_batches

VARIANT_KEYS = (
    "config", "batch_size", "batch_tried", "steps", "warmup", "compiled", "autocast", "device", "params",
    "img_per_s", "step_ms_median", "step_ms_min", "first_step_s", "warmup_s", "peak_mem_gib",
    "context_tokens_mean", "flops_per_image", "flops_per_image_counted_batch0", "flops_per_image_analytic_batch0",
    "flops_check_rel_diff", "flops_per_step", "achieved_tflops", "mfu", "loss_first", "loss_last",
)


def empty_variant() -> dict[str, Any]:
    """The result skeleton of a variant that did not run (same keys as a measured one)."""
    return dict.fromkeys(VARIANT_KEYS)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _measure(config: Path, overrides: list[str], batch_size: int, device: torch.device, steps: int, warmup: int,
             nbatches: int, compile_: bool, peak: float | None) -> dict[str, Any]:
    from cjepa.config import load_config
    from cjepa.engine.precision import resolve_autocast
    from cjepa.engine.step import build_optimizer, train_step
    from cjepa.masks import Masks
    from cjepa.method import CJEPA

    cfg = load_config(config, [*overrides, f"optim.batch_size={batch_size}", "run.precision=bf16"])
    autocast = resolve_autocast(cfg, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    prepared = make_batches(cfg, batch_size, nbatches, "random", seed=0)
    batches = [{"step": i, "images": b.images.to(device), "masks": Masks(b.context, b.targets).to(device)}
               for i, b in enumerate(prepared)]
    torch.manual_seed(0)
    model = CJEPA(cfg).to(device)
    model.train()
    optimizer = build_optimizer(model, cfg.optim)
    if compile_:
        model.compile(dynamic=True)
    lr, wd, momentum = cfg.optim.lr, cfg.optim.weight_decay, cfg.ema.start

    def step(i: int) -> dict[str, float]:
        return train_step(model, optimizer, batches[i % len(batches)], lr, wd, momentum, autocast, cfg.optim.grad_clip)

    t0 = time.perf_counter()
    first = step(0)
    _sync(device)
    first_s = time.perf_counter() - t0
    for i in range(1, warmup):
        step(i)
    _sync(device)
    warmup_s = time.perf_counter() - t0
    times, logs = [], first
    for i in range(steps):
        t = time.perf_counter()
        logs = step(warmup + i)
        _sync(device)
        times.append(time.perf_counter() - t)
    peak_mem = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    timed = [batches[(warmup + i) % len(batches)]["masks"] for i in range(steps)]
    per_image = statistics.fmean(analytic_flops(cfg, int(mk.context.shape[1]), int(mk.targets.shape[2]))["total"]
                                 for mk in timed)
    seconds = sum(times) / steps
    flops_step = per_image * batch_size
    check = step_flops(cfg, batches[0])
    return {
        "config": str(config), "batch_size": batch_size, "steps": steps, "warmup": warmup, "compiled": compile_,
        "autocast": str(autocast).replace("torch.", "") if autocast else None, "device": str(device),
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "img_per_s": batch_size / seconds, "step_ms_median": 1000 * statistics.median(times),
        "step_ms_min": 1000 * min(times), "first_step_s": first_s, "warmup_s": warmup_s, "peak_mem_gib": peak_mem,
        "context_tokens_mean": statistics.fmean(int(mk.context.shape[1]) for mk in timed),
        "flops_per_image": per_image, "flops_per_image_counted_batch0": check["counted"],
        "flops_per_image_analytic_batch0": check["analytic"],
        "flops_check_rel_diff": abs(check["counted"] - check["analytic"]) / check["counted"],
        "flops_per_step": flops_step, "achieved_tflops": flops_step / seconds / 1e12,
        "mfu": mfu(flops_step, seconds, peak), "loss_first": first["loss"], "loss_last": logs["loss"],
    }


def bench_variant(config: Path, overrides: list[str], batch_size: int, device: torch.device, steps: int,
                  warmup: int, nbatches: int, compile_: bool, peak: float | None, min_batch: int = 8
                  ) -> dict[str, Any]:
    """One variant's figures (see VARIANT_KEYS); halves the batch on CUDA OOM."""
    tried: list[int] = []
    while True:
        tried.append(batch_size)
        oom = False
        try:
            out = _measure(config, overrides, batch_size, device, steps, warmup, nbatches, compile_, peak)
            out["batch_tried"] = tried
            return out
        except torch.OutOfMemoryError:
            if batch_size // 2 < min_batch:
                raise
            oom = True
        if oom:  # outside the except block: the traceback no longer pins the failed step's tensors
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
            if compile_:
                torch._dynamo.reset()
            batch_size //= 2


def stage_steps(variants: dict[str, Path], overrides: list[str], batch_size: int, device: torch.device,
                steps: int, warmup: int, nbatches: int, compile_: bool, peak: float | None,
                progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Stage (b): every variant at the same settings; one variant failing does not stop the next.

    ``progress(results)`` after each variant lets a stage killed at its time limit keep the
    variants it finished (compiling the second one may be what runs out of time).
    """
    results: dict[str, Any] = {}
    for name, config in variants.items():
        try:
            results[name] = bench_variant(config, overrides, batch_size, device, steps, warmup, nbatches,
                                          compile_, peak)
            results[name]["error"] = None
        except Exception as exc:  # recorded, and the next variant still runs
            results[name] = {**empty_variant(), "error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if compile_:
            torch._dynamo.reset()
        if progress is not None:
            progress(results)
    return results
