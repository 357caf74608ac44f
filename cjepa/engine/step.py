"""One training step around the method object: forward, backward, AdamW step, EMA update.

What the step computes lives in :class:`cjepa.method.CJEPA` (the objective and every VICReg
reading); this module owns only the optimisation: the per-step lr and weight decay, the
non-finite check, gradient clipping and the order "optimizer step, then target update".
"""

from __future__ import annotations

import contextlib
import math

import torch
from torch import nn

from cjepa.config import OptimConfig
from cjepa.errors import TrainingError
from cjepa.method import unwrap


def build_optimizer(model: nn.Module, optim: OptimConfig) -> torch.optim.Optimizer:
    """AdamW on everything with a gradient; biases and 1-D parameters (norms) get no weight
    decay, as in I-JEPA. The frozen target is not in it."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim == 1 or name.endswith(".bias") else decay).append(p)
    groups = [{"params": decay, "apply_wd": True},
              {"params": no_decay, "apply_wd": False, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay)


def set_hyperparams(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group.get("apply_wd"):
            group["weight_decay"] = weight_decay


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict, lr: float, weight_decay: float,
               momentum: float, autocast_dtype: torch.dtype | None = None, grad_clip: float = 0.0
               ) -> dict[str, float]:
    """Forward, backward, AdamW step, then the EMA update of the target encoder.

    ``model`` is a :class:`~cjepa.method.CJEPA`, or a DDP wrapper around one.
    """
    set_hyperparams(optimizer, lr, weight_decay)
    device_type = batch["images"].device.type
    ctx = (torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype is not None
           else contextlib.nullcontext())
    with ctx:
        loss, logs = model(batch)
    if not math.isfinite(logs["loss"]):
        bad = [k for k, v in logs.items() if isinstance(v, float) and not math.isfinite(v) and k != "loss"]
        raise TrainingError(f"non-finite loss at step {batch['step']} (loss={logs['loss']}; non-finite terms: "
                            f"{', '.join(bad) or 'none logged'}); lower optim.lr or check the loss coefficients")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for p in model.parameters() if p.requires_grad]
    if grad_clip > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    else:  # the logged norm only: clip_grad_norm_ would also rescale every gradient by 1
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    optimizer.step()
    unwrap(model).update_target(momentum)
    logs.update(grad_norm=float(grad_norm), lr=lr, weight_decay=weight_decay, ema_momentum=momentum)
    return logs
