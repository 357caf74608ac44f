"""total_loss: the formula, the log dict and the plain I-JEPA path (the weight is the regulariser's own:
loss.beta_vicreg for the VICReg readings, sigreg.weight for SIGReg)."""

from __future__ import annotations

import pytest
import torch

from cjepa.config import LossConfig
from cjepa.losses import VICRegTerms, total_loss


def _terms() -> VICRegTerms:
    return VICRegTerms(inv=torch.tensor(1.0), var=torch.tensor(0.5), cov=torch.tensor(2.0))


def test_formula_and_logs() -> None:
    cfg = LossConfig(beta_vicreg=0.1, beta_sim=25.0, beta_std=25.0, beta_cov=1.0)
    loss, logs = total_loss(torch.tensor(0.3), _terms(), cfg, cfg.beta_vicreg)
    # weighted = 25*1 + 25*0.5 + 1*2 = 39.5 ; loss = 0.3 + 0.1 * 39.5 = 4.25
    assert loss.item() == pytest.approx(4.25)
    assert logs == pytest.approx({"loss": 4.25, "loss_jepa": 0.3, "vicreg_inv": 1.0, "vicreg_var": 0.5,
                                  "vicreg_cov": 2.0, "loss_vicreg": 39.5})
    assert all(isinstance(v, float) for v in logs.values())


def test_missing_term_is_excluded() -> None:
    cfg = LossConfig(beta_vicreg=1.0, beta_sim=25.0, beta_std=3.0, beta_cov=2.0)
    terms = VICRegTerms(inv=None, var=torch.tensor(0.5), cov=torch.tensor(2.0))
    loss, logs = total_loss(torch.tensor(0.0), terms, cfg, cfg.beta_vicreg)
    assert loss.item() == pytest.approx(3.0 * 0.5 + 2.0 * 2.0)
    assert "vicreg_inv" not in logs and logs["loss_vicreg"] == pytest.approx(5.5)


def test_plain_ijepa_path() -> None:
    cfg = LossConfig(beta_vicreg=0.0)
    jepa = torch.tensor(0.7, requires_grad=True)
    loss, logs = total_loss(jepa, None, cfg, 0.0)
    assert loss is jepa
    assert logs == pytest.approx({"loss": 0.7, "loss_jepa": 0.7})


def test_beta_zero_logs_terms_but_does_not_add_them() -> None:
    cfg = LossConfig(beta_vicreg=0.0)
    x = torch.tensor(1.0, requires_grad=True)
    terms = VICRegTerms(inv=x * 2, var=None, cov=None)
    loss, logs = total_loss(torch.tensor(0.7), terms, cfg, cfg.beta_vicreg)
    assert loss.item() == pytest.approx(0.7) and not loss.requires_grad
    assert logs["vicreg_inv"] == pytest.approx(2.0) and logs["loss_vicreg"] == pytest.approx(50.0)


def test_single_sync_no_item(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(self: torch.Tensor) -> float:
        raise AssertionError("total_loss must not call .item() per term")

    monkeypatch.setattr(torch.Tensor, "item", boom)
    _, logs = total_loss(torch.tensor(0.3), _terms(), LossConfig(), 0.001)
    assert set(logs) == {"loss", "loss_jepa", "vicreg_inv", "vicreg_var", "vicreg_cov", "loss_vicreg"}


def test_sigreg_terms_take_the_weight_they_are_given() -> None:
    """SIGReg's one term is multiplied by the weight passed (sigreg.weight), not by loss.beta_vicreg."""
    from cjepa.losses import SIGRegTerms

    cfg = LossConfig(beta_vicreg=0.0)
    loss, logs = total_loss(torch.tensor(0.3), SIGRegTerms(torch.tensor(2.0)), cfg, 0.25)
    assert loss.item() == pytest.approx(0.3 + 0.25 * 2.0)
    assert logs == pytest.approx({"loss": 0.8, "loss_jepa": 0.3, "sigreg": 2.0, "loss_vicreg": 2.0})
