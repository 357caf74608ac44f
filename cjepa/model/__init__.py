"""Networks in the I-JEPA layout from timm parts: ViT encoder, predictor, projector, EMA target."""

from cjepa.model.attention import resolve_attention, set_attention
from cjepa.model.ema import ema_update, make_target
from cjepa.model.factory import build_encoder, build_predictor, build_projector, initial_encoder
from cjepa.model.norm import GatheredBatchNorm, global_batchnorm
from cjepa.model.vit import Predictor, ViTEncoder, gather_tokens

__all__ = ["GatheredBatchNorm", "Predictor", "ViTEncoder", "build_encoder", "build_predictor", "build_projector",
           "ema_update", "gather_tokens", "global_batchnorm", "initial_encoder", "make_target",
           "resolve_attention", "set_attention"]
