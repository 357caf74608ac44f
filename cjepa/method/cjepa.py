"""The C-JEPA method in one object: context encoder, predictor, regulariser, EMA target, objective.

In the style of dinov2's meta-architecture: :class:`CJEPA` owns every network and the loss, and
exposes what a training loop needs: ``forward(batch) -> (loss, logs)`` (what DDP wraps: every
parameter with a gradient is used inside it), :meth:`CJEPA.update_target` after the optimizer
step, and the state to checkpoint. The loop outside only schedules, steps, evaluates and saves.

I-JEPA semantics (facebookresearch/ijepa): the target encoder sees the full image, its output is
layer-normed without parameters and the target blocks are cut from that *output*; the context
encoder sees only the context tokens; the predictor fills in each target block.

Several context views per image (``mask.context_views = K``, the official ``nenc``): the K views
are stacked along the batch (:meth:`cjepa.masks.Masks.stacked`), so the context encoder and the
predictor run once each on K*B rows, every view predicting its image's same target blocks, and
the JEPA loss is the mean over all rows, i.e. the mean of the K views' losses, as the official
``train.py`` repeats the targets once per context mask. The target encoder runs once per image.
The images are repeated K times for the context encoder (its patch embedding runs K times: the
encoder takes one index list per image row).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from cjepa.config import Config
from cjepa.losses import jepa_loss, total_loss
from cjepa.method.regularizers import StepTensors, build_regularizer, repeat_views
from cjepa.model.ema import ema_update, make_target
from cjepa.model.factory import build_encoder, build_predictor


@torch.no_grad()
def target_blocks(h: Tensor, target_idx: Tensor) -> Tensor:
    """Layer-normed target-encoder tokens of each target block: h (B, N, D) -> (M, B, Kt, D).

    One indexed gather straight from ``h_ln``: the same values as repeating ``h_ln`` M times and
    gathering per copy (the official ``apply_masks``), without the M-fold copy of the whole
    target output (issue 14; tests/method/test_cjepa.py checks the two agree exactly).
    """
    h_ln = F.layer_norm(h, (h.shape[-1],))
    rows = torch.arange(h.shape[0], device=h.device).view(1, -1, 1)
    return h_ln[rows, target_idx]


class CJEPA(nn.Module):
    """C-JEPA (and I-JEPA, its case without a regulariser: every weight 0) as one module.

    The weights are drawn in a fixed order from the global RNG (encoder, predictor, regulariser),
    so ``torch.manual_seed(seed)`` before construction decides them; the target is a copy.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.jepa_kind = cfg.loss.jepa
        self.loss_cfg = cfg.loss
        self.views = cfg.mask.context_views  # K context masks per image
        self.encoder = build_encoder(cfg.model)
        self.predictor = build_predictor(cfg.model, self.encoder.grid)
        self.regularizer = build_regularizer(cfg)  # None: plain I-JEPA
        self.target = make_target(self.encoder)

    def forward(self, batch: dict[str, Any]) -> tuple[Tensor, dict[str, float]]:
        """The objective of one batch and its float logs (one device sync)."""
        images, masks = batch["images"], batch["masks"]
        if masks.num_views != self.views:
            raise ValueError(f"CJEPA: the batch has {masks.num_views} context views per image, "
                             f"mask.context_views is {self.views}")
        with torch.no_grad():
            h = self.target(images)
        tgt = target_blocks(h, masks.targets)
        ctx_idx, tgt_idx = masks.stacked()  # (K*B, Kc), (M, K*B, Kt); K = 1: masks.context, masks.targets
        ctx = self.encoder(repeat_views(images, self.views), ctx_idx)
        pred = self.predictor(ctx, ctx_idx, tgt_idx)
        jepa = jepa_loss(pred.float(), repeat_views(tgt.float(), self.views, dim=1), self.jepa_kind)
        terms = None
        if self.regularizer is not None:
            tensors = StepTensors(step=int(batch["step"]), images=images, images2=batch.get("images2"),
                                  context_idx=ctx_idx, context=ctx, pred=pred, target_out=h)
            terms = self.regularizer(tensors, self.encoder)
        weight = self.regularizer.loss_weight if self.regularizer is not None else 0.0
        return total_loss(jepa, terms, self.loss_cfg, weight)

    @torch.no_grad()
    def update_target(self, momentum: float) -> None:
        """EMA step of the target towards the context encoder (momentum 0: an exact copy)."""
        ema_update(self.target, self.encoder, momentum)

    def online_state_dict(self) -> dict[str, Tensor]:
        """Everything trained by the optimizer: ``encoder.*``, ``predictor.*`` and the regulariser's
        own parts (``projector.*``), the key layout of cjepa's checkpoints."""
        state = {**self.encoder.state_dict(prefix="encoder."), **self.predictor.state_dict(prefix="predictor.")}
        if self.regularizer is not None:
            state.update(self.regularizer.state_dict())
        return state

    def load_online_state_dict(self, state: dict[str, Tensor]) -> None:
        """Inverse of :meth:`online_state_dict`; strict: a missing or unknown key raises."""
        parts = {"encoder.": self.encoder, "predictor.": self.predictor}
        rest = {k: v for k, v in state.items() if not k.startswith(tuple(parts))}
        for prefix, module in parts.items():
            module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        if self.regularizer is not None:
            self.regularizer.load_state_dict(rest)
        elif rest:
            raise RuntimeError(f"unexpected keys in the online state: {sorted(rest)[:5]}")


def unwrap(module: nn.Module) -> CJEPA:
    """The CJEPA inside a DDP wrapper (or the module itself)."""
    return getattr(module, "module", module)  # type: ignore[return-value]
