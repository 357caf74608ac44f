"""Evaluation's share of a trial's arithmetic: FLOPs of one training epoch vs one evaluation.

Why: issue 14 asks for evaluation <= 10 % of a quick-study trial without weakening the probes.
The measured share (docs/benchmarks.md, "Sweep utilisation") tracks what the evaluation has to
compute: both encoders' full-token forward over the fixed evaluation images every epoch, against
an epoch of masked training steps. Counting both (``torch.utils.flop_counter.FlopCounterMode``,
the matmuls and attention that dominate) says what share a preset's protocol implies when the
evaluation runs as efficiently per FLOP as training, before any timing, on any machine.

Counted by ``cjepa.benchmarking.flops.count_flops`` (attention included: SDPA is forced onto its
counted math backend); fp32 (autocast does not change the count). What is counted:
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
import tempfile
from pathlib import Path

from cjepa.benchmarking.flops import evaluation_flops, simulated_evaluation_flops, train_epoch_flops
from cjepa.config import load_config
from cjepa.errors import CJepaError

REPO = Path(__file__).resolve().parents[1]


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
