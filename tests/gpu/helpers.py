"""Shared pieces of the CUDA tests: the skip marker, seeded batches on a device, the trainer's build."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from cjepa.config import Config
from cjepa.engine.step import build_optimizer, train_step
from cjepa.masks import MultiBlockMaskGenerator
from cjepa.method import CJEPA

CUDA = torch.cuda.is_available()
# Applied with pytest.mark.gpu to every module here: the default suite collects them and skips them
# without a GPU; bench/gpu_check.py runs them (`pytest -m gpu tests/gpu`) when a GPU is lent.
requires_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (bench/gpu_check.py runs these on a GPU)")
DEVICE = torch.device("cuda", 0)


def batches(cfg: Config, n: int, device: torch.device, batch_size: int = 32, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` train_step batches: seeded random images and the real multi-block masks of steps 0..n-1."""
    m = cfg.model
    gen = MultiBlockMaskGenerator(m.img_size // m.patch_size, cfg.mask, seed=seed)
    g = torch.Generator().manual_seed(seed)
    return [{"step": s, "images": torch.randn(batch_size, m.in_chans, m.img_size, m.img_size, generator=g).to(device),
             "masks": gen(batch_size, s).to(device)} for s in range(n)]


def build(cfg: Config, device: torch.device) -> tuple[CJEPA, torch.optim.Optimizer]:
    """The method object (online networks + EMA target) and AdamW, seeded as cjepa.engine.trainer builds them."""
    torch.manual_seed(cfg.run.seed)
    model = CJEPA(cfg).to(device)
    model.train()
    return model, build_optimizer(model, cfg.optim)


def run_steps(cfg: Config, parts: tuple[nn.Module, torch.optim.Optimizer], data: list[dict[str, Any]],
              autocast: torch.dtype | None) -> list[dict[str, float]]:
    """train_step over ``data`` with the config's peak lr/wd and EMA start; the per-step logs."""
    model, optimizer = parts
    return [train_step(model, optimizer, b, cfg.optim.lr, cfg.optim.weight_decay, cfg.ema.start, autocast)
            for b in data]
