"""The VICReg terms are wired into the real C-JEPA step: each reaches the context encoder.

beta_vicreg is tiny (0.001), so a wrongly wired term would look like a no-op. For every mode
and term: changing the term's own coefficient changes the encoder gradient when the term is on,
and leaves it bit-identical when the term is off (the other terms stay on).
"""

import pytest
import torch

from cjepa.data import StepBatchDataset, dataset_stats, load_split
from cjepa.masks import MultiBlockMaskGenerator
from cjepa.method import CJEPA

TERMS = {"invariance": "beta_sim", "variance": "beta_std", "covariance": "beta_cov"}


@pytest.fixture(scope="module")
def digits():
    from cjepa.config import load_config
    from tests.conftest import TINY

    return load_split(load_config(None, TINY).data, "train")


def _encoder_grad(cfg, data, coef_key: str, coef: float) -> torch.Tensor:
    setattr(cfg.loss, coef_key, coef)
    torch.manual_seed(0)
    model = CJEPA(cfg)
    with torch.no_grad():  # let the target differ from the online encoder, as after EMA steps
        for p in model.target.parameters():
            p.add_(0.01 * torch.randn_like(p))
    gen = MultiBlockMaskGenerator(cfg.model.img_size // cfg.model.patch_size, cfg.mask, 0)
    two = cfg.loss.vicreg_mode == "two_views"
    mean, std = dataset_stats("digits")
    ds = StepBatchDataset(data, cfg.model.img_size, cfg.data.crop_scale, mean, std, 1, 0, gen, two_views=two)
    batch = ds[(0, torch.arange(32))]
    loss, _ = model(batch)
    loss.backward()
    return model.encoder.patch_embed.proj.weight.grad.clone()


WIRED = [(mode, term, 0.001) for mode in ("pred_blocks", "context_target", "two_views") for term in TERMS]
# pred_tokens: its invariance is the JEPA loss; at initialisation the covariance of the predictor's
# tokens is so small that at beta_vicreg 0.001 its gradient is ~1e-11, below float noise: weight 1.
WIRED += [("pred_tokens", "variance", 0.001), ("pred_tokens", "covariance", 1.0)]


@pytest.mark.parametrize("mode,term,beta", WIRED)
def test_each_term_reaches_the_encoder_only_when_enabled(tiny_cfg, digits, mode, term, beta):
    coef = TERMS[term]
    on = tiny_cfg(f"loss.vicreg_mode={mode}", f"loss.beta_vicreg={beta}")
    g1, g2 = _encoder_grad(on, digits, coef, 25.0), _encoder_grad(on, digits, coef, 50.0)
    assert (g2 - g1).abs().max() > 1e-9, f"{term} does not reach the encoder in {mode}"

    off = tiny_cfg(f"loss.vicreg_mode={mode}", f"loss.beta_vicreg={beta}", f"loss.{term}=false")
    h1, h2 = _encoder_grad(off, digits, coef, 25.0), _encoder_grad(off, digits, coef, 50.0)
    assert torch.equal(h1, h2), f"{term} is switched off but still changes the gradient in {mode}"


@pytest.mark.parametrize("clip", [0.0, 1e-3])
def test_grad_norm_is_logged_and_clipping_applies(tiny_cfg, digits, clip):
    """grad_norm is the total L2 norm before clipping; with optim.grad_clip the update uses clipped grads."""
    from cjepa.engine.step import build_optimizer, train_step

    cfg = tiny_cfg(f"optim.grad_clip={clip}")
    torch.manual_seed(0)
    model = CJEPA(cfg)
    gen = MultiBlockMaskGenerator(cfg.model.img_size // cfg.model.patch_size, cfg.mask, 0)
    mean, std = dataset_stats("digits")
    batch = StepBatchDataset(digits, cfg.model.img_size, cfg.data.crop_scale, mean, std, 1, 0, gen)[
        (0, torch.arange(32))]
    logs = train_step(model, build_optimizer(model, cfg.optim), batch, lr=1e-3, weight_decay=0.0, momentum=0.996,
                      grad_clip=cfg.optim.grad_clip)
    after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()
                                                  if p.grad is not None]))
    assert logs["grad_norm"] > 1e-2  # the digits tiny model's first-step norm is far above the clip
    expected = clip if clip else logs["grad_norm"]
    assert after.item() == pytest.approx(expected, rel=1e-4)


def test_sigreg_reaches_the_encoder(tiny_cfg, digits):
    """SIGReg's weight is sigreg.weight: doubling it changes the encoder gradient; weight 0 is I-JEPA's."""
    g = {beta: _encoder_grad(tiny_cfg("loss.beta_vicreg=0", f"sigreg.weight={beta}"), digits, "beta_vicreg", 0.0)
         for beta in (0.0, 0.05, 0.1)}
    ijepa = _encoder_grad(tiny_cfg("loss.beta_vicreg=0"), digits, "beta_vicreg", 0.0)
    assert torch.equal(g[0.0], ijepa)
    assert (g[0.1] - g[0.05]).abs().max() > 1e-9
    torch.testing.assert_close(g[0.1] - g[0.0], 2 * (g[0.05] - g[0.0]), rtol=1e-3, atol=1e-7)  # linear in beta
