"""Factories for the networks, in timm's style: one function per part, built from the config.

The trainer, the evaluation baselines, the dashboards and the benchmarks all build their
encoders here, so a change of architecture (or of the order in which weights are drawn, which
decides the initial weights for a seed) is made in one place.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import MLP

from cjepa.config import ModelConfig
from cjepa.model.vit import Predictor, ViTEncoder


def build_encoder(m: ModelConfig) -> ViTEncoder:
    """The context encoder (and, copied, the target encoder) of ``model.*``."""
    return ViTEncoder(m.img_size, m.patch_size, m.in_chans, m.embed_dim, m.depth, m.num_heads, m.mlp_ratio,
                      m.drop_path_rate, m.patch_embed)


def initial_encoder(m: ModelConfig, seed: int) -> ViTEncoder:
    """The encoder exactly as a run of ``seed`` initialised it (drawn first after seeding, as in
    ``CJEPA``), without touching the caller's RNG stream: the "no training" reference of every
    read-out, in the trainer's evaluator and in ``cjepa eval --encoders random``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_encoder(m)


def build_predictor(m: ModelConfig, grid: tuple[int, int]) -> Predictor:
    """The narrow predictor ViT; its heads default to the encoder's (I-JEPA)."""
    return Predictor(grid, m.embed_dim, m.pred_embed_dim, m.pred_depth, m.pred_num_heads or m.num_heads,
                     m.mlp_ratio, m.drop_path_rate)


def build_projector(in_dim: int, width: int) -> nn.Module:
    """VICReg's expander: (Linear-BN-ReLU) x 2 + Linear, via torchvision's MLP."""
    return MLP(in_dim, [width, width, width], norm_layer=nn.BatchNorm1d, activation_layer=nn.ReLU)
