"""lightly's I-JEPA (its timm and torchvision modules) as reference steps for bench/step_throughput.py.

Why kept: lightly is the public I-JEPA implementation most people reach for; our step should not
be slower than it. lightly is not a dependency of cjepa: it is imported only inside the builders,
so this module imports without it (the venv that has it: bench/README.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cjepa.benchmarking.steps import Batch, Variant, count_params


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
    return Variant("lightly_timm", "lightly", step, count_params(encoder, predictor),
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
    return Variant("lightly_tv", "lightly", step, count_params(encoder, predictor),
                   "IJEPABackbone (torchvision ViT) + IJEPAPredictor")
