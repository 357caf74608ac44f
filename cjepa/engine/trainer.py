"""The epoch loop: data, steps, evaluation, checkpoints and reporters, with exact resume.

Runs in one process, or in each process of a ``torch.distributed`` group (the Ray Train layer
initialises the group and calls :func:`train`): the online network is wrapped in DDP, each rank
takes its share of every global batch, VICReg statistics are gathered over the global batch,
and rank 0 evaluates, checkpoints and reports.
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
from cjepa.data import StepBatchDataset, StepBatchSampler, build_loader, dataset_stats, load_split
from cjepa.engine.checkpoint import CHECKPOINT_NAME, check_compatible, load_checkpoint, save_checkpoint
from cjepa.engine.evaluation import Evaluator
from cjepa.engine.reporting import Reporter
from cjepa.engine.schedules import Schedules
from cjepa.engine.step import build_optimizer, train_step, unwrap
from cjepa.losses.distributed import gather_with_grad
from cjepa.masks import MultiBlockMaskGenerator, save_mask_png
from cjepa.model import OnlineNetwork, make_target


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


def resolve_autocast(cfg: Config, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA unless run.precision=fp32; never on CPU unless asked."""
    if cfg.run.precision == "bf16" or (cfg.run.precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
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


class _GatheredBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the global batch for CPU (gloo) DDP, where ``nn.SyncBatchNorm`` refuses to
    run ("SyncBatchNorm layers only work with GPU modules"). It gathers the inputs with gradient
    (:func:`cjepa.losses.distributed.gather_with_grad`, whose sum-over-ranks backward plus DDP's
    average gives the full-batch gradient, as for the VICReg statistics), normalises the global
    batch as one process would (same statistics and running buffers) and keeps this rank's rows.
    Costs a gather of the projector activations, not only of their statistics: fine at CPU sizes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized() or dist.get_world_size() == 1:
            return super().forward(x)
        n, rank = x.shape[0], dist.get_rank()
        return super().forward(gather_with_grad(x))[rank * n:(rank + 1) * n]


def _global_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch norm statistics over the global batch: SyncBatchNorm on CUDA, gathering on CPU.
    Same parameters, buffers and names as the plain layers, so checkpoints stay interchangeable."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            new = _GatheredBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats, device=device)
            # The same Parameter/buffer objects (as convert_sync_batchnorm does): the optimizer,
            # built before the conversion, must keep updating them.
            for key, value in [*child._parameters.items(), *child._buffers.items()]:
                setattr(new, key, value)
            setattr(module, name, new)
        else:
            _global_batchnorm(child, device)
    return module


def train(cfg: Config, reporters: list[Reporter] | None = None) -> TrainResult:
    """Train (or resume) the run described by ``cfg``; see the module docstring.

    ``reporters`` are this process's: under torch.distributed, pass rank-specific lists.
    """
    reporters = reporters or []
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    device = resolve_device(cfg)
    autocast_dtype = resolve_autocast(cfg, device)
    run_dir = Path(cfg.run.output_dir)
    ckpt_path = run_dir / CHECKPOINT_NAME

    data = load_split(cfg.data, "train")
    mean, std = dataset_stats(cfg.data.dataset)
    m = cfg.model
    mask_gen = MultiBlockMaskGenerator(m.img_size // m.patch_size, cfg.mask, seed=cfg.run.seed)
    dataset = StepBatchDataset(data, m.img_size, cfg.data.crop_scale, mean, std, m.in_chans, cfg.run.seed,
                               mask_gen, two_views=cfg.loss.vicreg_on and cfg.loss.vicreg_mode == "two_views",
                               rank=rank, world_size=world, hflip=cfg.data.hflip)
    probe_sampler = StepBatchSampler(len(data.labels), cfg.optim.batch_size, cfg.run.seed)
    sched = Schedules(cfg, probe_sampler.steps_per_epoch)
    spe, total = sched.steps_per_epoch, sched.total_steps

    torch.manual_seed(cfg.run.seed)  # identical initial weights in every process
    online: nn.Module = OnlineNetwork(cfg).to(device)
    target = make_target(online.encoder)
    optimizer = build_optimizer(online, cfg)
    step, extra, meter_state, rng_state = 0, {}, None, None
    if cfg.run.resume and ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        check_compatible(state["config"], cfg.to_dict(), ckpt_path)
        online.load_state_dict(state["online"])
        target.load_state_dict(state["target"])
        optimizer.load_state_dict(state["optimizer"])
        rng_state = state["rng"]["torch"]
        step, extra, meter_state = state["step"], dict(state.get("extra", {})), state.get("meter")
    if world > 1:
        online = _global_batchnorm(online, device)
        online = nn.parallel.DistributedDataParallel(online, device_ids=[device.index] if device.index is not None
                                                     else None)

    is_main = rank == 0
    evaluator = Evaluator(cfg, device, autocast_dtype) if is_main and cfg.eval.every > 0 else None
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())
        sample = dataset[(0, torch.arange(min(8, cfg.optim.batch_size)))]
        save_mask_png(mask_gen(len(sample["images"]), 0), mask_gen.grid, run_dir / "masks.png",
                      images=sample["images"])
    for r in reporters:
        r.on_start(run_dir, step // spe, extra)

    def checkpoint(meter: _EpochMeter) -> Path:
        return save_checkpoint(ckpt_path, {
            "config": cfg.to_dict(), "step": step, "epoch": step // spe, "extra": extra,
            "online": unwrap(online).state_dict(), "target": target.state_dict(),
            "optimizer": optimizer.state_dict(), "rng": {"torch": torch.get_rng_state()},
            "meter": meter.state(),
        })

    sampler = StepBatchSampler(len(data.labels), cfg.optim.batch_size, cfg.run.seed, start_step=step,
                               epochs=cfg.run.epochs, rank=rank, world_size=world)
    loader = build_loader(dataset, sampler, cfg.data.num_workers)
    result = TrainResult(run_dir=run_dir, step=step)
    meter = _EpochMeter(meter_state)
    online.train()
    if rng_state is not None:  # restored last: set-up above may draw random numbers
        torch.set_rng_state(rng_state)
    tick = time.perf_counter()
    for batch in loader:
        assert batch["step"] == step, f"loader is at step {batch['step']}, trainer at {step}"
        batch = _to_device(batch, device)
        logs = train_step(online, target, optimizer, batch, cfg, sched.lr(step), sched.weight_decay(step),
                          sched.momentum(step), autocast_dtype)
        step += 1
        now = time.perf_counter()
        meter.add(logs, len(batch["images"]), now - tick)
        tick = now
        if step % cfg.run.log_every == 0:
            running = {**{k: v / meter.steps for k, v in meter.sums.items()}, "epoch": step / spe,
                       "img_per_s": meter.images * world / max(meter.seconds, 1e-9)}
            for r in reporters:
                r.on_step(step, running)
        stop_early = 0 < cfg.run.max_steps <= step < total
        if step % spe == 0:
            epoch = step // spe
            metrics = {"epoch": float(epoch), "step": float(step), **meter.means(world)}
            # The budget a trial has used (kept in the checkpoint, so it survives resume):
            # training seconds x threads x processes, in CPU-minutes (evaluation excluded).
            extra["train_time_s"] = float(extra.get("train_time_s", 0.0)) + metrics["epoch_time_s"]
            metrics["train_cpu_min"] = extra["train_time_s"] * torch.get_num_threads() * world / 60.0
            if evaluator is not None and (epoch % cfg.eval.every == 0 or step == total):
                t0 = time.perf_counter()
                metrics.update(evaluator.evaluate(unwrap(online), target))
                metrics["eval_time_s"] = time.perf_counter() - t0
            meter = _EpochMeter()
            for r in reporters:
                r.on_epoch(epoch, metrics)
            due = cfg.run.checkpoint_every and (epoch % cfg.run.checkpoint_every == 0 or step == total)
            ckpt = checkpoint(meter) if is_main and (due or stop_early) else None
            for r in reporters:
                r.on_checkpoint(epoch, metrics, ckpt)
            result.history.append(metrics)
            tick = time.perf_counter()  # evaluation and checkpoint time is not training time
        elif stop_early and is_main:
            checkpoint(meter)
        if stop_early:
            break
    result.step = step
    result.completed = step >= total
    if world > 1:
        dist.barrier()
    if result.completed:
        final = result.history[-1] if result.history else {}
        for r in reporters:
            r.on_end(final)
    return result
