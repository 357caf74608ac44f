"""The shared inputs of bench/step_throughput.py: prepared batches and the ``Variant`` record.

Why a module of its own: every variant (ours, lightly's, the official I-JEPA) and the GPU check
(bench/gpu_check_step.py) consume the *same* batches, so what a batch is lives in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class Batch:
    """One prepared batch, shared by every variant (nothing here is built inside the timing)."""

    images: Tensor  # (B, C, S, S) normalised
    images2: Tensor  # a second view, used only by the two_views variant
    context: Tensor  # (B, Kc) int64
    targets: Tensor  # (M, B, Kt) int64
    target_list: list[Tensor] = field(default_factory=list)  # lightly's / the official API: M tensors (B, Kt)


@dataclass
class Variant:
    """A named training step over the shared batches; ``step(batch)`` runs one full step."""

    name: str
    impl: str
    step: Callable[[Batch], float | None]  # the loss where the step has it at hand
    trainable_params: int
    notes: str = ""
    model: nn.Module | None = None  # ours: the CJEPA, for a lever that changes it after building
    autocast: torch.dtype | None = None  # ours: the step's autocast dtype (None: fp32)


def count_params(*modules: nn.Module) -> int:
    """Trainable parameters of ``modules`` (the frozen target is not counted)."""
    return sum(p.numel() for mod in modules for p in mod.parameters() if p.requires_grad)


def make_batches(cfg: Any, batch_size: int, count: int, data: str, seed: int) -> list[Batch]:
    """``count`` batches with masks for steps 0..count-1 (context length varies with the step).

    ``data="random"``: standard-normal images (the step's cost does not depend on pixel values,
    and nothing needs to be on disk). ``data="fashion_mnist"``: the first images of the training
    split, RandomResizedCrop + normalisation as in training (two independent crops).
    """
    from cjepa.masks import MultiBlockMaskGenerator

    m = cfg.model
    gen = MultiBlockMaskGenerator(m.img_size // m.patch_size, cfg.mask, seed=seed)
    g = torch.Generator().manual_seed(seed)
    if data == "fashion_mnist":
        from cjepa.data import dataset_stats, load_split
        from cjepa.data.transforms import train_views

        split = load_split(cfg.data, "train")
        mean, std = dataset_stats(cfg.data.dataset)
        if batch_size * count > len(split.labels):
            raise SystemExit(f"--batches {count} x --batch-size {batch_size} exceeds the training split")
    out = []
    for step in range(count):
        if data == "fashion_mnist":
            u8 = split.images[step * batch_size:(step + 1) * batch_size]
            views = [train_views(u8, m.img_size, cfg.data.crop_scale, mean, std, g, m.in_chans)
                     for _ in range(2)]
        else:
            views = [torch.randn(batch_size, m.in_chans, m.img_size, m.img_size, generator=g) for _ in range(2)]
        masks = gen(batch_size, step)
        out.append(Batch(views[0].contiguous(), views[1].contiguous(), masks.context, masks.targets,
                         [t.contiguous() for t in masks.targets.unbind(0)]))
    return out
