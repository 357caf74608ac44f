"""The attention-kernel switch (``run.attention``, issue 14): same network, same fp32 results.

Why: bf16 training on CPU takes timm's explicit attention instead of SDPA (SDPA's bf16 CPU backward
outweighs every matmul of the step; docs/benchmarks.md). A kernel switch is only safe if it
changes nothing but speed: in fp32 both kernels must give the same losses and weights step by
step, and the trainer must pick the kernel ``auto`` promises.
"""

from __future__ import annotations

import pytest
import torch

from cjepa.config import load_config
from cjepa.engine import train
from cjepa.engine.step import build_optimizer, train_step
from cjepa.masks import MultiBlockMaskGenerator
from cjepa.method import CJEPA
from cjepa.model import resolve_attention, set_attention
from tests.conftest import tiny_overrides

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_takes_math_only_for_bf16_training_on_cpu():
    assert resolve_attention("auto", CPU, torch.bfloat16) == "math"
    assert resolve_attention("auto", CPU, None) == "sdpa"
    assert resolve_attention("auto", CUDA, torch.bfloat16) == "sdpa"
    assert resolve_attention("sdpa", CPU, torch.bfloat16) == "sdpa"
    assert resolve_attention("math", CUDA, None) == "math"


def test_set_attention_switches_every_layer(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, "loss.beta_vicreg=0"))
    model = CJEPA(cfg)
    layers = [m for m in model.modules() if hasattr(m, "fused_attn")]
    assert set_attention(model, "math") == len(layers) == 2 * cfg.model.depth + cfg.model.pred_depth  # + target
    assert not any(m.fused_attn for m in layers)
    set_attention(model, "sdpa")
    assert all(m.fused_attn for m in layers)


def _three_steps(cfg, kernel: str) -> tuple[list[float], dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = CJEPA(cfg)
    set_attention(model, kernel)
    opt = build_optimizer(model, cfg.optim)
    gen = MultiBlockMaskGenerator(cfg.model.img_size // cfg.model.patch_size, cfg.mask, seed=0)
    g = torch.Generator().manual_seed(1)
    losses = []
    for step in range(3):
        images = torch.randn(16, cfg.model.in_chans, cfg.model.img_size, cfg.model.img_size, generator=g)
        batch = {"step": step, "images": images, "masks": gen(16, step)}
        losses.append(train_step(model, opt, batch, 1e-3, 0.04, 0.99)["loss"])
    return losses, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_math_and_sdpa_give_the_same_fp32_steps(tmp_path):
    cfg = load_config(None, tiny_overrides(tmp_path, "loss.vicreg_mode=context_target", "loss.beta_vicreg=0.1"))
    (l_sdpa, w_sdpa), (l_math, w_math) = _three_steps(cfg, "sdpa"), _three_steps(cfg, "math")
    assert max(abs(a - b) for a, b in zip(l_sdpa, l_math)) < 1e-5, (l_sdpa, l_math)
    assert l_sdpa[0] != l_sdpa[2]  # the steps really trained
    for key, value in w_sdpa.items():
        torch.testing.assert_close(w_math[key], value, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.integration
def test_the_trainer_runs_bf16_on_cpu_with_the_explicit_kernel(tmp_path):
    def epoch(*extra: str) -> float:
        cfg = load_config(None, tiny_overrides(tmp_path / "_".join(extra), "run.epochs=1", "eval.every=0",
                                               "run.precision=bf16", *extra))
        return train(cfg).history[-1]["loss"]

    auto, math_, sdpa = epoch("run.attention=auto"), epoch("run.attention=math"), epoch("run.attention=sdpa")
    assert auto == math_  # auto chose the explicit kernel: bit-identical run
    assert sdpa != math_  # and the choice is real (bf16 rounding differs between the two kernels)
