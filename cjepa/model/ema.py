"""The EMA target encoder: a gradient-free copy, moved towards the online encoder after each step."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_target(encoder: nn.Module) -> nn.Module:
    """A gradient-free copy of the context encoder."""
    target = copy.deepcopy(encoder)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target = m * target + (1 - m) * online, for every parameter.

    momentum 0 (EMA switched off) copies exactly: lerp with weight 1 would leave rounding noise.
    """
    t_params = list(target.parameters())
    o_params = [p.detach() for p in online.parameters()]
    if momentum == 0.0:
        torch._foreach_copy_(t_params, o_params)
    elif momentum < 1.0:
        torch._foreach_lerp_(t_params, o_params, 1.0 - momentum)
