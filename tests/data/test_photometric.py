"""VICReg's blur and solarisation: hand-checked on tensors, equal to torchvision's blur, drawn per
image where the crops are drawn, and nothing changes while they are off."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from cjepa.config import DataConfig
from cjepa.data import StepBatchDataset, load_split, photometric


def test_solarize_inverts_the_bright_pixels_of_the_drawn_images_only() -> None:
    x = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]).view(1, 1, 1, 5).repeat(2, 1, 1, 1)
    out = photometric.apply(x, torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    assert out[0].flatten().tolist() == [0.0, 0.25, 0.5, 0.25, 0.0] and torch.equal(out[1], x[1])


def test_blur_is_torchvisions_gaussian_blur_per_image_and_sigma_zero_is_identity() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 28, 28, generator=g)
    out = photometric.apply(x, torch.tensor([[0.8, 0.0], [0.0, 0.0], [0.3, 0.0]]))
    assert torch.equal(out[1], x[1])
    for i, sigma in ((0, 0.8), (2, 0.3)):
        ref = TF.gaussian_blur(x[i:i + 1], kernel_size=[7, 7], sigma=[sigma, sigma])  # radius ceil(3 * 0.8) = 3
        assert torch.allclose(out[i:i + 1], ref, atol=1e-6) if sigma == 0.8 else out[i].std() < x[i].std()
    flat = torch.full((1, 1, 28, 28), 0.3)
    assert torch.allclose(photometric.apply(flat, torch.tensor([[1.5, 0.0]])), flat)


def test_sigmas_scale_with_the_image_and_probabilities_hold() -> None:
    p = photometric.draw(20000, 0.1, 0.2, 28, torch.Generator().manual_seed(1))
    blurred = p[:, 0] > 0
    assert abs(blurred.float().mean().item() - 0.1) < 0.01 and abs(p[:, 1].mean().item() - 0.2) < 0.01
    assert p[blurred, 0].min() >= 0.1 * 28 / 224 and p[:, 0].max() <= 2.0 * 28 / 224


def test_loader_augments_only_the_view_asked_for() -> None:
    data = load_split(DataConfig(dataset="digits", val_samples=0), "train")

    def batch(blur: tuple[float, float], solarize: tuple[float, float]) -> dict:
        ds = StepBatchDataset(data, 28, (0.3, 1.0), (0.3,), (0.37,), 1, seed=0, mask_fn=None, two_views=True,
                              blur=blur, solarize=solarize)
        return ds[(5, torch.arange(32))]

    plain, vicreg = batch((0.0, 0.0), (0.0, 0.0)), batch((0.0, 1.0), (0.0, 0.0))
    assert torch.equal(plain["images"], vicreg["images"])  # view 1 (the JEPA's input) untouched
    assert not torch.equal(plain["images2"], vicreg["images2"])
    tv = (lambda x: (x[..., 1:] - x[..., :-1]).abs().mean())  # noqa: E731
    assert tv(vicreg["images2"]) < tv(plain["images2"])  # blurred
    assert torch.equal(batch((0.0, 1.0), (0.0, 0.0))["images2"], vicreg["images2"])  # a function of the step


@pytest.mark.parametrize("bad", ["data.blur=[1.5,0]", "data.solarize=[0,-0.1]"])
def test_probabilities_out_of_range_are_refused(tmp_path, bad) -> None:
    from cjepa.config import load_config
    from cjepa.errors import ConfigError

    with pytest.raises(ConfigError, match=bad.split("=")[0].replace(".", r"\.")):
        load_config(None, [bad])
