"""Training-step throughput: C-JEPA vs our I-JEPA vs the I-JEPA of the ``lightly`` package.

Why this exists: C-JEPA's selling point is "I-JEPA plus a cheap regulariser". The default
``pred_blocks`` VICReg reading adds a projector on M*B pooled vectors and a few batch statistics,
which should cost almost nothing next to the encoders; this benchmark checks that claim (goal:
<= 3 % slower than I-JEPA at identical settings) and checks that our I-JEPA step is not slower
than a public reference implementation (lightly's), so that a comparison of *methods* is not
confounded by a slow *implementation*.

What one "step" is, for every variant: target-encoder forward on the full image (no grad),
context-encoder + predictor forward, loss, backward, AdamW step, EMA update of the target.
Everything that is not the step (data loading, augmentation, mask drawing) is prepared before the
clock starts, and every variant consumes the *same* batches: the same images (random normal
tensors by default, or real Fashion-MNIST crops with ``--data fashion_mnist``) and the same
multi-block mask index tensors from ``cjepa.masks.MultiBlockMaskGenerator``.

Measurement: all variants live in one process with a fixed torch thread count. Each *round*
times ``--steps`` steps of every variant back to back, in an order rotated from round to round
(ABC, BCA, CAB, ...) so that neither drift nor position favours one variant. The table reports the
median images/s over rounds with its IQR and min-max, and ratios computed *per round* (variant /
reference in the same round) and then summarised by their median, which cancels slow drift of
the machine's speed (other processes, thermal state) that would otherwise leak into the ratios.

lightly runs from a separate venv (``bench/.venv-lightly``, see bench/README.md) so that the
project environment never depends on it. Started with a python that cannot import lightly, this
script re-executes itself under the venv's python when that venv exists (the venv is created
with ``--system-site-packages``, so it sees the same torch, timm and the editable cjepa), or
runs without the lightly variants and says how to create the venv.

Run ``python bench/step_throughput.py --help`` for the options.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO / "configs" / "cjepa_fmnist_cpu.yaml"
VENV = REPO / "bench" / ".venv-lightly"
VENV_PYTHON = VENV / "bin" / "python"
REEXEC_ENV = "CJEPA_BENCH_REEXECUTED"
VENV_HINT = (f"python -m venv --system-site-packages {VENV.relative_to(REPO)} && "
             f"{VENV.relative_to(REPO)}/bin/pip install -r bench/requirements-lightly.txt")

# Our variants: name -> dotted overrides applied on top of the config (method.md §3).
OURS: dict[str, list[str]] = {
    "cjepa": ["loss.vicreg_mode=pred_blocks"],
    "ijepa": ["loss.beta_vicreg=0"],
    "cjepa_context_target": ["loss.vicreg_mode=context_target"],
    "cjepa_two_views": ["loss.vicreg_mode=two_views"],
}
LIGHTLY = ("lightly_timm", "lightly_tv")
ALL_VARIANTS = (*OURS, *LIGHTLY)
DEFAULT_VARIANTS = ("cjepa", "ijepa", *LIGHTLY)
REFERENCE = "ijepa"  # ratio column 1
LIGHTLY_REFERENCE = "lightly_timm"  # ratio column 2: the closest settings lightly allows


# --------------------------------------------------------------------------- data


@dataclass
class Batch:
    """One prepared batch, shared by every variant (nothing here is built inside the timing)."""

    images: Tensor  # (B, C, S, S) normalised
    images2: Tensor  # a second view, used only by the two_views variant
    context: Tensor  # (B, Kc) int64
    targets: Tensor  # (M, B, Kt) int64
    target_list: list[Tensor] = field(default_factory=list)  # lightly's API: M tensors (B, Kt)


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


# --------------------------------------------------------------------------- variants


@dataclass
class Variant:
    """A named training step over the shared batches; ``step(batch)`` runs one full step."""

    name: str
    impl: str
    step: Callable[[Batch], None]
    trainable_params: int
    notes: str = ""


def _count(*modules: nn.Module) -> int:
    return sum(p.numel() for mod in modules for p in mod.parameters() if p.requires_grad)


def build_ours(name: str, config: Path, overrides: Sequence[str], batch_size: int, seed: int) -> Variant:
    """One of our steps, built exactly as the trainer builds it (cjepa.engine.step.train_step)."""
    from cjepa.config import load_config
    from cjepa.engine.step import build_optimizer, train_step
    from cjepa.method import CJEPA

    cfg = load_config(config, [*overrides, *OURS[name], f"optim.batch_size={batch_size}"])
    if name != "ijepa" and not cfg.loss.vicreg_on:
        raise SystemExit(f"variant {name}: the config turns VICReg off (loss.beta_vicreg={cfg.loss.beta_vicreg}); "
                         "benchmark a C-JEPA config")
    torch.manual_seed(seed)
    model = CJEPA(cfg)
    optimizer = build_optimizer(model, cfg.optim)
    model.train()
    lr, wd, momentum = cfg.optim.lr, cfg.optim.weight_decay, cfg.ema.start
    two_views = name == "cjepa_two_views"

    def step(b: Batch) -> None:
        from cjepa.masks import Masks

        batch: dict[str, Any] = {"step": 0, "images": b.images, "masks": Masks(b.context, b.targets)}
        if two_views:
            batch["images2"] = b.images2
        train_step(model, optimizer, batch, lr, wd, momentum, None, cfg.optim.grad_clip)

    mode = cfg.loss.vicreg_mode if cfg.loss.vicreg_on else "off (beta_vicreg=0)"
    return Variant(name, "ours", step, _count(model), f"vicreg {mode}")


def _lightly_step(encoder: nn.Module, target: nn.Module, predictor: nn.Module, cfg: Any,
                  encode: Callable[[nn.Module, Tensor, Tensor | None], Tensor]) -> Callable[[Batch], None]:
    """lightly's I-JEPA training step (its examples/pytorch/ijepa.py), with our hyper-parameters.

    Same loss (smooth L1 on the layer-normed target-encoder output, gathered at the target
    blocks), AdamW with the same lr/betas/weight decay and no decay on norms and biases
    (lightly's ``get_weight_decay_parameters``), and lightly's ``update_momentum`` for the EMA.
    """
    from lightly.models import utils

    decay, no_decay = utils.get_weight_decay_parameters([encoder, predictor])
    optimizer = torch.optim.AdamW(
        [{"params": [p for p in decay if p.requires_grad]},
         {"params": [p for p in no_decay if p.requires_grad], "weight_decay": 0.0}],
        lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay)
    criterion = nn.SmoothL1Loss()
    momentum = cfg.ema.start
    encoder.train()
    predictor.train()

    def step(b: Batch) -> None:
        masks_enc = [b.context]
        masks_pred = b.target_list
        z = encode(encoder, b.images, b.context)
        z = predictor(z, masks_enc, masks_pred)
        with torch.no_grad():
            h = encode(target, b.images, None)
            h = F.layer_norm(h, (h.size(-1),))
            h = utils.apply_masks(h, masks_pred)
            h = utils.repeat_interleave_batch(h, len(b.images), repeat=len(masks_enc))
        loss = criterion(z, h)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        utils.update_momentum(encoder, target, momentum)
        if not torch.isfinite(loss):  # one sync per step, as our step's logging does
            raise RuntimeError(f"lightly step: loss is {float(loss)}")

    return step


def build_lightly_timm(config: Path, overrides: Sequence[str], batch_size: int, seed: int) -> Variant:
    """lightly's timm modules: MaskedVisionTransformerTIMM encoder + IJEPAPredictorTIMM.

    This is the closest lightly gets to our model: timm ``Block``s like ours, no class token,
    fixed 2-D sin-cos positions, predictor of the same width/depth/heads/MLP ratio.
    """
    from lightly.models.modules import IJEPAPredictorTIMM, MaskedVisionTransformerTIMM
    from timm.models.vision_transformer import VisionTransformer

    from cjepa.config import load_config

    cfg = load_config(config, [*overrides, "loss.beta_vicreg=0", f"optim.batch_size={batch_size}"])
    m = cfg.model
    torch.manual_seed(seed)
    vit = VisionTransformer(img_size=m.img_size, patch_size=m.patch_size, in_chans=m.in_chans, num_classes=0,
                            embed_dim=m.embed_dim, depth=m.depth, num_heads=m.num_heads, mlp_ratio=m.mlp_ratio,
                            qkv_bias=True, class_token=False, global_pool="", drop_path_rate=m.drop_path_rate)
    encoder = MaskedVisionTransformerTIMM(vit=vit, pos_embed_initialization="sincos")
    grid = (m.img_size // m.patch_size) ** 2
    predictor = IJEPAPredictorTIMM(num_patches=grid, depth=m.pred_depth, mlp_dim=m.embed_dim,
                                   predictor_embed_dim=m.pred_embed_dim,
                                   num_heads=m.pred_num_heads or m.num_heads, mlp_ratio=m.mlp_ratio,
                                   drop_path_rate=m.drop_path_rate)
    target = copy.deepcopy(encoder)
    for p in target.parameters():
        p.requires_grad_(False)

    def encode(enc: nn.Module, images: Tensor, keep: Tensor | None) -> Tensor:
        return enc.encode(images, idx_keep=keep)

    step = _lightly_step(encoder, target, predictor, cfg, encode)
    return Variant("lightly_timm", "lightly", step, _count(encoder, predictor),
                   "MaskedVisionTransformerTIMM + IJEPAPredictorTIMM")


def build_lightly_tv(config: Path, overrides: Sequence[str], batch_size: int, seed: int) -> Variant:
    """lightly's documented I-JEPA (examples/pytorch/ijepa.py): torchvision ViT based.

    ``IJEPABackbone.from_vit`` on a torchvision ViT of our sizes and ``IJEPAPredictor``. Two
    adjustments so that the work matches ours, each using the hooks lightly itself uses:
    the patch conv is replaced by one with ``in_chans`` input channels (torchvision's ViT is
    hard-wired to RGB), and the predictor's blocks come from a torchvision ``Encoder`` of the
    predictor width with MLP ratio 4 (``IJEPAPredictor.from_vit_encoder`` does the same copy,
    but hard-codes a 768-wide predictor; the plain constructor ties the predictor's MLP width
    to the encoder width). The unused classification head is removed.
    """
    from lightly.models.modules.ijepa import IJEPABackbone, IJEPAPredictor
    from torchvision.models.vision_transformer import Encoder, VisionTransformer

    from cjepa.config import load_config

    cfg = load_config(config, [*overrides, "loss.beta_vicreg=0", f"optim.batch_size={batch_size}"])
    m = cfg.model
    torch.manual_seed(seed)
    mlp = int(m.embed_dim * m.mlp_ratio)
    vit = VisionTransformer(image_size=m.img_size, patch_size=m.patch_size, num_layers=m.depth,
                            num_heads=m.num_heads, hidden_dim=m.embed_dim, mlp_dim=mlp)
    vit.conv_proj = nn.Conv2d(m.in_chans, m.embed_dim, kernel_size=m.patch_size, stride=m.patch_size)
    encoder = IJEPABackbone.from_vit(vit)
    encoder.heads = nn.Identity()
    grid = (m.img_size // m.patch_size) ** 2
    heads = m.pred_num_heads or m.num_heads
    predictor = IJEPAPredictor(seq_length=grid, num_layers=m.pred_depth, num_heads=heads,
                               hidden_dim=m.pred_embed_dim, predictor_embed_dim=m.pred_embed_dim,
                               num_patches=grid, mlp_dim=m.embed_dim, dropout=0.0, attention_dropout=0.0)
    blocks = Encoder(seq_length=grid, num_layers=m.pred_depth, num_heads=heads, hidden_dim=m.pred_embed_dim,
                     mlp_dim=int(m.pred_embed_dim * m.mlp_ratio), dropout=0.0, attention_dropout=0.0)
    predictor.layers, predictor.ln = blocks.layers, blocks.ln
    predictor.pos_embedding.requires_grad_(False)  # torchvision Encoder's, unused by IJEPAPredictor
    target = copy.deepcopy(encoder)
    for p in target.parameters():
        p.requires_grad_(False)

    def encode(enc: nn.Module, images: Tensor, keep: Tensor | None) -> Tensor:
        return enc(images, keep)

    step = _lightly_step(encoder, target, predictor, cfg, encode)
    return Variant("lightly_tv", "lightly", step, _count(encoder, predictor),
                   "IJEPABackbone (torchvision ViT) + IJEPAPredictor")


def build(name: str, args: argparse.Namespace) -> Variant:
    if name in OURS:
        return build_ours(name, args.config, args.override, args.batch_size, args.seed)
    if name == "lightly_timm":
        return build_lightly_timm(args.config, args.override, args.batch_size, args.seed)
    return build_lightly_tv(args.config, args.override, args.batch_size, args.seed)


# --------------------------------------------------------------------------- timing


def run_rounds(variants: list[Variant], batches: list[Batch], steps: int, warmup: int, repeats: int,
               batch_size: int, log: Callable[[str], None]) -> dict[str, list[float]]:
    """images/s per variant per round; rounds rotate the order of the variants."""
    for v in variants:  # warm-up: allocator, autograd graph caches, AdamW state creation
        for i in range(warmup):
            v.step(batches[i % len(batches)])
    ips: dict[str, list[float]] = {v.name: [] for v in variants}
    n = len(variants)
    for r in range(repeats):
        order = [variants[(r + k) % n] for k in range(n)]
        line = []
        for v in order:
            gc.collect()
            gc.disable()  # no collector pauses inside the timed block
            t0 = time.perf_counter()
            for i in range(steps):
                v.step(batches[(r * steps + i) % len(batches)])
            elapsed = time.perf_counter() - t0
            gc.enable()
            ips[v.name].append(steps * batch_size / elapsed)
            line.append(f"{v.name} {ips[v.name][-1]:.0f}")
        log(f"round {r + 1}/{repeats}: " + ", ".join(line) + " img/s")
    return ips


def _quartiles(xs: Sequence[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def bootstrap_ci(xs: Sequence[float], resamples: int = 4000, seed: int = 0) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of the median: how far the median itself may be off.

    Why next to the IQR: the IQR says how much single rounds scatter on a shared machine; the
    goals are about the *typical* ratio, and that is known much better than one round.
    """
    import random

    rng = random.Random(seed)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(resamples))
    return meds[int(0.025 * resamples)], meds[int(0.975 * resamples) - 1]


def summarise(ips: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Median, IQR, min-max of images/s; median, IQR, min-max and 95 % CI of per-round ratios."""
    out: dict[str, dict[str, Any]] = {}
    for name, xs in ips.items():
        q1, q3 = _quartiles(xs)
        row: dict[str, Any] = {"median": statistics.median(xs), "q1": q1, "q3": q3, "min": min(xs), "max": max(xs),
                               "rounds": xs}
        for key, ref in (("vs_ijepa", REFERENCE), ("vs_lightly", LIGHTLY_REFERENCE), ("vs_lightly_tv", "lightly_tv")):
            if ref in ips and ref != name:
                ratios = [a / b for a, b in zip(xs, ips[ref], strict=True)]
                r1, r3 = _quartiles(ratios)
                lo, hi = bootstrap_ci(ratios)
                row[key] = {"median": statistics.median(ratios), "q1": r1, "q3": r3,
                            "min": min(ratios), "max": max(ratios), "ci95": [lo, hi]}
        out[name] = row
    return out


def _ratio(cell: dict[str, float] | None) -> str:
    if cell is None:
        return "-"
    return f"{cell['median']:.3f} [{cell['q1']:.3f}, {cell['q3']:.3f}]"


def table(summary: dict[str, dict[str, Any]], variants: list[Variant]) -> str:
    """Markdown table: one row per variant."""
    head = ("| variant | impl | trainable params | img/s median | IQR | min-max | ratio vs ijepa (ours) "
            "[IQR] | ratio vs lightly_timm [IQR] | ratio vs lightly_tv [IQR] |")
    rows = [head, "|" + "---|" * 9]
    for v in variants:
        s = summary[v.name]
        rows.append(f"| {v.name} | {v.impl} | {v.trainable_params:,} | {s['median']:.0f} | "
                    f"{s['q1']:.0f}-{s['q3']:.0f} | {s['min']:.0f}-{s['max']:.0f} | "
                    f"{_ratio(s.get('vs_ijepa'))} | {_ratio(s.get('vs_lightly'))} | {_ratio(s.get('vs_lightly_tv'))} |")
    return "\n".join(rows)


def verdict(summary: dict[str, dict[str, Any]]) -> list[str]:
    """The two goals of the benchmark, read from the per-round ratios and their 95 % CI.

    A goal is "met" when the whole CI satisfies it, "MISSED" when the whole CI violates it, and
    "not resolved" when the CI straddles the threshold (then the median's side is stated).
    """
    lines = []
    c = summary.get("cjepa", {}).get("vs_ijepa")
    if c is not None:
        over = 100 * (1 / c["median"] - 1)
        lo, hi = (100 * (1 / r - 1) for r in reversed(c["ci95"]))
        iq_lo, iq_hi = 100 * (1 / c["q3"] - 1), 100 * (1 / c["q1"] - 1)
        ok = ("met" if hi <= 3.0 else "MISSED" if lo > 3.0
              else f"not resolved (median {'within' if over <= 3.0 else 'above'} the goal)")
        lines.append(f"VICReg (pred_blocks) step-time overhead vs I-JEPA: {over:+.1f} % (95 % CI {lo:+.1f} .. "
                     f"{hi:+.1f} %, IQR of rounds {iq_lo:+.1f} .. {iq_hi:+.1f} %); goal <= 3 %: {ok}")
    for ref in ("lightly_timm", "lightly_tv"):
        key = "vs_lightly" if ref == LIGHTLY_REFERENCE else "vs_lightly_tv"
        r = summary.get("ijepa", {}).get(key)
        if r is not None:
            lo, hi = r["ci95"]
            ok = ("met" if lo >= 1.0 else "MISSED" if hi < 1.0
                  else f"not resolved (median {'above' if r['median'] >= 1 else 'below'} 1)")
            lines.append(f"our I-JEPA / {ref}: {r['median']:.3f}x (95 % CI {lo:.3f} .. {hi:.3f}, IQR of rounds "
                         f"{r['q1']:.3f} .. {r['q3']:.3f}); goal >= 1: {ok}")
    return lines


# --------------------------------------------------------------------------- VICReg breakdown


def vicreg_breakdown(args: argparse.Namespace, batches: list[Batch], reps: int) -> dict[str, float]:
    """Median milliseconds of the parts that pred_blocks adds to an I-JEPA step.

    Timed in isolation on the real shapes: the projector forward on the pooled predictions,
    ``vicreg_blocks``, the weighting, and their backward (from a leaf standing in for the
    predictor output, so no encoder/predictor work is included); plus the AdamW step and EMA
    over the projector's parameters alone (the EMA does not touch the projector). For context,
    also two costs of every step of ours: ``clip_grad_norm_`` and AdamW over all parameters
    (torch's CPU default, a per-tensor loop, and ``foreach=True``), and the M-fold copies our
    step makes to gather target tokens and target positions vs a copy-free gather.
    """
    from cjepa.config import load_config
    from cjepa.losses import vicreg_blocks
    from cjepa.method import CJEPA

    cfg = load_config(args.config, [*args.override, *OURS["cjepa"], f"optim.batch_size={args.batch_size}"])
    torch.manual_seed(args.seed)
    online = CJEPA(cfg)
    online.train()
    projector = online.regularizer.projector  # pred_blocks
    b = batches[0]
    with torch.no_grad():
        pred = online.predictor(online.encoder(b.images, b.context), b.context, b.targets)
    m_, bs = pred.shape[:2]
    proj_opt = torch.optim.AdamW(projector.parameters(), lr=cfg.optim.lr)

    def timed(fn: Callable[[], Any]) -> float:
        for _ in range(3):
            fn()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return 1000 * statistics.median(ts)

    leaf = pred.detach().requires_grad_(True)

    def proj_fwd() -> Tensor:
        return projector(leaf.mean(dim=2).reshape(m_ * bs, -1)).view(m_, bs, -1)

    def terms_fwd(z: Tensor) -> Tensor:
        return vicreg_blocks(z, cfg.loss).weighted(cfg.loss)

    z0 = proj_fwd().detach().requires_grad_(True)

    def full() -> None:
        (cfg.loss.beta_vicreg * terms_fwd(proj_fwd())).backward()
        leaf.grad = None
        projector.zero_grad(set_to_none=True)

    out = {
        "projector_fwd_ms": timed(proj_fwd),
        "vicreg_terms_fwd_ms": timed(lambda: terms_fwd(z0)),
        "vicreg_terms_fwd_bwd_ms": timed(lambda: terms_fwd(z0).backward()),
        "projector_plus_terms_fwd_bwd_ms": timed(full),
    }
    params = [p for p in online.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    out["adamw_projector_params_ms"] = timed(proj_opt.step)
    # Step costs that are not VICReg but differ from lightly's loop (context for the ratios):
    # train_step always calls clip_grad_norm_ (max_norm=inf when optim.grad_clip=0, for the log).
    out["clip_grad_norm_inf_all_params_ms"] = timed(
        lambda: torch.nn.utils.clip_grad_norm_(params, float("inf")))
    for foreach in (False, True):
        opt = torch.optim.AdamW(params, lr=cfg.optim.lr, foreach=foreach)
        out[f"adamw_all_params_foreach_{foreach}_ms".lower()] = timed(opt.step)
    # The M-fold copies our step makes to gather target tokens / target positions (the lines of
    # cjepa/method/cjepa.py:target_blocks and cjepa/model/vit.py:Predictor.forward), next to a
    # copy-free indexed gather that gives bit-identical tensors.
    from cjepa.model import gather_tokens

    with torch.no_grad():
        h = F.layer_norm(online.encoder(b.images), (cfg.model.embed_dim,))
    pos = online.predictor.pos_embed
    tm, tb, tk = b.targets.shape
    rows = torch.arange(tb)[None, :, None]
    flat = b.targets.reshape(tm * tb, tk)
    assert torch.equal(gather_tokens(h.repeat(tm, 1, 1), flat).view(tm, tb, tk, -1), h[rows, b.targets])
    assert torch.equal(gather_tokens(pos.expand(tb, -1, -1).repeat(tm, 1, 1), flat), pos[0][flat])
    out["target_gather_repeat_ms"] = timed(lambda: gather_tokens(h.repeat(tm, 1, 1), flat))
    out["target_gather_indexed_ms"] = timed(lambda: h[rows, b.targets])
    out["pred_pos_gather_repeat_ms"] = timed(lambda: gather_tokens(pos.expand(tb, -1, -1).repeat(tm, 1, 1), flat))
    out["pred_pos_gather_indexed_ms"] = timed(lambda: pos[0][flat])
    return out


def profile_variants(variants: list[Variant], batches: list[Batch], steps: int, out_dir: Path,
                     top: int = 12) -> None:
    """torch.profiler tables (self CPU time per op) of ``steps`` steps of each variant.

    Why: when two steps that do the same maths differ in speed, the op table shows where
    (copies, gathers, optimizer kernels, ...). Profiling inflates small ops, so the tables are
    for attribution only; the throughput numbers come from the unprofiled rounds.
    """
    from torch.profiler import ProfilerActivity, profile

    out_dir.mkdir(parents=True, exist_ok=True)
    for v in variants:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(steps):
                v.step(batches[i % len(batches)])
        text = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=60)
        (out_dir / f"{v.name}.txt").write_text(text)
        print(f"\n== {v.name}: top {top} ops by self CPU time over {steps} steps ({out_dir / v.name}.txt)")
        print("\n".join(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top).splitlines()[:top + 4]))


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="cjepa YAML config")
    p.add_argument("override", nargs="*", help="dotted overrides, e.g. model.depth=6")
    p.add_argument("--batch-size", type=int, default=0, help="0: the config's optim.batch_size")
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant per round")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps per variant before the rounds")
    p.add_argument("--repeats", type=int, default=15, help="rounds (each times every variant once)")
    p.add_argument("--batches", type=int, default=20, help="distinct prepared batches, cycled")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for every variant")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"comma list from {', '.join(ALL_VARIANTS)}; 'all' for every one")
    p.add_argument("--data", choices=("random", "fashion_mnist"), default="random",
                   help="random normal images, or real Fashion-MNIST training crops")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-lightly", action="store_true", help="skip the lightly variants (no re-exec)")
    p.add_argument("--breakdown", action="store_true",
                   help="also time the VICReg (pred_blocks) parts of the step in isolation")
    p.add_argument("--profile", type=Path, default=None,
                   help="also write torch.profiler op tables of --steps steps per variant into this folder")
    p.add_argument("--json", type=Path, default=None, help="write all numbers and metadata here")
    p.add_argument("--report", type=Path, default=None,
                   help="re-summarise the rounds saved by an earlier --json run (no measuring)")
    return p.parse_args(argv)


def _lightly_available() -> bool:
    return importlib.util.find_spec("lightly") is not None


def maybe_reexec(args: argparse.Namespace, argv: Sequence[str]) -> str | None:
    """Run under the lightly venv when lightly variants are asked for and this python lacks lightly.

    Returns a note when the lightly variants must be skipped (None when they can run).
    """
    wants = any(v in LIGHTLY for v in args.variants)
    if not wants or _lightly_available():
        return None
    if VENV_PYTHON.exists() and not os.environ.get(REEXEC_ENV):
        print(f"[step_throughput] lightly is not importable here; re-running under {VENV_PYTHON}", flush=True)
        env = {**os.environ, REEXEC_ENV: "1"}
        os.execve(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *argv], env)
    return (f"lightly is not importable (and {VENV_PYTHON} is missing or lacks it): the lightly variants are "
            f"skipped. To compare against lightly, create the venv from the repository root:\n    {VENV_HINT}")


def machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "platform": platform.platform()}


def report(path: Path) -> int:
    """Print the table and verdict of a saved run, recomputed from its per-round images/s."""
    saved = json.loads(path.read_text())
    ips = {name: row["rounds"] for name, row in saved["summary"].items()}
    variants = [Variant(name, v["impl"], lambda b: None, v["trainable_params"], v["notes"])
                for name, v in saved["variants"].items()]
    for k, v in saved["meta"].items():
        print(f"{k}: {v}")
    summary = summarise(ips)
    print()
    print(table(summary, variants))
    print()
    print("\n".join(verdict(summary)))
    for k, v in saved.get("vicreg_breakdown_ms", {}).items():
        print(f"  {k:34s} {v:8.2f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.report:
        return report(args.report)
    names = ALL_VARIANTS if args.variants == "all" else tuple(v.strip() for v in args.variants.split(",") if v)
    unknown = [v for v in names if v not in ALL_VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(ALL_VARIANTS)}")
    if args.no_lightly:
        names = tuple(v for v in names if v not in LIGHTLY)
    args.variants = names
    note = maybe_reexec(args, argv)
    if note:
        print(f"[step_throughput] NOTE: {note}", flush=True)
        names = tuple(v for v in names if v not in LIGHTLY)

    torch.set_num_threads(args.threads)
    from cjepa.config import load_config

    base = load_config(args.config, list(args.override))
    if args.batch_size <= 0:
        args.batch_size = base.optim.batch_size
    meta = {"date_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python bench/step_throughput.py " + " ".join(argv),
            "torch_threads": torch.get_num_threads(), "batch_size": args.batch_size, "steps": args.steps,
            "warmup": args.warmup, "repeats": args.repeats, "data": args.data, "config": str(args.config),
            "overrides": list(args.override), "variants": list(names), **machine()}
    if any(v in LIGHTLY for v in names):
        import lightly

        meta["lightly"] = lightly.__version__
    import timm

    meta["timm"] = timm.__version__
    if note:
        meta["note"] = note
    for k in ("date_utc", "cpu", "logical_cpus", "torch", "timm", "lightly", "torch_threads", "batch_size", "data"):
        if k in meta:
            print(f"{k}: {meta[k]}")

    batches = make_batches(base, args.batch_size, args.batches, args.data, args.seed)
    kc = sorted({b.context.shape[1] for b in batches})
    kt = sorted({b.targets.shape[2] for b in batches})
    print(f"masks: {batches[0].targets.shape[0]} targets, context tokens {kc[0]}-{kc[-1]}, "
          f"target tokens {kt[0]}-{kt[-1]} per block (over {len(batches)} batches)")
    variants = [build(n, args) for n in names]
    for v in variants:
        print(f"  {v.name:22s} {v.impl:8s} {v.trainable_params:>9,} trainable params  {v.notes}")

    ips = run_rounds(variants, batches, args.steps, args.warmup, args.repeats, args.batch_size,
                     lambda s: print(s, flush=True))
    summary = summarise(ips)
    print()
    print(table(summary, variants))
    print()
    lines = verdict(summary)
    for line in lines:
        print(line)
    result: dict[str, Any] = {"meta": meta, "summary": summary, "verdict": lines,
                              "variants": {v.name: {"impl": v.impl, "trainable_params": v.trainable_params,
                                                    "notes": v.notes} for v in variants}}
    if args.breakdown:
        bd = vicreg_breakdown(args, batches, reps=max(5, args.repeats))
        result["vicreg_breakdown_ms"] = bd
        print("\nVICReg (pred_blocks) parts in isolation, median ms:")
        for k, v in bd.items():
            print(f"  {k:34s} {v:8.2f}")
        if "ijepa" in summary:
            step_ms = 1000 * args.batch_size / summary["ijepa"]["median"]
            print(f"  (our I-JEPA step: {step_ms:.1f} ms)")
            result["ijepa_step_ms"] = step_ms
    if args.profile:
        profile_variants(variants, batches, args.steps, args.profile)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
