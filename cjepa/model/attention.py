"""Which attention kernel the ViT blocks run: PyTorch's fused SDPA or timm's explicit softmax.

timm's ``Attention`` reads its ``fused_attn`` flag at every forward, so the choice is a switch on
the built modules, not a different network: the weights, the state dict and (in fp32) the results
are the same to ~1e-6 (tests/model/test_attention.py).

Why a switch at all (issue 14, docs/benchmarks.md "bf16 on CPU"): on this project's CPU
(AVX512-BF16) a bf16 autocast training step with SDPA is *slower* than fp32, because SDPA's CPU
flash-attention backward in bf16 takes more time than every matmul of the step together, while
the explicit form's attention matmuls run on oneDNN's bf16 GEMMs like the rest of the step. In
fp32 and for inference the two kernels are within noise, so ``auto`` keeps SDPA there.
"""

from __future__ import annotations

import torch
from torch import nn


def resolve_attention(choice: str, device: torch.device, autocast_dtype: torch.dtype | None) -> str:
    """``sdpa`` or ``math`` for ``run.attention``; ``auto`` takes math only for bf16 training on CPU."""
    if choice != "auto":
        return choice
    return "math" if device.type == "cpu" and autocast_dtype is torch.bfloat16 else "sdpa"


def set_attention(module: nn.Module, kernel: str) -> int:
    """Switch every timm attention layer inside ``module`` to ``kernel``; returns how many."""
    if kernel not in ("sdpa", "math"):
        raise ValueError(f"attention kernel {kernel!r}: expected 'sdpa' or 'math'")
    layers = [m for m in module.modules() if hasattr(m, "fused_attn")]
    for layer in layers:
        layer.fused_attn = kernel == "sdpa"
    return len(layers)
