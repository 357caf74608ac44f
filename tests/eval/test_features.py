"""extract_features: exact mean pooling, mode restoration, batch-size invariance."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cjepa.eval import extract_features


class TokenEncoder(nn.Module):
    """Returns known tokens: token p of image i is (sum of image i) * (p + 1) * w + p, for p < 4.

    The mean over the 4 patches is therefore sum_i * 2.5 * w + 1.5, computable by hand. It also
    records the mode it was called in and contains dropout to show eval mode is really used.
    """

    def __init__(self, dim: int = 3) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.arange(1.0, dim + 1.0))
        self.drop = nn.Dropout(p=0.9)
        self.seen_training: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen_training.append(self.training)
        s = x.flatten(1).sum(dim=1)  # (B,)
        p = torch.arange(4.0)  # (P,)
        tokens = s[:, None, None] * (p + 1)[None, :, None] * self.w + p[None, :, None]
        return self.drop(tokens)


def _images(n: int = 10) -> torch.Tensor:
    return torch.randn(n, 1, 2, 2, generator=torch.Generator().manual_seed(0))


def test_pooled_mean_exact() -> None:
    enc, images = TokenEncoder(), _images()
    feats = extract_features(enc, images, batch_size=4)
    s = images.flatten(1).sum(dim=1)
    expected = s[:, None] * 2.5 * torch.tensor([1.0, 2.0, 3.0]) + 1.5
    assert feats.shape == (10, 3) and feats.dtype == torch.float32 and feats.device.type == "cpu"
    torch.testing.assert_close(feats, expected)
    assert not feats.requires_grad


@pytest.mark.parametrize("training", [True, False])
def test_mode_restored(training: bool) -> None:
    enc = TokenEncoder()
    enc.train(training)
    extract_features(enc, _images(), batch_size=3)
    assert enc.seen_training == [False] * 4  # every batch ran in eval mode
    assert enc.training is training and enc.drop.training is training


def test_mixed_submodule_modes_restored() -> None:
    enc = TokenEncoder().train()
    enc.drop.eval()  # e.g. a frozen part kept in eval inside a training model
    extract_features(enc, _images())
    assert enc.training and not enc.drop.training


def test_mode_restored_after_error() -> None:
    enc = TokenEncoder().train()
    with pytest.raises(ValueError):
        extract_features(enc, torch.zeros(2, 3))  # not (N, C, H, W)
    enc2 = nn.Sequential(nn.Flatten(), nn.Linear(4, 2, bias=False), nn.Unflatten(1, (1, 1, 2)))
    enc2.train()
    with pytest.raises(ValueError):
        extract_features(enc2, _images())  # 4-D output is rejected
    assert enc2.training


def test_batch_size_does_not_change_results() -> None:
    enc, images = TokenEncoder(), _images(13)
    ref = extract_features(enc, images, batch_size=13)
    for bs in (1, 5, 512):
        torch.testing.assert_close(extract_features(enc, images, batch_size=bs), ref, rtol=0, atol=0)


def test_autocast_bf16_on_cpu() -> None:
    enc = nn.Sequential(nn.Flatten(2), nn.Linear(4, 8))  # (B, 1, 2, 2) -> (B, 1, 8): one "patch"
    images = _images()
    ref = extract_features(enc, images)
    low = extract_features(enc, images, autocast_dtype=torch.bfloat16)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, ref, rtol=0.05, atol=0.05)


def test_grid_pooling_by_hand() -> None:
    from cjepa.eval import pool_tokens

    tokens = torch.arange(2 * 16 * 3, dtype=torch.float32).reshape(2, 16, 3)  # a 4x4 grid of 3-d tokens
    out = pool_tokens(tokens, "grid2")
    assert out.shape == (2, 12)
    grid = tokens.reshape(2, 4, 4, 3)
    top_left = grid[:, :2, :2].mean(dim=(1, 2))  # cell (0, 0): rows 0-1, columns 0-1
    bottom_right = grid[:, 2:, 2:].mean(dim=(1, 2))
    cells = out.reshape(2, 3, 2, 2)  # (B, D, K, K): features first, then cells row-major
    assert torch.allclose(cells[:, :, 0, 0], top_left) and torch.allclose(cells[:, :, 1, 1], bottom_right)
    assert torch.allclose(pool_tokens(tokens, "grid1"), tokens.mean(dim=1))
    with pytest.raises(ValueError, match="gridK"):
        pool_tokens(tokens, "spatial")
    with pytest.raises(ValueError, match="square token grid"):
        pool_tokens(tokens[:, :15], "grid2")
