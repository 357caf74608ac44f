"""One C-JEPA training step: targets, online forward, objective, backward, optimizer, EMA.

The objective reads the VICReg mode from the config (method.md §3):
``pred_blocks`` compares the projected, pooled predictions of the M target blocks pairwise;
``context_target`` compares the pooled context tokens with the pooled target-encoder output;
``two_views`` runs standard VICReg between two augmented views' pooled context tokens.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cjepa.config import Config
from cjepa.errors import TrainingError
from cjepa.losses import jepa_loss, total_loss, vicreg_blocks, vicreg_pair, vicreg_single
from cjepa.model import OnlineNetwork, ema_update, gather_tokens


def unwrap(module: nn.Module) -> OnlineNetwork:
    """The OnlineNetwork inside a DDP wrapper (or the module itself)."""
    return getattr(module, "module", module)  # type: ignore[return-value]


@torch.no_grad()
def target_tokens(target: nn.Module, images: Tensor, target_idx: Tensor) -> tuple[Tensor, Tensor]:
    """Layer-normed target-encoder tokens of each target block (M, B, Kt, D), and the raw output.

    The target encoder sees the full image; the blocks are cut from its *output*.
    """
    h = target(images)
    h_ln = F.layer_norm(h, (h.shape[-1],))
    m, b, kt = target_idx.shape
    blocks = gather_tokens(h_ln.repeat(m, 1, 1), target_idx.reshape(m * b, kt))
    return blocks.view(m, b, kt, -1), h


def compute_loss(online: nn.Module, target: nn.Module, batch: dict[str, Any], cfg: Config
                 ) -> tuple[Tensor, dict[str, float]]:
    """The C-JEPA objective for one batch; returns the loss and float logs (one device sync)."""
    masks = batch["masks"]
    images = batch["images"]
    tgt, h = target_tokens(target, images, masks.targets)
    out = online(images, masks.context, masks.targets, batch.get("images2"))
    jepa = jepa_loss(out.pred.float(), tgt.float(), cfg.loss.jepa)
    terms = None
    # VICReg statistics (variances, covariance) in fp32 even under bf16 autocast.
    autocast_off = torch.autocast(images.device.type, enabled=False) if images.is_cuda else contextlib.nullcontext()
    with autocast_off:
        if out.z is not None:
            terms = vicreg_blocks(out.z.float(), cfg.loss)
        elif out.context_pooled is not None:
            terms = vicreg_single(out.context_pooled.float(), h.mean(dim=1).float(), cfg.loss)
        elif out.z_views is not None:
            terms = vicreg_pair(out.z_views[0].float(), out.z_views[1].float(), cfg.loss)
    return total_loss(jepa, terms, cfg.loss)


def build_optimizer(online: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    """AdamW; biases and 1-D parameters (norms) get no weight decay, as in I-JEPA."""
    decay, no_decay = [], []
    for name, p in online.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim == 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "apply_wd": True},
              {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=cfg.optim.betas,
                             weight_decay=cfg.optim.weight_decay)


def set_hyperparams(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group.get("apply_wd"):
            group["weight_decay"] = weight_decay


def train_step(online: nn.Module, target: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, Any],
               cfg: Config, lr: float, weight_decay: float, momentum: float,
               autocast_dtype: torch.dtype | None) -> dict[str, float]:
    """Forward, backward, AdamW step, then the EMA update of the target encoder."""
    set_hyperparams(optimizer, lr, weight_decay)
    device_type = batch["images"].device.type
    ctx = (torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype is not None
           else contextlib.nullcontext())
    with ctx:
        loss, logs = compute_loss(online, target, batch, cfg)
    if not math.isfinite(logs["loss"]):
        raise TrainingError(f"loss is {logs['loss']} at step {batch['step']} ({logs}); "
                            "lower optim.lr or check the loss coefficients")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.optim.grad_clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(online.parameters(), cfg.optim.grad_clip)
    else:  # the logged norm only: clip_grad_norm_ would also rescale every gradient by 1
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in online.parameters() if p.grad is not None])
    optimizer.step()
    ema_update(target, unwrap(online).encoder, momentum)
    logs.update(grad_norm=float(grad_norm), lr=lr, weight_decay=weight_decay, ema_momentum=momentum)
    return logs
