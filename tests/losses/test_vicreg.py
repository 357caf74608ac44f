"""VICReg terms against hand-computed values, the pred_blocks closed form, and gradient flow."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from cjepa.config import LossConfig
from cjepa.losses import (
    covariance,
    invariance,
    jepa_loss,
    total_loss,
    variance,
    vicreg_blocks,
    vicreg_pair,
    vicreg_single,
)

T = torch.float64


def _t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=T)


# ---------------------------------------------------------------- hand-computed terms

X = [[0.0, 0.0], [0.5, 0.2], [1.0, 0.4]]  # per-feature unbiased var 0.25 and 0.04 -> std 0.5, 0.2


def test_invariance_hand() -> None:
    # diffs 0, 2, 3, 0 -> squares 0, 4, 9, 0 -> mean 13/4
    assert invariance(_t([[1, 2], [3, 4]]), _t([[1, 0], [0, 4]])).item() == pytest.approx(3.25)


def test_variance_hand() -> None:
    # feature 0: 0, .5, 1 -> mean .5, var (.25 + 0 + .25)/(3-1) = .25, std .5 -> relu(1 - .5) = .5
    # feature 1: 0, .2, .4 -> var (.04 + 0 + .04)/2 = .04, std .2 -> relu(1 - .2) = .8 ; mean .65
    assert variance(_t(X), gamma=1.0, eps=0.0).item() == pytest.approx(0.65)
    expected = ((1 - math.sqrt(0.25 + 1e-4)) + (1 - math.sqrt(0.04 + 1e-4))) / 2
    assert variance(_t(X)).item() == pytest.approx(expected, rel=1e-12)
    # gamma 0.3: relu(.3 - .5) = 0, relu(.3 - .2) = .1 -> .05 (the hinge cuts feature 0)
    assert variance(_t(X), gamma=0.3, eps=0.0).item() == pytest.approx(0.05)


def test_covariance_hand() -> None:
    # means (2, 3); centred rows (-1,-1), (1,-2), (0,3); C01 = (1 - 2 + 0)/(3-1) = -0.5
    # off-diagonal sum of squares 2 * 0.25 = 0.5, / D=2 -> 0.25 (diagonal C00=1, C11=7 ignored)
    assert covariance(_t([[1, 2], [3, 1], [2, 6]])).item() == pytest.approx(0.25)
    # N=4: rows (0,0),(1,1),(2,2),(3,3): var 5/3 each, C01 = 5/3 -> 2 * 25/9 / 2 = 25/9
    assert covariance(_t([[0, 0], [1, 1], [2, 2], [3, 3]])).item() == pytest.approx(25 / 9)


def _np_terms(x: np.ndarray, y: np.ndarray, gamma: float, eps: float) -> tuple[float, float, float]:
    """Independent float64 numpy reference of main_vicreg.py (loops, no shared helpers)."""
    n, d = x.shape
    inv = float(((x - y) ** 2).mean())

    def var1(a: np.ndarray) -> float:
        std = np.sqrt(a.var(axis=0, ddof=1) + eps)
        return float(np.maximum(gamma - std, 0).mean())

    def cov1(a: np.ndarray) -> float:
        c = np.cov(a, rowvar=False)  # (N-1) normalised
        return float(sum(c[k, l] ** 2 for k in range(d) for l in range(d) if k != l) / d)

    return inv, var1(x), cov1(x)


def test_terms_match_numpy_random() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)) * 0.6, rng.normal(size=(7, 5)) * 0.6
    inv, var, cov = _np_terms(x, y, gamma=1.0, eps=1e-4)
    assert invariance(torch.from_numpy(x), torch.from_numpy(y)).item() == pytest.approx(inv, rel=1e-10)
    assert variance(torch.from_numpy(x)).item() == pytest.approx(var, rel=1e-10)
    assert covariance(torch.from_numpy(x)).item() == pytest.approx(cov, rel=1e-10)


def test_low_precision_input_is_computed_in_fp32() -> None:
    x = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    assert covariance(x.bfloat16()).dtype == torch.float32
    assert covariance(x.bfloat16()).item() == pytest.approx(covariance(x.bfloat16().float()).item())
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the matmul must not drop to bf16
        auto = vicreg_blocks(x.view(2, 8, 8), LossConfig())
    exact = vicreg_blocks(x.view(2, 8, 8), LossConfig())
    for name in ("inv", "var", "cov"):
        assert getattr(auto, name).dtype == torch.float32
        assert getattr(auto, name).item() == pytest.approx(getattr(exact, name).item(), rel=1e-6)


# ---------------------------------------------------------------- switches

def _cfg(**kw: object) -> LossConfig:
    return LossConfig(**kw)  # type: ignore[arg-type]


def test_pair_variance_halved_switch() -> None:
    x, y = _t(X), 2 * _t(X)  # var(x) = .65 (above); y stds 1.0, 0.4 -> relu 0, .6 -> var(y) = .3
    on = vicreg_pair(x, y, _cfg(eps=0.0, variance_halved=True))
    off = vicreg_pair(x, y, _cfg(eps=0.0, variance_halved=False))
    assert on.var.item() == pytest.approx(0.475)
    assert off.var.item() == pytest.approx(0.95)
    # inv: diffs are x itself -> mean(x^2) = (0 + 0 + .25 + .04 + 1 + .16)/6
    assert on.inv.item() == pytest.approx(1.45 / 6)
    assert on.cov.item() == pytest.approx(covariance(x).item() + covariance(y).item())


def test_single_variance_not_halved() -> None:
    terms = vicreg_single(_t(X), torch.zeros(3, 2, dtype=T), _cfg(eps=0.0, variance_halved=True))
    assert terms.var.item() == pytest.approx(0.65)
    assert terms.inv.item() == pytest.approx(1.45 / 6)


@pytest.mark.parametrize("fn", ["pair", "single", "blocks"])
def test_disabled_terms_are_none_and_excluded(fn: str) -> None:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 3, generator=g, dtype=T), torch.randn(6, 3, generator=g, dtype=T)
    cfg = _cfg(invariance=False, covariance=False, beta_sim=7.0, beta_std=3.0, beta_cov=5.0)
    terms = {"pair": lambda c: vicreg_pair(x, y, c), "single": lambda c: vicreg_single(x, y, c),
             "blocks": lambda c: vicreg_blocks(torch.stack([x, y]), c)}[fn](cfg)
    assert terms.inv is None and terms.cov is None and terms.var is not None
    assert terms.weighted(cfg).item() == pytest.approx(3.0 * terms.var.item())
    cfg_none = _cfg(invariance=False, variance=False, covariance=False, beta_std=3.0)
    assert terms.weighted(cfg_none).item() == pytest.approx(3.0 * terms.var.item())  # None-ness rules
    empty = {"pair": lambda c: vicreg_pair(x, y, c), "single": lambda c: vicreg_single(x, None, c),
             "blocks": lambda c: vicreg_blocks(torch.stack([x, y]), c)}[fn](cfg_none)
    assert (empty.inv, empty.var, empty.cov) == (None, None, None)
    assert empty.weighted(cfg_none).item() == 0.0


def test_errors() -> None:
    with pytest.raises(ValueError, match="M >= 2"):
        vicreg_blocks(torch.randn(1, 4, 3), LossConfig())
    with pytest.raises(ValueError, match="no target"):
        vicreg_single(torch.randn(4, 3), None, LossConfig())
    with pytest.raises(ValueError):
        vicreg_pair(torch.randn(4, 3), torch.randn(5, 3), LossConfig())


# ---------------------------------------------------------------- pred_blocks closed form

SUBSETS = [(True, True, True), (True, False, False), (False, True, False), (False, False, True),
           (False, True, True)]


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("flags", SUBSETS)
@pytest.mark.parametrize("halved", [True, False])
def test_blocks_closed_form_equals_pair_loop(m: int, flags: tuple[bool, bool, bool], halved: bool) -> None:
    inv_on, var_on, cov_on = flags
    cfg = _cfg(invariance=inv_on, variance=var_on, covariance=cov_on, variance_halved=halved)
    z = torch.randn(m, 5, 4, generator=torch.Generator().manual_seed(m), dtype=T) * 0.7
    z[1] += 0.3  # block means differ, so inv is not just a variance
    fast = vicreg_blocks(z, cfg)
    pairs = [vicreg_pair(z[i], z[j], cfg) for i, j in itertools.permutations(range(m), 2)]
    assert len(pairs) == m * (m - 1)
    for name, on in zip(("inv", "var", "cov"), flags, strict=True):
        got = getattr(fast, name)
        if not on:
            assert got is None
            continue
        naive = torch.stack([getattr(p, name) for p in pairs]).mean()
        assert got.item() == pytest.approx(naive.item(), abs=1e-6, rel=1e-6), name
        assert got.item() > 0
    ref = torch.stack([p.weighted(cfg) for p in pairs]).mean()
    assert fast.weighted(cfg).item() == pytest.approx(ref.item(), abs=1e-6, rel=1e-6)


def test_blocks_closed_form_float32() -> None:
    z = torch.randn(4, 32, 16, generator=torch.Generator().manual_seed(5)) * 3.0 + 10.0
    cfg = LossConfig()
    fast = vicreg_blocks(z, cfg)
    pairs = [vicreg_pair(z[i], z[j], cfg) for i, j in itertools.permutations(range(4), 2)]
    for name in ("inv", "var", "cov"):
        naive = torch.stack([getattr(p, name) for p in pairs]).mean()
        assert getattr(fast, name).item() == pytest.approx(naive.item(), rel=1e-5), name


# ---------------------------------------------------------------- gradient flow

BETAS = {"inv": 25.0, "var": 25.0, "cov": 1.0}


def _encoder_setup() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    w = (torch.randn(6, 4, generator=g, dtype=T) * 0.2).requires_grad_()  # small: var hinge active
    a, b = torch.randn(8, 6, generator=g, dtype=T), torch.randn(8, 6, generator=g, dtype=T)
    return w, a, b


def _readings(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, cfg: LossConfig) -> dict:
    x, y = a @ w, b @ w
    return {"pair": vicreg_pair(x, y, cfg), "single": vicreg_single(x, (b @ w), cfg),
            "blocks": vicreg_blocks(x.view(2, 4, 4), cfg)}


def _reference_term(reading: str, name: str, w: torch.Tensor, a: torch.Tensor,
                    b: torch.Tensor) -> torch.Tensor:
    """The term written directly from the public functions (default cfg: halved variance)."""
    x, y = a @ w, b @ w
    if reading == "single":
        return {"inv": invariance(x, y.detach()), "var": variance(x), "cov": covariance(x)}[name]
    if reading == "pair":
        return {"inv": invariance(x, y), "var": (variance(x) + variance(y)) / 2,
                "cov": covariance(x) + covariance(y)}[name]
    z = x.view(2, 4, 4)  # M=2: the ordered pairs (0,1) and (1,0) have equal terms
    return {"inv": invariance(z[0], z[1]), "var": (variance(z[0]) + variance(z[1])) / 2,
            "cov": covariance(z[0]) + covariance(z[1])}[name]


@pytest.mark.parametrize("reading", ["pair", "single", "blocks"])
@pytest.mark.parametrize("name", ["inv", "var", "cov"])
def test_each_term_reaches_encoder_with_tiny_beta(reading: str, name: str) -> None:
    w, a, b = _encoder_setup()
    pred_w = torch.randn(6, 4, dtype=T, requires_grad=True)  # the JEPA branch: separate weights
    jepa = jepa_loss(a @ pred_w, torch.zeros(8, 4, dtype=T))
    cfg = _cfg(beta_vicreg=0.001, invariance=name == "inv", variance=name == "var", covariance=name == "cov")
    terms = _readings(w, a, b, cfg)[reading]
    for other in {"inv", "var", "cov"} - {name}:
        assert getattr(terms, other) is None
    loss, _ = total_loss(jepa, terms, cfg, cfg.beta_vicreg)
    (grad,) = torch.autograd.grad(loss, w)
    (ref,) = torch.autograd.grad(_reference_term(reading, name, w, a, b), w)
    assert ref.abs().max() > 1e-3  # the term really depends on the encoder here
    torch.testing.assert_close(grad, 0.001 * BETAS[name] * ref, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("reading", ["pair", "single", "blocks"])
def test_all_terms_sum_and_all_off_gives_no_gradient(reading: str) -> None:
    w, a, b = _encoder_setup()
    cfg = LossConfig(beta_vicreg=0.001)
    loss, _ = total_loss(torch.tensor(0.0, dtype=T), _readings(w, a, b, cfg)[reading], cfg, cfg.beta_vicreg)
    (grad,) = torch.autograd.grad(loss, w)
    ref = sum(0.001 * BETAS[n] * torch.autograd.grad(_reference_term(reading, n, w, a, b), w)[0]
              for n in BETAS)
    torch.testing.assert_close(grad, ref, rtol=1e-9, atol=1e-15)

    off = _cfg(beta_vicreg=0.001, invariance=False, variance=False, covariance=False)
    pred_w = torch.randn(6, 4, dtype=T, requires_grad=True)
    jepa = jepa_loss(a @ pred_w, torch.zeros(8, 4, dtype=T))
    loss, _ = total_loss(jepa, _readings(w, a, b, off)[reading], off, off.beta_vicreg)
    loss.backward()
    assert w.grad is None and pred_w.grad is not None
