"""ViT encoder and predictor in the I-JEPA layout, built from timm parts.

timm gives us ``PatchEmbed`` (conv, kernel = stride = patch: the default ``model.patch_embed``;
the other kinds are in patch_embed.py), ``Block`` (pre-norm attention + MLP) and the 2-D sin-cos
table. What timm's ``VisionTransformer`` does not offer is running the
blocks on a *subset* of tokens chosen per image (the context encoder never sees the masked
patches), so the thin wrappers here gather tokens after adding positions and before the blocks.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from timm.layers import trunc_normal_
from timm.layers.pos_embed_sincos import build_sincos2d_pos_embed
from timm.models.vision_transformer import Block, init_weights_vit_timm
from torch import Tensor, nn

from cjepa.model.patch_embed import build_patch_embed

_LayerNorm = partial(nn.LayerNorm, eps=1e-6)


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    """Select tokens per image: x (B, N, D), index (B, K) -> (B, K, D)."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def sincos_table(grid: tuple[int, int], dim: int) -> Tensor:
    """Fixed (1, H*W, dim) sin-cos positions, row-major like the patch order."""
    return build_sincos2d_pos_embed(list(grid), dim=dim).unsqueeze(0)


def _blocks(dim: int, depth: int, heads: int, mlp_ratio: float, drop_path: float) -> nn.ModuleList:
    rates = torch.linspace(0, drop_path, depth).tolist()
    return nn.ModuleList(
        Block(dim, heads, mlp_ratio, qkv_bias=True, drop_path=r, norm_layer=_LayerNorm) for r in rates
    )


def _init(module: nn.Module, blocks: nn.ModuleList) -> None:
    """timm's ViT init, then I-JEPA's depth rescaling of the residual projections."""
    module.apply(init_weights_vit_timm)
    for layer_id, blk in enumerate(blocks, start=1):
        blk.attn.proj.weight.data.div_(math.sqrt(2.0 * layer_id))
        blk.mlp.fc2.weight.data.div_(math.sqrt(2.0 * layer_id))


class ViTEncoder(nn.Module):
    """Patch embedding + sin-cos positions + blocks + final LayerNorm, no CLS token.

    ``forward(x, keep)`` runs the blocks only on the ``keep`` tokens of each image; with
    ``keep=None`` it sees the full image (the target encoder, evaluation). ``patch_embed`` picks how
    pixels become tokens (:func:`cjepa.model.patch_embed.build_patch_embed`); it is built first, as
    the linear patch always was, so the default draws its weights in the same order as before.
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int, depth: int,
                 num_heads: int, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0,
                 patch_embed: str = "linear") -> None:
        super().__init__()
        self.patch_embed = build_patch_embed(patch_embed, img_size, patch_size, in_chans, embed_dim)
        self.grid: tuple[int, int] = tuple(self.patch_embed.grid_size)  # type: ignore[assignment]
        self.embed_dim = embed_dim
        self.register_buffer("pos_embed", sincos_table(self.grid, embed_dim), persistent=False)
        self.blocks = _blocks(embed_dim, depth, num_heads, mlp_ratio, drop_path_rate)
        self.norm = _LayerNorm(embed_dim)
        _init(self, self.blocks)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def forward(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        x = self.patch_embed(x) + self.pos_embed
        if keep is not None:
            x = gather_tokens(x, keep)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)

    def forward_last_layers(self, x: Tensor, k: int) -> Tensor:
        """Tokens of the last ``k`` blocks, each through the final norm, concatenated: (B, N, k * D).
        I-JEPA's linear protocol reads the last 4 this way; ``k = 1`` equals :meth:`forward`."""
        x = self.patch_embed(x) + self.pos_embed
        outs = []
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i >= len(self.blocks) - k:
                outs.append(self.norm(x))
        return torch.cat(outs, dim=-1)


class LastLayers(nn.Module):
    """An encoder read through its last ``k`` blocks (``eval.last_layers``), for feature extraction."""

    def __init__(self, encoder: ViTEncoder, k: int) -> None:
        super().__init__()
        self.encoder, self.k = encoder, k

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder.forward_last_layers(x, self.k)


class Predictor(nn.Module):
    """Narrow ViT that predicts target-block tokens from context tokens.

    As in I-JEPA: project context tokens to the predictor width, add the predictor's own
    positions, append one shared learnable mask token (plus its position) per target patch,
    run the blocks, keep the mask-token outputs and project back to the encoder width. The M
    target blocks are handled by repeating the context M times along the batch.
    """

    def __init__(self, grid: tuple[int, int], embed_dim: int, pred_dim: int, depth: int, num_heads: int,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        self.embed = nn.Linear(embed_dim, pred_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, pred_dim))
        self.register_buffer("pos_embed", sincos_table(grid, pred_dim), persistent=False)
        self.blocks = _blocks(pred_dim, depth, num_heads, mlp_ratio, drop_path_rate)
        self.norm = _LayerNorm(pred_dim)
        self.proj = nn.Linear(pred_dim, embed_dim)
        _init(self, self.blocks)
        trunc_normal_(self.mask_token, std=0.02)

    def forward(self, context: Tensor, context_idx: Tensor, target_idx: Tensor) -> Tensor:
        """context (B, Kc, D), context_idx (B, Kc), target_idx (M, B, Kt) -> (M, B, Kt, D)."""
        m, b, kt = target_idx.shape
        pos = self.pos_embed[0]  # (N, P); indexing it directly avoids an M*B-fold copy of the table
        x = self.embed(context) + pos[context_idx]
        x = x.repeat(m, 1, 1)  # (M*B, Kc, P): copy i sees target block i
        queries = pos[target_idx.reshape(m * b, kt)] + self.mask_token
        x = torch.cat([x, queries], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.proj(self.norm(x[:, -kt:]))
        return x.view(m, b, kt, -1)
