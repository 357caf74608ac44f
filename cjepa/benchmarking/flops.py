"""FLOPs: the one counter, the closed-form ViT step it is checked against, chip peaks and MFU.

The counter (``count_flops``) is torch's ``FlopCounterMode`` with scaled-dot-product attention
forced onto its math backend. Why forced: on the CPU, SDPA dispatches to
``_scaled_dot_product_flash_attention_for_cpu``, for which the counter has no formula, so it
silently counts attention as 0 (a tiny ViT's step on 4 images: 34.3 instead of 42.0 MFLOP); the math
backend computes the same attention with counted matmuls, on any device, whichever kernel the
model was set to (timm's explicit attention is matmuls too). tests/bench/test_gpu_check.py checks the count
against a hand computation. Convention (PaLM's MFU): matmuls, convolutions and attention,
forward + backward, no activation recomputation, no norms/softmax/elementwise, no optimizer or EMA.

``analytic_flops`` is the closed form of the same step, cheap enough for every timed batch's
token counts (the MFU numerator); ``step_flops`` counts and computes both on one batch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

# Dense bf16 peak TFLOP/s (no sparsity), by a substring of torch.cuda.get_device_name();
# first match wins, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("GH200", 989.4), ("H200", 989.4), ("H100", 989.4),
    ("H800", 989.4), ("B200", 2250.0), ("B100", 1750.0), ("A100", 312.0), ("A800", 312.0),
    ("L40S", 362.0), ("L40", 181.0), ("L4", 121.0), ("A10G", 125.0), ("A10", 125.0),
)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn()`` (forward, and backward if ``fn`` runs it), attention included."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return int(counter.get_total_flops())


def peak_tflops(device_name: str, override: float | None = None) -> tuple[float | None, str]:
    """The chip's dense bf16 peak and where it came from (``--peak-tflops`` wins)."""
    if override is not None:
        return float(override), "--peak-tflops"
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value, f"table entry {key!r} (dense bf16)"
    return None, f"unknown device {device_name!r}: pass --peak-tflops"


def mfu(flops_per_step: float, seconds_per_step: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: achieved model FLOP/s over the chip's peak (``peak`` in TFLOP/s)."""
    if peak is None or peak <= 0 or seconds_per_step <= 0:
        return None
    return flops_per_step / seconds_per_step / (peak * 1e12)


def vit_block_flops(n: int, d: int, mlp_ratio: float) -> float:
    """Forward FLOPs of one pre-norm ViT block on one sequence of n tokens of width d.

    qkv (3d^2) + proj (d^2) + MLP (2 r d^2) multiply-adds per token, times 2; attention scores
    and the weighted sum are 2 n^2 d each.
    """
    return 2.0 * n * d * d * (4 + 2 * mlp_ratio) + 4.0 * n * n * d


def patch_embed_flops(m: Any) -> tuple[float, float]:
    """Forward FLOPs per image of ``model.patch_embed`` (``m``: a ModelConfig): (the conv that reads
    the image, the convs after it). Every kind's convs; their norms, like all norms, are not counted.

    linear: one conv, kernel = stride = p; overlap: one conv, kernel 2p-1, stride p, on the same
    grid; conv_stem: log2(p) 3x3 stride-2 convs, widths ``stem_widths``, then a 1x1 conv to d.
    """
    from cjepa.model.patch_embed import stem_widths

    grid, d, p, kind = (m.img_size // m.patch_size) ** 2, m.embed_dim, m.patch_size, m.patch_embed
    if kind == "linear":
        return 2.0 * grid * m.in_chans * p * p * d, 0.0
    if kind == "overlap":
        return 2.0 * grid * m.in_chans * (2 * p - 1) ** 2 * d, 0.0
    side, c_in, convs = m.img_size, m.in_chans, []
    for width in stem_widths(p, d):
        side //= 2
        convs.append(2.0 * side * side * c_in * 9 * width)
        c_in = width
    return convs[0], sum(convs[1:]) + 2.0 * grid * c_in * d


def analytic_flops(cfg: Any, context_tokens: int, target_tokens: int) -> dict[str, float]:
    """Per-image FLOPs of one training step of ``cfg`` (modes ``off`` and ``pred_blocks``).

    Backward costs 2x forward everywhere except the patch embedding's conv on the image (its
    input needs no gradient: weight gradient only, 1x); a conv stem's later convs cost 2x as
    well. The target encoder runs forward only.
    """
    m, loss = cfg.model, cfg.loss
    mode = loss.vicreg_mode if loss.vicreg_on else "off"
    if mode not in ("off", "pred_blocks"):
        raise ValueError(f"analytic_flops: vicreg_mode {mode!r} is not modelled (only off and pred_blocks)")
    grid = (m.img_size // m.patch_size) ** 2
    d, p, r, kc, kt = m.embed_dim, m.pred_embed_dim, m.mlp_ratio, context_tokens, target_tokens
    nt = cfg.mask.num_targets
    on_image, later = patch_embed_flops(m)
    patch = on_image + later
    target = patch + m.depth * vit_block_flops(grid, d, r)
    context = m.depth * vit_block_flops(kc, d, r)  # blocks only; the patch conv is counted apart
    predictor = 2.0 * kc * d * p + nt * m.pred_depth * vit_block_flops(kc + kt, p, r) + 2.0 * nt * kt * p * d
    vicreg = 0.0
    if mode == "pred_blocks":
        w = loss.projector_dim or d
        vicreg = nt * 2.0 * (d * w + 2 * w * w)  # the projector MLP on M pooled vectors
        if loss.covariance:
            vicreg += nt * 2.0 * w * w  # the per-block covariance matmul, per image
    with_grad = context + predictor + vicreg
    total = target + 2 * on_image + 3 * later + 3 * with_grad
    return {"total": total, "target_encoder": target, "context_encoder_fwd": patch + context,
            "predictor_fwd": predictor, "vicreg_fwd": vicreg}


def step_flops(cfg: Any, batch: dict[str, Any], count_batch: int = 2) -> dict[str, float]:
    """Counted and analytic FLOPs per image of ``cfg``'s loss + backward on ``batch``'s mask shapes.

    Counted on a fresh fp32 CPU model with the first ``count_batch`` images (FLOPs are linear in
    the batch: attention is per image, and the masks keep their token counts when sliced).
    """
    from cjepa.masks import Masks
    from cjepa.method import CJEPA

    masks = batch["masks"]
    small = {"step": 0, "images": batch["images"][:count_batch].float().cpu(),
             "masks": Masks(masks.context[:count_batch].cpu(), masks.targets[:, :count_batch].cpu())}
    model = CJEPA(cfg)
    model.train()

    def loss_and_backward() -> None:
        model(small)[0].backward()

    counted = count_flops(loss_and_backward) / count_batch
    kc, kt = int(masks.context.shape[1]), int(masks.targets.shape[2])
    try:
        analytic = analytic_flops(cfg, kc, kt)["total"]
    except ValueError:
        analytic = float("nan")
    return {"counted": counted, "analytic": analytic, "context_tokens": kc, "target_tokens": kt,
            "num_targets": int(masks.targets.shape[0])}


def train_epoch_flops(cfg: Any, steps: int, images: int = 0) -> tuple[float, int]:
    """(FLOPs of one training epoch, steps per epoch), averaged over ``steps`` prepared batches of
    whole training steps (``train_step``: forward, backward, AdamW, EMA); ``images > 0``: an epoch
    of that many images (simulated, no data read)."""
    from cjepa.benchmarking.steps import make_batches
    from cjepa.data import StepBatchSampler, load_split
    from cjepa.engine.step import build_optimizer, train_step
    from cjepa.masks import Masks
    from cjepa.method import CJEPA

    torch.manual_seed(cfg.run.seed)
    model = CJEPA(cfg)
    optimizer = build_optimizer(model, cfg.optim)
    n = images or len(load_split(cfg.data, "train").labels)
    per_epoch = StepBatchSampler(n, cfg.optim.batch_size, cfg.run.seed).steps_per_epoch
    total = 0
    for i, b in enumerate(make_batches(cfg, cfg.optim.batch_size, steps, "random", cfg.run.seed)):
        batch = {"step": i, "images": b.images, "images2": b.images2,
                 "labels": torch.zeros(len(b.images), dtype=torch.long), "masks": Masks(b.context, b.targets)}
        total += count_flops(lambda batch=batch: train_step(model, optimizer, batch, cfg.optim.lr,
                                                            cfg.optim.weight_decay, 0.99))
    return total / steps * per_epoch, per_epoch


def evaluation_flops(cfg: Any) -> float:
    """FLOPs of one per-epoch evaluation (``Evaluator.evaluate``), baselines excluded (cached)."""
    from cjepa.engine.evaluation import Evaluator
    from cjepa.method import CJEPA

    cfg = copy.deepcopy(cfg)  # the caller's config stays as given
    cfg.eval.raw_baseline = cfg.eval.random_baseline = False
    torch.manual_seed(cfg.run.seed)
    model = CJEPA(cfg)
    evaluator = Evaluator(cfg, torch.device("cpu"), autocast_dtype=None)
    return float(count_flops(lambda: evaluator.evaluate(model)))


def simulated_evaluation_flops(cfg: Any) -> float:
    """One per-epoch evaluation without data: forward FLOPs of one image x its images x encoders."""
    from cjepa.method import CJEPA

    model = CJEPA(cfg)
    x = torch.randn(1, cfg.model.in_chans, cfg.model.img_size, cfg.model.img_size)
    per_image = count_flops(lambda: model.target(x))
    return float(per_image * (cfg.eval.train_samples + cfg.data.val_samples) * len(cfg.eval.encoders))
