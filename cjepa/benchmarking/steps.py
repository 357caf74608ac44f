"""Training steps to time: the shared prepared batches, and our step built as the trainer builds it.

Why in one place: the step benchmark (``bench/step_throughput.py``, every variant and reference),
the GPU check's step stage and the FLOP counts consume the *same* batches (the same images and the
same multi-block mask index tensors), and our step is built once, the trainer's way
(``cjepa.engine.trainer._build``: the method, the autocast policy and the attention kernel it
implies, the optimizer; ``cjepa.engine.step.train_step``), on whatever device.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

# Our variants: name -> dotted overrides on top of the config (method.md §3). The plain names train
# in fp32 (run.precision=auto would take bf16 on a native-bf16 CPU), like the official code on CPU.
OURS: dict[str, list[str]] = {
    "cjepa": ["loss.vicreg_mode=pred_blocks", "run.precision=fp32"],
    "ijepa": ["loss.beta_vicreg=0", "run.precision=fp32"],
    "cjepa_context_target": ["loss.vicreg_mode=context_target", "run.precision=fp32"],
    "cjepa_two_views": ["loss.vicreg_mode=two_views", "run.precision=fp32"],
    # bf16 autocast on CPU; run.attention=auto then takes timm's explicit attention (cjepa/model/attention.py)
    "ijepa_bf16": ["loss.beta_vicreg=0", "run.precision=bf16"],
    "cjepa_context_target_bf16": ["loss.vicreg_mode=context_target", "run.precision=bf16"],
}
# Levers on top of one of ours (issue 14): name -> (base variant, attention kernel, what is changed).
LEVERS: dict[str, tuple[str, str, str]] = {
    "ijepa_math_attn": ("ijepa", "math", "timm's explicit softmax attention instead of F.scaled_dot_product_attention"),
    "ijepa_bf16_sdpa": ("ijepa_bf16", "sdpa", "bf16 autocast with F.scaled_dot_product_attention (run.attention=sdpa)"),
}


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


def _views(cfg: Any, batch_size: int, count: int, data: str, g: torch.Generator) -> list[list[Tensor]]:
    m = cfg.model
    if data != "fashion_mnist":
        return [[torch.randn(batch_size, m.in_chans, m.img_size, m.img_size, generator=g) for _ in range(2)]
                for _ in range(count)]
    from cjepa.data import dataset_stats, load_split
    from cjepa.data.transforms import train_views

    split = load_split(cfg.data, "train")
    mean, std = dataset_stats(cfg.data.dataset)
    if batch_size * count > len(split.labels):
        raise SystemExit(f"--batches {count} x --batch-size {batch_size} exceeds the training split")
    return [[train_views(split.images[i * batch_size:(i + 1) * batch_size], m.img_size, cfg.data.crop_scale,
                         mean, std, g, m.in_chans) for _ in range(2)] for i in range(count)]


def make_batches(cfg: Any, batch_size: int, count: int, data: str, seed: int) -> list[Batch]:
    """``count`` batches with masks for steps 0..count-1 (context length varies with the step).

    ``data="random"``: standard-normal images (the step's cost does not depend on pixel values,
    and nothing needs to be on disk). ``data="fashion_mnist"``: the first images of the training
    split, RandomResizedCrop + normalisation as in training (two independent crops).
    """
    from cjepa.masks import MultiBlockMaskGenerator

    if cfg.mask.context_views != 1:  # the official collator's batch shape, which every step here compares with
        raise SystemExit(f"mask.context_views={cfg.mask.context_views}: the step benchmarks time one context "
                         "view per image (the official I-JEPA step's shape); benchmark a K > 1 run with "
                         "cjepa train's img_per_s")
    gen = MultiBlockMaskGenerator(cfg.model.img_size // cfg.model.patch_size, cfg.mask, seed=seed)
    views = _views(cfg, batch_size, count, data, torch.Generator().manual_seed(seed))
    out = []
    for step, (a, b) in enumerate(views):
        masks = gen(batch_size, step)
        out.append(Batch(a.contiguous(), b.contiguous(), masks.context, masks.targets,
                         [t.contiguous() for t in masks.targets.unbind(0)]))
    return out


def trainer_step(cfg: Any, device: torch.device, compile_: bool = False, seed: int = 0
                 ) -> tuple[nn.Module, torch.dtype | None, Callable[[dict[str, Any]], dict[str, float]]]:
    """(model, autocast dtype, ``step(batch) -> logs``): the trainer's method, precision, attention
    kernel and optimizer on ``device``. ``compile_``: the online network and target encoder
    ``torch.compile``d in place with ``dynamic=True`` (the context length changes every step)."""
    from cjepa.engine.precision import resolve_autocast
    from cjepa.engine.step import build_optimizer, train_step
    from cjepa.method import CJEPA
    from cjepa.model import resolve_attention, set_attention

    torch.manual_seed(seed)
    model = CJEPA(cfg).to(device)
    autocast = resolve_autocast(cfg, device)
    set_attention(model, resolve_attention(cfg.run.attention, device, autocast))
    optimizer = build_optimizer(model, cfg.optim)
    model.train()
    if compile_:
        model.compile(dynamic=True)
    lr, wd, momentum = cfg.optim.lr, cfg.optim.weight_decay, cfg.ema.start

    def step(batch: dict[str, Any]) -> dict[str, float]:
        return train_step(model, optimizer, batch, lr, wd, momentum, autocast, cfg.optim.grad_clip)

    return model, autocast, step


def build_ours(name: str, config: Path, overrides: Sequence[str], batch_size: int, seed: int) -> Variant:
    """One of ``OURS`` (or a lever of ``LEVERS``) on the CPU over the shared batches."""
    from cjepa.config import load_config
    from cjepa.masks import Masks
    from cjepa.model import set_attention

    base, kernel, what = LEVERS.get(name, (name, "", ""))
    cfg = load_config(config, [*overrides, *OURS[base], f"optim.batch_size={batch_size}"])
    if not base.startswith("ijepa") and not cfg.loss.vicreg_on:
        raise SystemExit(f"variant {name}: the config turns VICReg off (loss.beta_vicreg={cfg.loss.beta_vicreg}); "
                         "benchmark a C-JEPA config")
    model, autocast, train = trainer_step(cfg, torch.device("cpu"), seed=seed)
    if kernel:
        set_attention(model, kernel)
    two_views = base == "cjepa_two_views"

    def step(b: Batch) -> float:
        batch: dict[str, Any] = {"step": 0, "images": b.images, "masks": Masks(b.context, b.targets)}
        if two_views:
            batch["images2"] = b.images2
        return train(batch)["loss"]

    mode = cfg.loss.vicreg_mode if cfg.loss.vicreg_on else "off (beta_vicreg=0)"
    notes = what or f"vicreg {mode}{' bf16 autocast' if autocast is not None else ''}"
    return Variant(name, "ours", step, count_params(model), notes, model, autocast)
