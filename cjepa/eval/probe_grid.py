"""The I-JEPA linear-probe protocol: a grid of learning rates x weight decays, the head chosen on
a validation set, its accuracy reported on the test set.

I-JEPA's paper (appendix, linear evaluation) sweeps lr in {0.01, 0.05, 0.001} and weight decay in
{5e-4, 0} and reports the best; reporting the best *on the test set* is selection on test, so here
the best is chosen on the validation split (held out of the training images, never trained on)
and only the chosen head is read on the test split. The heads of one lr train together as one
bank (:func:`cjepa.eval.linear_probe._train_bank`), on all the bank's features.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cjepa.eval.linear_probe import _STD_FLOOR, _accuracy, _check, _one_cpu_thread, _train_bank

IJEPA_LRS = (0.01, 0.05, 0.001)
IJEPA_WEIGHT_DECAYS = (5e-4, 0.0)


def linear_probe_select(train: tuple[Tensor, Tensor], val: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                        epochs: int = 100, lrs: tuple[float, ...] = IJEPA_LRS,
                        weight_decays: tuple[float, ...] = IJEPA_WEIGHT_DECAYS, seed: int = 0) -> dict[str, float]:
    """``{"acc": test accuracy of the head best on val, "val_acc", "lr", "weight_decay"}``; each
    argument is (features (N, D), labels (N,)), features on the device the probe should run on."""
    (x, y), (xv, yv), (xt, yt) = train, val, test
    _check(x, y, xv, yv)
    _check(x, y, xt, yt)
    device = x.device
    mean = x.float().mean(dim=0)
    std = x.float().std(dim=0, correction=0)
    std = torch.where(std > _STD_FLOOR * std.max().clamp_min(1e-30), std, torch.ones_like(std))

    def norm(f: Tensor) -> Tensor:
        return (f.float().to(device) - mean) / std

    x, xv, xt = norm(x), norm(xv), norm(xt)
    y, yv, yt = y.long().to(device), yv.long().to(device), yt.long().to(device)
    classes = int(max(int(y.max()), int(yv.max()), int(yt.max()))) + 1
    wd = torch.tensor(weight_decays, dtype=torch.float32, device=device)
    best: dict[str, float] = {"val_acc": -1.0}
    for lr in lrs:
        with _one_cpu_thread(device):
            params = _train_bank(x, y, classes, wd, epochs, lr, torch.Generator().manual_seed(seed))
        val_acc, test_acc = _accuracy(params, xv, yv, classes), _accuracy(params, xt, yt, classes)
        head = int(val_acc.argmax())
        if float(val_acc[head]) > best["val_acc"]:  # ties: the first lr, the first wd
            best = {"acc": float(test_acc[head]), "val_acc": float(val_acc[head]), "lr": lr,
                    "weight_decay": float(weight_decays[head])}
    return best
