"""Which autocast dtype training and evaluation run under (``run.precision``, ``eval.precision``).

One rule for both, ``auto``: bf16 where the hardware computes it natively (CUDA; a CPU with
AVX512-BF16 or AMX), fp32 elsewhere. On a CPU without native bf16, oneDNN emulates bf16 matmuls
and a step would be slower than fp32. On this project's 2-core AVX512-BF16 CPU, bf16 training
with the explicit attention kernel (:mod:`cjepa.model.attention`) ran the quick preset at 1.54x
the fp32 images per second and moved no probe beyond its interval over 3 paired seeds
(docs/benchmarks.md, "bf16 on CPU"), so the CPU presets train in bf16 there by default.
The VICReg statistics stay fp32 under autocast (cjepa/losses/vicreg.py).
"""

from __future__ import annotations

import torch

from cjepa.config import Config


def native_cpu_bf16() -> bool:
    """True on a CPU whose bf16 matmuls are native (AVX512-BF16 or AMX tiles)."""
    cpu = torch.cpu  # private probes (torch >= 2.3); a torch without them gets fp32
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


def _native_bf16(device: torch.device) -> bool:
    return device.type == "cuda" or (device.type == "cpu" and native_cpu_bf16())


def resolve_autocast(cfg: Config, device: torch.device) -> torch.dtype | None:
    """Training's autocast dtype: bf16 when asked, or under ``auto`` where bf16 is native; else None."""
    if cfg.run.precision == "bf16" or (cfg.run.precision == "auto" and _native_bf16(device)):
        return torch.bfloat16
    return None


def eval_autocast(precision: str, device: torch.device, train_autocast: torch.dtype | None) -> torch.dtype | None:
    """The autocast dtype of evaluation's forward passes (None: the encoder's own fp32).

    ``auto`` follows training where it autocasts; a run that trains in fp32 still extracts features
    in bf16 on a native-bf16 CPU (1.8x less evaluation CPU, no probe moved beyond noise), and in
    fp32 on CUDA, like its training. Features are pooled and probed in fp32 either way.
    """
    if precision == "fp32":
        return None
    if precision == "bf16" or train_autocast is not None:
        return torch.bfloat16 if precision == "bf16" else train_autocast
    return torch.bfloat16 if device.type == "cpu" and native_cpu_bf16() else None
