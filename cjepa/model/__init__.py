"""Encoders, predictor, projector and EMA target (timm parts, I-JEPA layout)."""

from cjepa.model.cjepa import OnlineNetwork, OnlineOutputs, build_projector, ema_update, make_target
from cjepa.model.vit import Predictor, ViTEncoder, gather_tokens

__all__ = ["OnlineNetwork", "OnlineOutputs", "Predictor", "ViTEncoder", "build_projector", "ema_update",
           "gather_tokens", "make_target"]
