"""Evaluation's share of a trial's arithmetic: FLOPs of one training epoch vs one evaluation.

Why: issue 14 asks for evaluation <= 10 % of a quick-study trial without weakening the probes.
The measured share (docs/benchmarks.md, "Sweep utilisation") tracks what the evaluation has to
compute: both encoders' full-token forward over the fixed evaluation images every epoch, against
an epoch of masked training steps. Counting both (``torch.utils.flop_counter.FlopCounterMode``,
the matmuls and attention that dominate) says what share a preset's protocol implies when the
evaluation runs as efficiently per FLOP as training, before any timing, on any machine.

Counted with the explicit attention kernel (the counter has no formula for the CPU SDPA kernel
and would count attention as 0); fp32 (autocast does not change the count). What is counted:
``steps`` training steps (forward of context encoder, predictor, target encoder
and regulariser, backward, AdamW, EMA; the context length varies with the mask, so several steps
are averaged) times the epoch's steps; and one ``Evaluator.evaluate`` (pooled features of each
``eval.encoders`` entry on ``eval.train_samples`` + ``data.val_samples`` images, the predictor
spread; kNN and the linear probe are small matmuls on pooled features and are counted too).
The raw-pixel and random-init baselines are cached on disk and not part of a trial's epoch.

    python bench/eval_flops.py                                         # the quick preset
    python bench/eval_flops.py -c configs/cjepa_fmnist_cpu.yaml
    python bench/eval_flops.py -- eval.encoders=[target]               # what a protocol change implies
    python bench/eval_flops.py -c configs/cjepa_vit_b16.yaml --train-images 1271167 -- optim.batch_size=2

``--train-images N`` simulates a data set of N training images without reading one (the 224 px
presets need ImageNet's shards): a training epoch is N x the FLOPs per image of ``--steps`` random
batches (of the override's small batch: FLOPs per image do not depend on it), and an evaluation is
one encoder forward per image x (``eval.train_samples`` + ``data.val_samples``) x encoders (the
per-epoch protocol; probes on pooled features are negligible at this size).
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from cjepa.config import Config, load_config
from cjepa.data import StepBatchSampler, load_split
from cjepa.engine.evaluation import Evaluator
from cjepa.engine.step import build_optimizer, train_step
from cjepa.errors import CJepaError
from cjepa.masks import Masks
from cjepa.method import CJEPA
from cjepa.model.attention import set_attention

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/ is not a package
from step_data import make_batches  # noqa: E402  (the step benchmark's batches and masks)

REPO = Path(__file__).resolve().parents[1]


def flops(fn) -> int:
    """Floating-point operations of ``fn()`` as torch's FLOP counter sees them."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def counted_model(cfg: Config) -> CJEPA:
    """The method with the explicit attention kernel: the FLOP counter has no formula for PyTorch's
    CPU SDPA kernel (it would count attention as 0), and explicit matmuls are counted exactly."""
    torch.manual_seed(cfg.run.seed)
    model = CJEPA(cfg)
    set_attention(model, "math")
    return model


def train_epoch_flops(cfg: Config, steps: int, images: int = 0) -> tuple[float, int]:
    """(FLOPs of one training epoch, steps per epoch), averaged over the first ``steps`` batches;
    ``images > 0``: an epoch of that many images (simulated, no data read)."""
    model = counted_model(cfg)
    optimizer = build_optimizer(model, cfg.optim)
    n = images or len(load_split(cfg.data, "train").labels)
    per_epoch = StepBatchSampler(n, cfg.optim.batch_size, cfg.run.seed).steps_per_epoch
    total = 0
    for i, b in enumerate(make_batches(cfg, cfg.optim.batch_size, steps, "random", cfg.run.seed)):
        batch = {"step": i, "images": b.images, "images2": b.images2,
                 "labels": torch.zeros(len(b.images), dtype=torch.long), "masks": Masks(b.context, b.targets)}
        total += flops(lambda batch=batch: train_step(model, optimizer, batch, cfg.optim.lr,
                                                      cfg.optim.weight_decay, 0.99))
    return total / steps * per_epoch, per_epoch


def evaluation_flops(cfg: Config) -> float:
    """FLOPs of one per-epoch evaluation (``Evaluator.evaluate``), baselines excluded (cached)."""
    cfg = copy.deepcopy(cfg)  # the caller's config stays as given
    cfg.eval.raw_baseline = cfg.eval.random_baseline = False
    model = counted_model(cfg)
    evaluator = Evaluator(cfg, torch.device("cpu"), autocast_dtype=None)
    return float(flops(lambda: evaluator.evaluate(model)))


def simulated_evaluation_flops(cfg: Config) -> float:
    """One per-epoch evaluation without data: forward FLOPs of one image x its images x encoders."""
    model = counted_model(cfg)
    x = torch.randn(1, cfg.model.in_chans, cfg.model.img_size, cfg.model.img_size)
    per_image = flops(lambda: model.target(x))
    return float(per_image * (cfg.eval.train_samples + cfg.data.val_samples) * len(cfg.eval.encoders))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-c", "--config", default=str(REPO / "configs" / "cjepa_fmnist_quick.yaml"))
    p.add_argument("--steps", type=int, default=4, help="training steps averaged (masks vary the cost)")
    p.add_argument("--train-images", type=int, default=0,
                   help="simulate an epoch of this many training images (no data read; module docstring)")
    p.add_argument("overrides", nargs="*", help="key=value config overrides (after --)")
    args = p.parse_args()
    if args.steps < 1:
        raise SystemExit(f"eval_flops: --steps must be >= 1, got {args.steps}")
    with tempfile.TemporaryDirectory() as tmp:
        try:  # a bad preset, override or dataset: one line, before any counting
            cfg = load_config(args.config, [*args.overrides, f"run.output_dir={tmp}", "run.precision=fp32"])
            train, per_epoch = train_epoch_flops(cfg, args.steps, args.train_images)
            evaluation = simulated_evaluation_flops(cfg) if args.train_images else evaluation_flops(cfg)
        except (CJepaError, OSError) as exc:
            raise SystemExit(f"eval_flops: {exc}") from None
    every, epochs = cfg.eval.every, cfg.run.epochs
    runs = sum(1 for e in range(1, epochs + 1) if every and (e % every == 0 or e == epochs))  # as the trainer
    share = runs * evaluation / (epochs * train + runs * evaluation)
    print(f"{args.config} {' '.join(args.overrides)}".strip())
    print(f"training: {per_epoch} steps/epoch x {train / per_epoch / 1e9:.2f} GFLOP "
          f"= {train / 1e12:.3f} TFLOP per epoch")
    print(f"evaluation: {evaluation / 1e12:.3f} TFLOP each, {runs} in {epochs} epochs "
          f"({cfg.eval.train_samples} bank + {cfg.data.val_samples} validation images x {len(cfg.eval.encoders)} "
          f"encoder(s){', simulated' if args.train_images else ''})")
    print(f"evaluation share of a trial's FLOPs: {share:.1%} (goal of issue 14: <= 10 %)")


if __name__ == "__main__":
    main()
