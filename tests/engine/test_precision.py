"""bf16 autocast, the GPU path's precision, exercised on CPU (``run.precision=bf16``).

CUDA takes the same code path (``resolve_autocast`` -> ``torch.autocast(device, bfloat16)``), so
this catches dtype mistakes without a GPU: every loss term must stay finite and one epoch must
land close to the float32 run of the same seed. (That the VICReg statistics are computed in
float32 under autocast is tests/losses/test_vicreg.py's test_low_precision_input_is_computed_in_fp32.)
"""

import math

import pytest
import torch

from cjepa.config import load_config
from cjepa.engine import precision, train
from cjepa.engine.precision import resolve_autocast
from tests.conftest import tiny_overrides


def test_autocast_policy(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    auto = load_config(None, ["run.precision=auto"])
    assert resolve_autocast(auto, cuda) is torch.bfloat16
    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: True)
    assert resolve_autocast(auto, cpu) is torch.bfloat16  # AVX512-BF16 / AMX: bf16 is the fast path
    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: False)
    assert resolve_autocast(auto, cpu) is None  # emulated bf16 would be slower than fp32
    assert resolve_autocast(load_config(None, ["run.precision=fp32"]), cuda) is None
    assert resolve_autocast(load_config(None, ["run.precision=bf16"]), cpu) is torch.bfloat16


@pytest.mark.integration
def test_bf16_epoch_tracks_fp32(tmp_path):
    def epoch(precision: str) -> dict[str, float]:
        cfg = load_config(None, tiny_overrides(tmp_path / precision, "run.epochs=1", f"run.precision={precision}",
                                               "loss.beta_vicreg=0.01", "eval.every=0"))
        return train(cfg).history[-1]

    fp32, bf16 = epoch("fp32"), epoch("bf16")
    for key in ("loss", "loss_jepa", "vicreg_inv", "vicreg_var", "vicreg_cov"):
        assert math.isfinite(bf16[key]), key
        # bf16 has an 8-bit mantissa: per-step rounding drifts the run, but not by much in 23 steps
        assert abs(bf16[key] - fp32[key]) <= 0.1 * abs(fp32[key]) + 1e-3, (key, bf16[key], fp32[key])
    assert bf16["loss"] != fp32["loss"]  # autocast really ran
