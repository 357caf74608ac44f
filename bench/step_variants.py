"""Which training steps bench/step_throughput.py compares, and how each is built.

Ours are built exactly as the trainer builds them (``cjepa.engine.step.train_step`` on a
:class:`~cjepa.method.CJEPA`); the references (lightly's, the official I-JEPA's) live in their
own modules and are imported only when asked for, so that neither is needed to run ours.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from step_data import Batch, Variant, count_params

# Our variants: name -> dotted overrides applied on top of the config (method.md §3). The plain
# names train in fp32 (run.precision=auto would take bf16 on a native-bf16 CPU), like the official
# code on CPU, so that fp32 is compared with fp32.
OURS: dict[str, list[str]] = {
    "cjepa": ["loss.vicreg_mode=pred_blocks", "run.precision=fp32"],
    "ijepa": ["loss.beta_vicreg=0", "run.precision=fp32"],
    "cjepa_context_target": ["loss.vicreg_mode=context_target", "run.precision=fp32"],
    "cjepa_two_views": ["loss.vicreg_mode=two_views", "run.precision=fp32"],
    # bf16 autocast on CPU (the CPU presets' default where bf16 is native); run.attention=auto then
    # takes timm's explicit attention (cjepa/model/attention.py)
    "ijepa_bf16": ["loss.beta_vicreg=0", "run.precision=bf16"],
    "cjepa_context_target_bf16": ["loss.vicreg_mode=context_target", "run.precision=bf16"],
}
# Levers measured on top of our I-JEPA (issue 14): name -> (base variant, what is changed).
LEVERS: dict[str, tuple[str, str]] = {
    "ijepa_math_attn": ("ijepa", "timm's explicit softmax attention instead of F.scaled_dot_product_attention"),
    "ijepa_bf16_sdpa": ("ijepa_bf16", "bf16 autocast with F.scaled_dot_product_attention (run.attention=sdpa)"),
}
LIGHTLY = ("lightly_timm", "lightly_tv")
OFFICIAL = "official_ijepa"
OFFICIAL_BF16 = "official_ijepa_bf16"  # train.py's bf16 autocast branch: ratios at equal precision
ALL_VARIANTS = (*OURS, *LEVERS, OFFICIAL, OFFICIAL_BF16, *LIGHTLY)
DEFAULT_VARIANTS = ("cjepa", "ijepa", "ijepa_bf16", OFFICIAL, OFFICIAL_BF16, *LIGHTLY)


def build_ours(name: str, config: Path, overrides: Sequence[str], batch_size: int, seed: int) -> Variant:
    """One of our steps, built exactly as the trainer builds it (cjepa.engine.step.train_step)."""
    from cjepa.config import load_config
    from cjepa.engine.precision import resolve_autocast
    from cjepa.engine.step import build_optimizer, train_step
    from cjepa.method import CJEPA
    from cjepa.model import resolve_attention, set_attention

    cfg = load_config(config, [*overrides, *OURS[name], f"optim.batch_size={batch_size}"])
    if not name.startswith("ijepa") and not cfg.loss.vicreg_on:
        raise SystemExit(f"variant {name}: the config turns VICReg off (loss.beta_vicreg={cfg.loss.beta_vicreg}); "
                         "benchmark a C-JEPA config")
    torch.manual_seed(seed)
    model = CJEPA(cfg)
    cpu = torch.device("cpu")
    autocast = resolve_autocast(cfg, cpu)  # as the trainer: the precision and the attention kernel it implies
    set_attention(model, resolve_attention(cfg.run.attention, cpu, autocast))
    optimizer = build_optimizer(model, cfg.optim)
    model.train()
    lr, wd, momentum = cfg.optim.lr, cfg.optim.weight_decay, cfg.ema.start
    two_views = name == "cjepa_two_views"

    from cjepa.masks import Masks

    def step(b: Batch) -> float:
        batch: dict[str, Any] = {"step": 0, "images": b.images, "masks": Masks(b.context, b.targets)}
        if two_views:
            batch["images2"] = b.images2
        return train_step(model, optimizer, batch, lr, wd, momentum, autocast, cfg.optim.grad_clip)["loss"]

    mode = cfg.loss.vicreg_mode if cfg.loss.vicreg_on else "off (beta_vicreg=0)"
    precision = " bf16 autocast" if autocast is not None else ""
    return Variant(name, "ours", step, count_params(model), f"vicreg {mode}{precision}", model, autocast)


def build_lever(name: str, config: Path, overrides: Sequence[str], batch_size: int, seed: int) -> Variant:
    """Our step with one lever pulled; the same weights, optimizer and batches as its base variant."""
    base, what = LEVERS[name]
    v = build_ours(base, config, overrides, batch_size, seed)
    from cjepa.model import set_attention

    set_attention(v.model, "sdpa" if name == "ijepa_bf16_sdpa" else "math")
    return Variant(name, "ours", v.step, v.trainable_params, what, v.model, v.autocast)


def build(name: str, args: argparse.Namespace) -> Variant:
    """The variant ``name`` at the benchmark's config, overrides, batch size and seed."""
    common: tuple[Any, ...] = (args.config, args.override, args.batch_size, args.seed)
    if name in OURS:
        return build_ours(name, *common)
    if name in LEVERS:
        return build_lever(name, *common)
    if name in (OFFICIAL, OFFICIAL_BF16):
        from step_official import build_official

        if args.ijepa_src is None:
            raise SystemExit(f"variant {name} needs --ijepa-src DIR (a clone of facebookresearch/ijepa)")
        return build_official(args.ijepa_src, *common, bf16=name == OFFICIAL_BF16)
    import step_lightly

    return getattr(step_lightly, f"build_{name}")(*common)
