"""jepa_loss against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from cjepa.losses import jepa_loss


def test_smooth_l1_hand_value() -> None:
    # |diff| = 0.5 -> 0.5 * 0.5^2 = 0.125 (quadratic part, beta=1); |diff| = 2.0 -> 2.0 - 0.5 = 1.5
    pred = torch.tensor([[0.0, 0.0]])
    target = torch.tensor([[0.5, -2.0]])
    assert jepa_loss(pred, target).item() == pytest.approx((0.125 + 1.5) / 2)
    assert jepa_loss(pred, target, "smooth_l1").item() == pytest.approx(0.8125)


def test_l2_hand_value() -> None:
    pred = torch.tensor([[0.0, 0.0]])
    target = torch.tensor([[0.5, -2.0]])
    assert jepa_loss(pred, target, "l2").item() == pytest.approx((0.25 + 4.0) / 2)


def test_averages_over_all_leading_dims() -> None:
    pred = torch.zeros(2, 3, 4)
    target = torch.zeros(2, 3, 4)
    target[1, 2, 3] = 2.0  # one element of 24: 1.5 / 24 and 4 / 24
    assert jepa_loss(pred, target).item() == pytest.approx(1.5 / 24)
    assert jepa_loss(pred, target, "l2").item() == pytest.approx(4.0 / 24)


def test_gradient_reaches_pred() -> None:
    pred = torch.zeros(1, 2, requires_grad=True)
    jepa_loss(pred, torch.tensor([[0.5, -2.0]])).backward()
    # d/dp mean(smooth_l1): (p - t)/2 for |p-t|<1, sign(p - t)/2 otherwise
    assert torch.allclose(pred.grad, torch.tensor([[-0.25, 0.5]]))


def test_errors() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        jepa_loss(torch.zeros(2), torch.zeros(2), "l1")
    with pytest.raises(ValueError, match="differ"):
        jepa_loss(torch.zeros(2, 3), torch.zeros(1, 3))
