"""SIGReg (LeJEPA) against direct computations, and the token-level VICReg reading against a hand one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cjepa.losses.sigreg import collapsed_value, directions, epps_pulley, sigreg, trapezoid_weights


def _direct_ep(z: np.ndarray, knots: int, t_max: float) -> np.ndarray:
    """EP per column by the textbook formula: complex ECF on the full symmetric grid, numpy trapezoid."""
    t = np.linspace(-t_max, t_max, 2 * knots - 1)
    ecf = np.exp(1j * z[:, :, None] * t).mean(axis=0)  # (P, T)
    integrand = np.abs(ecf - np.exp(-t**2 / 2)) ** 2 * np.exp(-t**2 / 2)
    return z.shape[0] * np.trapezoid(integrand, t, axis=-1)


def test_epps_pulley_equals_the_direct_formula():
    rng = np.random.default_rng(0)
    z = rng.normal(0.3, 1.4, size=(200, 5))
    t, w = trapezoid_weights(17, 5.0)
    ours = epps_pulley(torch.tensor(z, dtype=torch.float64), t.double(), w.double()).numpy()
    np.testing.assert_allclose(ours, _direct_ep(z, 17, 5.0), rtol=1e-6)


def test_collapse_gives_the_closed_form_and_a_gaussian_almost_nothing():
    t, w = trapezoid_weights(17, 5.0)
    a = directions(8, 64, seed=0, step=0)
    collapsed = float(sigreg(torch.zeros(100, 8), a, t, w, gather=False))
    assert collapsed == pytest.approx(collapsed_value(100, 5.0), rel=1e-4)  # 17 knots already exact to 1e-5
    g = torch.Generator().manual_seed(0)
    gaussian = float(sigreg(torch.randn(4096, 8, generator=g), a, t, w, gather=False))
    shifted = float(sigreg(torch.randn(4096, 8, generator=g) + 0.5, a, t, w, gather=False))
    wide = float(sigreg(3 * torch.randn(4096, 8, generator=g), a, t, w, gather=False))
    assert gaussian < 2.0 < 50 * gaussian < shifted and 50 * gaussian < wide  # E[EP] of a true N(0,1) sample is O(1)


def test_directions_are_unit_and_a_function_of_seed_and_step():
    a = directions(16, 32, seed=3, step=7)
    torch.testing.assert_close(a.norm(dim=0), torch.ones(32))
    assert torch.equal(a, directions(16, 32, seed=3, step=7))
    assert not torch.allclose(a, directions(16, 32, seed=3, step=8))
    assert not torch.allclose(a, directions(16, 32, seed=4, step=7))


def test_sigreg_gradient_pushes_a_collapsed_batch_apart():
    t, w = trapezoid_weights(17, 5.0)
    x = (0.01 * torch.randn(64, 4, generator=torch.Generator().manual_seed(1))).requires_grad_(True)
    loss = sigreg(x, directions(4, 16, 0, 0), t, w, gather=False)
    loss.backward()
    spread = (x - x.mean(dim=0)).detach()
    assert float((x.grad * spread).sum()) < 0  # descending the gradient increases the spread


def test_pred_tokens_terms_by_hand(tiny_cfg):
    from cjepa.method.regularizers import PredTokens

    cfg = tiny_cfg("loss.vicreg_mode=pred_tokens")
    pred = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    terms = PredTokens(cfg).terms(pred.reshape(-1, 5))
    x = pred.reshape(-1, 5).numpy()  # 24 tokens of 5 features
    std = np.sqrt(x.var(axis=0, ddof=1) + cfg.loss.eps)
    expect_var = np.maximum(0.0, cfg.loss.gamma - std).mean()
    c = np.cov(x, rowvar=False)
    expect_cov = (c**2).sum() - (np.diag(c) ** 2).sum()
    assert terms.inv is None
    assert float(terms.var) == pytest.approx(expect_var, rel=1e-5)
    assert float(terms.cov) == pytest.approx(expect_cov / 5, rel=1e-5)
