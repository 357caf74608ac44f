"""How image patches become tokens (``model.patch_embed``): a lever of the laptop study (issue 26).

Every kind keeps the token grid of the linear patch (``img_size / patch_size`` per side), its
row-major order and its (B, N, D) output, and exposes ``grid_size`` and ``num_patches`` as timm's
``PatchEmbed`` does, so positions, masks, the predictor and the evaluation are unchanged; only
what each token sees of the image differs.

- ``linear`` (default): timm's ``PatchEmbed`` itself (conv, kernel = stride = patch), so the
  default's weights for a seed, its state-dict keys and the golden losses are today's.
- ``overlap``: PVTv2's overlapping patch embedding, timm's ``pvt_v2.OverlapPatchEmbed``.
- ``conv_stem``: the convolutional stem of Xiao et al. 2021, timm's hybrid-ViT ``ConvStem``.

Initialisation: the encoder's ``_init`` applies timm's ``init_weights_vit_timm``, which redraws
every module with a ``reset_parameters`` (here the convs, in module order) by PyTorch's default
conv rule, U(+-1/sqrt(fan_in)), the very rule the linear patch's conv gets; the norms start at
(1, 0). So each kind's convs get the init the linear patch has always had, and ``linear``
draws the same numbers in the same order as before this switch existed (the other kinds draw
more, so the blocks after them get other weights for the same seed).
"""

from __future__ import annotations

from timm.layers import GroupNorm1, PatchEmbed
from timm.models.pvt_v2 import OverlapPatchEmbed as _PvtOverlapPatchEmbed
from timm.models.vision_transformer_hybrid import ConvStem as _TimmConvStem
from torch import Tensor, nn

from cjepa.config.schema import PATCH_EMBEDS


def _grid(img_size: int, patch_size: int) -> tuple[int, int]:
    side = img_size // patch_size
    return side, side


class OverlapPatchEmbed(_PvtOverlapPatchEmbed):
    """One conv, kernel 2p-1, stride p, padding p-1, then LayerNorm over channels; (B, N, D) out.

    Same grid as the linear patch, but token (i, j)'s window, rows and columns [p*i - (p-1),
    p*i + (p-1)], is centred on its patch's top-left pixel (PVTv2's geometry): it sees its own
    patch and the last p-1 rows/columns of the patches above and to the left; its right and lower
    neighbours' pixels are seen by their own tokens, not by it. So an edge cut by a patch border
    still lands whole in one token. The LayerNorm
    is PVTv2's: the wider kernel sums ~4x the pixels of a linear patch, and normalising each token
    pins its scale at init so the sin-cos positions added next keep the same relative weight.
    timm's class (a model file's part, not in ``timm.layers``) returns (B, H, W, D); we flatten
    it row-major. It refuses p = 1 (kernel 1 = the linear patch); validation says so first.
    ``patch_size`` is timm's: the kernel, (2p-1, 2p-1).
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__(patch_size=2 * patch_size - 1, stride=patch_size, in_chans=in_chans, embed_dim=embed_dim)
        self.grid_size = _grid(img_size, patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).flatten(1, 2)


def stem_widths(patch_size: int, embed_dim: int) -> list[int]:
    """Output channels of the log2(p) stride-2 convs: doubling, the last one ``embed_dim``.

    Xiao et al.'s ViT_C-1GF stem (d = 192, p = 16) is 24-48-96-192, then the 1x1 conv to d.
    """
    k = patch_size.bit_length() - 1
    return [max(1, embed_dim >> (k - 1 - i)) for i in range(k)]


class ConvStemEmbed(_TimmConvStem):
    """log2(p) x (3x3 stride-2 conv, norm, ReLU) then a 1x1 conv to ``embed_dim``; (B, N, D) out.

    Xiao et al. 2021 ("Early convolutions help transformers see better"): the stem replaces the
    patch conv and makes optimisation steadier. Built with timm's ``ConvStem`` (the stem of its
    hybrid ViTs: bias-free convs before a norm, a biased last conv without norm or activation).
    The norm is ``GroupNorm(1, c)`` (timm's ``GroupNorm1``), not the paper's BatchNorm, because
    the target encoder is an EMA copy updated on parameters only (BatchNorm's running statistics
    would freeze at the copy's) and DDP would need SyncBatchNorm for batch statistics; a norm
    without running statistics behaves the same in train and eval, on any world size.
    timm names each norm ``bn`` (its backwards-compatible key); it is the GroupNorm.
    """

    def __init__(self, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> None:
        if patch_size < 2 or patch_size & (patch_size - 1):
            raise ValueError(f"model.patch_embed=conv_stem needs a power-of-two patch_size >= 2, got {patch_size}")
        widths = stem_widths(patch_size, embed_dim)
        k = len(widths)
        super().__init__(in_chans, depth=k + 1, channels=(*widths, embed_dim), kernel_size=(3,) * k + (1,),
                         stride=(2,) * k + (1,), padding=(1,) * k + (0,), norm_layer=GroupNorm1, act_layer=nn.ReLU)
        self.grid_size = _grid(img_size, patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).flatten(2).transpose(1, 2)


def build_patch_embed(kind: str, img_size: int, patch_size: int, in_chans: int, embed_dim: int) -> nn.Module:
    """The ``model.patch_embed`` module: images (B, C, H, W) -> tokens (B, N, D), with ``grid_size``."""
    if kind == "linear":
        return PatchEmbed(img_size, patch_size, in_chans, embed_dim)  # the call ViTEncoder always made
    if kind == "overlap":
        return OverlapPatchEmbed(img_size, patch_size, in_chans, embed_dim)
    if kind == "conv_stem":
        return ConvStemEmbed(img_size, patch_size, in_chans, embed_dim)
    raise ValueError(f"model.patch_embed: expected one of {', '.join(PATCH_EMBEDS)}, got {kind!r}")
