"""Frozen-feature extraction: run an encoder over images and average-pool its patch tokens.

I-JEPA has no CLS token, so its evaluation protocol (and ours, method.md §1) represents an image by
the mean of its patch tokens. Extraction runs under ``no_grad`` in eval mode (no dropout/drop-path,
so features are a deterministic function of the weights), then hands the module back in exactly
the train/eval state it arrived in: evaluation happens in the middle of training.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn


@torch.no_grad()
def extract_features(
    encoder: nn.Module,
    images: Tensor,
    batch_size: int = 512,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
) -> Tensor:
    """Average-pooled encoder features of ``images``.

    Args:
        encoder: maps (B, C, H, W) to tokens (B, num_patches, D); it must already live on ``device``.
            A (B, D) output is accepted as already pooled.
        images: (N, C, H, W) float, already normalised; may live on any device, they are moved
            to ``device`` one batch at a time so a whole dataset never has to fit there.
        batch_size: images per forward pass; only memory depends on it, not the result.
        device: where the forward passes run.
        autocast_dtype: e.g. ``torch.bfloat16`` to evaluate under the same autocast as training
            on GPU; ``None`` runs in the encoder's own precision.

    Returns:
        (N, D) float32 on CPU. Pooling is done in float32 so bf16 tokens do not lose precision
        in the mean.
    """
    if images.dim() != 4:
        raise ValueError(f"images: expected (N, C, H, W), got shape {tuple(images.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}")
    device = torch.device(device)
    # Record every submodule's flag, not just the root's: a caller may keep e.g. frozen BatchNorm
    # layers in eval mode inside a training model, and ``train(True)`` would silently undo that.
    modes = {m: m.training for m in encoder.modules()}
    encoder.eval()
    try:
        chunks: list[Tensor] = []
        for start in range(0, images.shape[0], batch_size):
            x = images[start:start + batch_size].to(device, non_blocking=True)
            ctx = (torch.autocast(device_type=device.type, dtype=autocast_dtype)
                   if autocast_dtype is not None else contextlib.nullcontext())
            with ctx:
                out = encoder(x)
            chunks.append(_pool(out).cpu())
        if not chunks:
            return torch.empty(0, 0, dtype=torch.float32)
        return torch.cat(chunks)
    finally:
        for module, training in modes.items():
            module.training = training


def _pool(out: Tensor) -> Tensor:
    """Mean over patches, in float32."""
    if out.dim() == 3:
        return out.float().mean(dim=1)
    if out.dim() == 2:
        return out.float()
    raise ValueError(f"encoder output: expected tokens (B, num_patches, D) or (B, D), "
                     f"got shape {tuple(out.shape)}")
