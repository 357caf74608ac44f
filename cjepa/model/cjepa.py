"""The C-JEPA networks: online (context encoder + predictor + projector) and the EMA target.

``OnlineNetwork`` is the one module DDP wraps: everything with gradients runs inside its
``forward`` so DDP sees every parameter used in a step. The target encoder lives outside it
(no gradients, updated by :func:`ema_update`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torchvision.ops import MLP

from cjepa.config import Config
from cjepa.model.vit import Predictor, ViTEncoder


@dataclass
class OnlineOutputs:
    """What the objective needs from one online forward pass."""

    context: Tensor  # (B, Kc, D) context-encoder tokens of view 1
    pred: Tensor  # (M, B, Kt, D) predicted target-block tokens
    z: Tensor | None = None  # pred_blocks: (M, B, P) projected pooled predictions
    context_pooled: Tensor | None = None  # context_target: (B, D)
    z_views: tuple[Tensor, Tensor] | None = None  # two_views: projected pooled context of each view


def build_projector(in_dim: int, width: int) -> nn.Module:
    """VICReg's expander: (Linear-BN-ReLU) x 2 + Linear, via torchvision's MLP."""
    return MLP(in_dim, [width, width, width], norm_layer=nn.BatchNorm1d, activation_layer=nn.ReLU)


class OnlineNetwork(nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        m = cfg.model
        self.encoder = ViTEncoder(m.img_size, m.patch_size, m.in_chans, m.embed_dim, m.depth, m.num_heads,
                                  m.mlp_ratio, m.drop_path_rate)
        self.predictor = Predictor(self.encoder.grid, m.embed_dim, m.pred_embed_dim, m.pred_depth,
                                   m.pred_num_heads or m.num_heads, m.mlp_ratio, m.drop_path_rate)
        self.mode = cfg.loss.vicreg_mode if cfg.loss.vicreg_on else "off"
        # Built only when used: DDP rejects parameters that receive no gradient.
        self.projector: nn.Module | None = None
        if self.mode in ("pred_blocks", "two_views"):
            self.projector = build_projector(m.embed_dim, cfg.loss.projector_dim or m.embed_dim)

    def forward(self, images: Tensor, context_idx: Tensor, target_idx: Tensor,
                images2: Tensor | None = None) -> OnlineOutputs:
        ctx = self.encoder(images, context_idx)
        pred = self.predictor(ctx, context_idx, target_idx)
        out = OnlineOutputs(context=ctx, pred=pred)
        if self.mode == "pred_blocks":
            assert self.projector is not None
            m, b = pred.shape[:2]
            out.z = self.projector(pred.mean(dim=2).reshape(m * b, -1)).view(m, b, -1)
        elif self.mode == "context_target":
            out.context_pooled = ctx.mean(dim=1)
        elif self.mode == "two_views":
            assert self.projector is not None and images2 is not None
            ctx2 = self.encoder(images2, context_idx)
            both = self.projector(torch.cat([ctx.mean(dim=1), ctx2.mean(dim=1)]))
            out.z_views = tuple(both.chunk(2))  # type: ignore[assignment]
        return out


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
