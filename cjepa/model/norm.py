"""Batch norm over the *global* batch under data parallelism (the VICReg projector's BN layers).

VICReg's statistics are over the global batch (method.md §2), and so must be the projector's
batch norm, or each rank would normalise its own slice differently from one process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from cjepa.losses.distributed import gather_with_grad


class GatheredBatchNorm(nn.BatchNorm1d):
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


def global_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch norm statistics over the global batch: SyncBatchNorm on CUDA, gathering on CPU.
    Same parameters, buffers and names as the plain layers, so checkpoints stay interchangeable."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm1d:
            new = GatheredBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats, device=device)
            # The same Parameter/buffer objects (as convert_sync_batchnorm does): the optimizer,
            # built before the conversion, must keep updating them.
            for key, value in [*child._parameters.items(), *child._buffers.items()]:
                setattr(new, key, value)
            setattr(module, name, new)
        else:
            global_batchnorm(child, device)
    return module
