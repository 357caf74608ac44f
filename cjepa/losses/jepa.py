"""The I-JEPA regression loss between predicted and target patch representations.

The official I-JEPA code (facebookresearch/ijepa ``src/train.py``) uses ``F.smooth_l1_loss``
(beta 1, mean reduction); the paper writes a squared L2 distance. Both are offered behind
``loss.jepa`` so that the difference is a config value, not a code change (method.md §1).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

JEPA_KINDS = ("smooth_l1", "l2")


def jepa_loss(pred: Tensor, target: Tensor, kind: str = "smooth_l1") -> Tensor:
    """Mean regression loss between ``pred`` and ``target`` of identical shape ``(..., D)``.

    ``target`` must already be layer-normed and carry no gradient (the caller owns the
    stop-gradient, because it also owns the target encoder); this function stays a pure loss.

    - ``smooth_l1``: ``F.smooth_l1_loss(pred, target)``, beta 1, mean over all elements
      (the official code);
    - ``l2``: mean squared error over all elements (the paper's squared L2, averaged).

    Shapes must match exactly: silent broadcasting would turn a wiring bug into a plausible
    but meaningless number.
    """
    if pred.shape != target.shape:
        raise ValueError(f"jepa_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if kind == "smooth_l1":
        return F.smooth_l1_loss(pred, target, beta=1.0)
    if kind == "l2":
        return F.mse_loss(pred, target)
    raise ValueError(f"jepa_loss: unknown kind {kind!r}; expected one of {', '.join(JEPA_KINDS)}")
