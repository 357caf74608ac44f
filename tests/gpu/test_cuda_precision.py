"""bf16 autocast on CUDA tracks float32 (the GPU twin of tests/engine/test_precision.py).

On CPU the same code path is exercised with run.precision=bf16; here it runs where it matters:
CUDA autocast (bf16 matmuls, flash attention), the VICReg statistics kept in float32, the
trainer's device path (pinned batches, non_blocking copies) and the evaluator under autocast.
"""

import math

import pytest
import torch

from cjepa.config import load_config
from cjepa.engine import train
from tests.conftest import tiny_overrides
from tests.gpu.helpers import DEVICE, batches, build, requires_cuda, run_steps

pytestmark = [pytest.mark.gpu, requires_cuda]
KEYS = ("loss", "loss_jepa", "vicreg_inv", "vicreg_var", "vicreg_cov")


def test_autocast_dtypes_on_cuda(tiny_cfg):
    """Under CUDA bf16 autocast the network runs in bf16 while the loss comes out in float32."""
    cfg = tiny_cfg("loss.beta_vicreg=0.01")
    model, _ = build(cfg, DEVICE)
    b = batches(cfg, 1, DEVICE)[0]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        ctx = model.encoder(b["images"], b["masks"].context)
        pred = model.predictor(ctx, b["masks"].context, b["masks"].targets)
        loss, logs = model(b)
    assert pred.dtype == torch.bfloat16 and pred.is_cuda
    assert loss.dtype == torch.float32 and math.isfinite(logs["loss"])


def test_bf16_steps_track_fp32_on_cuda(tiny_cfg):
    cfg = tiny_cfg("loss.beta_vicreg=0.01")
    data = batches(cfg, 8, DEVICE)
    fp32 = run_steps(cfg, build(cfg, DEVICE), data, None)
    bf16 = run_steps(cfg, build(cfg, DEVICE), data, torch.bfloat16)
    for step, (a, b) in enumerate(zip(fp32, bf16)):
        for key in KEYS:
            assert math.isfinite(b[key]), (step, key)
            assert abs(b[key] - a[key]) <= 0.05 * abs(a[key]) + 1e-3, (step, key, b[key], a[key])
    assert any(a["loss"] != b["loss"] for a, b in zip(fp32, bf16))  # autocast really ran


def test_bf16_epoch_tracks_fp32_on_cuda(tmp_path):
    """One epoch through the trainer on CUDA (with evaluation), bf16 vs fp32, same seed."""
    def epoch(precision: str) -> dict[str, float]:
        cfg = load_config(None, tiny_overrides(tmp_path / precision, "run.epochs=1", "run.device=cuda",
                                               f"run.precision={precision}", "loss.beta_vicreg=0.01",
                                               "eval.every=1", "eval.train_samples=500", "eval.test_samples=200",
                                               "eval.linear_epochs=20"))
        return train(cfg).history[-1]

    fp32, bf16 = epoch("fp32"), epoch("bf16")
    for key in KEYS:
        assert math.isfinite(bf16[key]), key
        assert abs(bf16[key] - fp32[key]) <= 0.1 * abs(fp32[key]) + 1e-3, (key, bf16[key], fp32[key])
    assert bf16["loss"] != fp32["loss"]
    for key in ("knn_target", "linear_target"):
        assert 0.0 <= bf16[key] <= 1.0 and 0.0 <= fp32[key] <= 1.0, key
