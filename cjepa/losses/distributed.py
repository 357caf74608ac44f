"""Gathering with gradients, so that VICReg's variance/covariance see the global batch.

Why the global batch: variance and covariance are batch statistics; computing them per rank
would make the loss depend on how the batch is sharded (method.md §2, like the official VICReg
code's ``FullGatherLayer``). Everything here degrades to a no-op in one process, without
``torch.distributed`` initialised.

Gradient convention (checked by a real 2-process gloo test, tests/losses/test_distributed.py):
we use the library ``torch.distributed.nn.functional.all_gather``; its backward
reduce-scatters with SUM, i.e. the gradient reaching rank r's local tensor is
``sum_{r'} dL_{r'}/dx_r`` over the losses of *all* ranks. Every rank computes the same
var/cov on the gathered batch, so that part of the local gradient is ``world_size`` times the
gradient of the global loss; the invariance term is on the local batch (as in the official
code). DDP then *averages* parameter gradients over ranks (divides by ``world_size``), and
the end result is exactly the single-process full-batch gradient of
``mean_r L_r`` = the full-batch loss (equal local batch sizes). This is the same convention as
VICReg's ``FullGatherLayer`` (all_reduce SUM, then take the own slice). Consequence: do NOT
rescale anything when training under DDP; if you average gradients by hand, divide the summed
gradients by ``world_size`` like DDP does. All ranks must hold the same local batch size
(``all_gather`` needs equal shapes: use ``drop_last=True``).
"""

from __future__ import annotations

import warnings

import torch
import torch.distributed as dist
from torch import Tensor


def world_size() -> int:
    """Number of processes in the default group; 1 when torch.distributed is absent or not initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def gather_with_grad(x: Tensor) -> Tensor:
    """Concatenate ``x`` from all ranks along dim 0, keeping the autograd graph.

    Returns ``x`` itself in one process. Uses the library autograd all_gather (not a
    hand-written Function): its backward sums gradients over ranks, see the module docstring.
    The library marks it deprecated in favour of functional collectives with a FutureWarning
    on every call; it still works (tested), so the warning is silenced here only.

    Workaround: on gloo the library backward scatters the incoming gradients into
    ``empty_like(grad)`` buffers, and gloo's scatter writes non-contiguous buffers in the wrong
    order (pytorch/pytorch#192920), so a gradient arriving through e.g. a transpose came back
    silently scrambled (caught by tests/losses/test_distributed.py via ``vicreg_blocks``).
    A hook makes every incoming gradient contiguous first; this is harmless on NCCL.
    """
    if world_size() == 1:
        return x
    from torch.distributed.nn.functional import all_gather

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*all_gather is deprecated", category=FutureWarning)
        parts = all_gather(x.contiguous())
    if x.requires_grad:
        for part in parts:
            part.register_hook(_contiguous_grad)
    return torch.cat(parts, dim=0)


def _contiguous_grad(grad: Tensor) -> Tensor:
    return grad.contiguous()
