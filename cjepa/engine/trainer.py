"""The epoch loop: data, steps, evaluation, checkpoints and reporters, with exact resume.

Runs in one process, or in each process of a ``torch.distributed`` group (the Ray Train layer
initialises the group and calls :func:`train`): the method object (:class:`cjepa.method.CJEPA`)
is wrapped in DDP, each rank takes its share of every global batch, VICReg statistics and the
projector's batch norm are taken over the global batch, and rank 0 evaluates, checkpoints and
reports. What a step computes is the method's business; this loop only schedules, steps,
evaluates and saves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from cjepa.config import Config
from cjepa.data import build_loader
from cjepa.data.build import train_dataset
from cjepa.engine.checkpoint import (
    CHECKPOINT_NAME,
    check_compatible,
    has_checkpoint,
    load_for_resume,
    remove_stale_temp_files,
    save_checkpoint,
)
from cjepa.engine.evaluation import Evaluator
from cjepa.engine.precision import resolve_autocast
from cjepa.engine.reporting import Reporter
from cjepa.engine.schedules import Schedules
from cjepa.engine.step import build_optimizer, train_step
from cjepa.hooks import run_reporters
from cjepa.masks import MultiBlockMaskGenerator, save_mask_png
from cjepa.method import CJEPA, needs_second_view, unwrap
from cjepa.model import global_batchnorm, resolve_attention, set_attention


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, float]] = field(default_factory=list)  # epochs trained by this call
    step: int = 0
    completed: bool = False  # False when stopped early by run.max_steps


def resolve_device(cfg: Config) -> torch.device:
    if cfg.run.device == "cuda" or (cfg.run.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            from cjepa.errors import ConfigError
            raise ConfigError("run.device=cuda but no CUDA device is visible; use run.device=cpu")
        index = dist.get_rank() % torch.cuda.device_count() if dist.is_initialized() else 0
        return torch.device("cuda", index)
    return torch.device("cpu")


def _to_device(batch: dict[str, Any], device: torch.device, dataset: Any) -> dict[str, Any]:
    """The batch on the device; the shard stream's uint8 views (or JPEGs, ``data.decode=device``)
    are finished there, last."""
    out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
    finish = getattr(dataset, "finish_on_device", None)  # the shard stream's decode on the device / normalise
    if finish is not None:
        out = finish(out, device)
    masks = batch["masks"]
    out["masks"] = masks.to(device)
    return out


class _EpochMeter:
    """Sums of step logs; averaged over ranks at read-out so rank 0 reports global means."""

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        self.sums: dict[str, float] = dict(state["sums"]) if state else {}
        self.steps: int = state["steps"] if state else 0
        self.images: int = state["images"] if state else 0
        self.seconds: float = state["seconds"] if state else 0.0

    def add(self, logs: dict[str, float], images: int, seconds: float) -> None:
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += 1
        self.images += images
        self.seconds += seconds

    def means(self, world: int) -> dict[str, float]:
        keys = sorted(self.sums)
        values = [self.sums[k] / max(1, self.steps) for k in keys]
        if world > 1:
            t = torch.tensor(values, dtype=torch.float64)
            dist.all_reduce(t)
            values = (t / world).tolist()
        out = dict(zip(keys, values))
        out["img_per_s"] = self.images * world / max(self.seconds, 1e-9)
        out["epoch_time_s"] = self.seconds
        return out

    def state(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "steps": self.steps, "images": self.images, "seconds": self.seconds}


@dataclass
class _Run:
    """Everything one call of :func:`train` builds before its first step."""

    cfg: Config
    rank: int
    world: int
    device: torch.device
    autocast: torch.dtype | None
    dataset: Any  # StepBatchDataset or ShardStream (cjepa.data.build)
    mask_gen: MultiBlockMaskGenerator
    sched: Schedules
    model: nn.Module  # CJEPA, DDP-wrapped when world > 1
    optimizer: torch.optim.Optimizer
    ckpt_path: Path
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # reporter state kept in the checkpoint
    meter_state: dict[str, Any] | None = None
    rng_state: torch.Tensor | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _build(cfg: Config) -> _Run:
    """Data, masks, schedules, the method and its optimizer; resumed state when a checkpoint exists."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    device = resolve_device(cfg)
    m = cfg.model
    mask_gen = MultiBlockMaskGenerator(m.img_size // m.patch_size, cfg.mask, seed=cfg.run.seed)
    dataset = train_dataset(cfg, rank, world, mask_gen, needs_second_view(cfg))
    sched = Schedules(cfg, _sampler(cfg, dataset, 0).steps_per_epoch)
    torch.manual_seed(cfg.run.seed)  # identical initial weights in every process
    model = CJEPA(cfg).to(device)
    autocast = resolve_autocast(cfg, device)
    set_attention(model, resolve_attention(cfg.run.attention, device, autocast))
    run = _Run(cfg, rank, world, device, autocast, dataset, mask_gen, sched, model,
               build_optimizer(model, cfg.optim), Path(cfg.run.output_dir) / CHECKPOINT_NAME)
    if rank == 0:  # a killed checkpoint write leaves a temp file that is never complete
        remove_stale_temp_files(run.ckpt_path.parent)
    if cfg.run.resume and has_checkpoint(run.ckpt_path.parent):
        _restore(run)
    if world > 1:
        run.model = nn.parallel.DistributedDataParallel(
            global_batchnorm(model, device), device_ids=[device.index] if device.index is not None else None)
    return run


def _sampler(cfg: Config, dataset: Any, start_step: int) -> Any:
    """This rank's step-keyed sampler from ``start_step`` to the end of the run."""
    return dataset.sampler(cfg.optim.batch_size, cfg.run.seed, start_step, cfg.run.epochs,
                           max(1, cfg.data.num_workers))


def _restore(run: _Run) -> None:
    """The latest readable checkpoint (the previous one, with a warning, when the latest is damaged)."""
    state, path = load_for_resume(run.ckpt_path)
    check_compatible(state["config"], run.cfg.to_dict(), path)
    model = unwrap(run.model)
    model.load_online_state_dict(state["online"])
    model.target.load_state_dict(state["target"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.rng_state = state["rng"]["torch"]
    run.step, run.extra, run.meter_state = state["step"], dict(state.get("extra", {})), state.get("meter")


def _checkpoint(run: _Run, meter: _EpochMeter) -> Path:
    model = unwrap(run.model)
    return save_checkpoint(run.ckpt_path, {
        "config": run.cfg.to_dict(), "step": run.step, "epoch": run.step // run.sched.steps_per_epoch,
        "extra": run.extra, "online": model.online_state_dict(), "target": model.target.state_dict(),
        "optimizer": run.optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()}, "meter": meter.state(),
    })


def _write_run_files(run: _Run) -> None:
    """The resolved config and a picture of one batch's masks, next to the checkpoint."""
    run_dir = run.ckpt_path.parent
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(run.cfg.to_yaml())
    sample = _to_device(run.dataset[(0, torch.arange(min(8, run.cfg.optim.batch_size)))], torch.device("cpu"),
                        run.dataset)
    save_mask_png(run.mask_gen(len(sample["images"]), 0), run.mask_gen.grid, run_dir / "masks.png",
                  images=sample["images"])


def _epoch_metrics(run: _Run, meter: _EpochMeter, evaluator: Evaluator | None) -> dict[str, float]:
    """The epoch's training means, its budget used so far and, when due, the evaluation."""
    epoch = run.step // run.sched.steps_per_epoch
    metrics = {"epoch": float(epoch), "step": float(run.step), **meter.means(run.world)}
    # The budget a trial has used (kept in the checkpoint, so it survives resume):
    # training seconds x threads x processes, in CPU-minutes (evaluation excluded).
    run.extra["train_time_s"] = float(run.extra.get("train_time_s", 0.0)) + metrics["epoch_time_s"]
    metrics["train_cpu_min"] = run.extra["train_time_s"] * torch.get_num_threads() * run.world / 60.0
    last = run.step == run.sched.total_steps
    if evaluator is not None and (epoch % run.cfg.eval.every == 0 or last):
        t0 = time.perf_counter()
        metrics.update(evaluator.evaluate(unwrap(run.model)))
        if last:  # the test split, once: the run's final number (never selected on)
            metrics.update(evaluator.evaluate_test(unwrap(run.model)))
        metrics["eval_time_s"] = time.perf_counter() - t0
    return metrics


def train(cfg: Config, reporters: list[Reporter] | None = None) -> TrainResult:
    """Train (or resume) the run described by ``cfg``; see the module docstring.

    ``reporters`` are this process's: under torch.distributed, pass rank-specific lists.
    """
    reporters = reporters or []
    run = _build(cfg)
    if run.is_main:
        reporters = [*reporters, *run_reporters()]  # what cjepa/hooks.py holds: nothing in real use
    evaluator = Evaluator(cfg, run.device, run.autocast) if run.is_main and cfg.eval.every > 0 else None
    if run.is_main:
        _write_run_files(run)
    spe, total = run.sched.steps_per_epoch, run.sched.total_steps
    for r in reporters:
        r.on_start(run.ckpt_path.parent, run.step // spe, run.extra)
    sampler = _sampler(cfg, run.dataset, run.step)
    result = TrainResult(run_dir=run.ckpt_path.parent, step=run.step)
    meter = _EpochMeter(run.meter_state)
    run.model.train()
    if run.rng_state is not None:  # restored last: set-up above may draw random numbers
        torch.set_rng_state(run.rng_state)
    tick = time.perf_counter()
    for batch in build_loader(run.dataset, sampler, cfg.data.num_workers):
        assert batch["step"] == run.step, f"loader is at step {batch['step']}, trainer at {run.step}"
        logs = train_step(run.model, run.optimizer, _to_device(batch, run.device, run.dataset), run.sched.lr(run.step),
                          run.sched.weight_decay(run.step), run.sched.momentum(run.step), run.autocast,
                          cfg.optim.grad_clip)
        run.step += 1
        now = time.perf_counter()
        meter.add(logs, len(batch["images"]), now - tick)
        tick = now
        if run.step % cfg.run.log_every == 0:
            running = {**{k: v / meter.steps for k, v in meter.sums.items()}, "epoch": run.step / spe,
                       "img_per_s": meter.images * run.world / max(meter.seconds, 1e-9)}
            for r in reporters:
                r.on_step(run.step, running)
        stop_early = 0 < cfg.run.max_steps <= run.step < total
        if run.step % spe == 0:
            result.history.append(_end_epoch(run, meter, evaluator, reporters, stop_early))
            meter = _EpochMeter()
            tick = time.perf_counter()  # evaluation and checkpoint time is not training time
        elif stop_early and run.is_main:
            _checkpoint(run, meter)
        if stop_early:
            break
    return _finish(run, result, reporters)


def _end_epoch(run: _Run, meter: _EpochMeter, evaluator: Evaluator | None, reporters: list[Reporter],
               stop_early: bool) -> dict[str, float]:
    """Metrics to every reporter, then the checkpoint (reporters see the epoch before it is durable)."""
    epoch, total = run.step // run.sched.steps_per_epoch, run.sched.total_steps
    metrics = _epoch_metrics(run, meter, evaluator)
    for r in reporters:
        r.on_epoch(epoch, metrics)
    every = run.cfg.run.checkpoint_every
    due = every and (epoch % every == 0 or run.step == total)
    ckpt = _checkpoint(run, _EpochMeter()) if run.is_main and (due or stop_early) else None
    for r in reporters:
        r.on_checkpoint(epoch, metrics, ckpt)
    return metrics


def _finish(run: _Run, result: TrainResult, reporters: list[Reporter]) -> TrainResult:
    result.step = run.step
    result.completed = run.step >= run.sched.total_steps
    if run.world > 1:
        dist.barrier()
    if result.completed:
        final = result.history[-1] if result.history else {}
        for r in reporters:
            r.on_end(final)
    return result
