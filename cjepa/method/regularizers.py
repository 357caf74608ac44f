"""The regularisers C-JEPA adds to the JEPA loss: one class per VICReg reading (chosen by
``loss.vicreg_mode``, weighted by ``loss.beta_vicreg``) and SIGReg (its own section: ``sigreg.weight``).

The paper does not say which tensors its VICReg terms act on (method.md §3), so every reading is
a :class:`Regularizer` in :data:`REGULARIZERS`. Adding a reading (or another regulariser) is one
row in the torch-free table ``cjepa/config/regularizer_specs.py`` (its terms, its weight key,
whether it needs a second view, how many targets), one class here registered with :func:`register`
under the same name, and its test: validation, the metric names, the data pipeline and
:func:`build_regularizer` read the row (``Config.regularizer``: the one that acts, if any).

A regulariser owns its trainable parts (e.g. the projector), so they are in the optimizer, under
DDP and in the checkpoint with the rest of the online network. It works in two stages:
:meth:`Regularizer.embed` runs the networks under the step's autocast, then :meth:`Regularizer.terms`
computes the batch statistics in float32 with autocast off (the covariance's small off-diagonal
entries are what the term is about, and bf16 would round them away).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from cjepa.config import Config
from cjepa.config.regularizer_specs import SPECS
from cjepa.losses import SIGRegTerms, Terms, VICRegTerms, vicreg_blocks, vicreg_pair, vicreg_single
from cjepa.losses.distributed import gather_with_grad
from cjepa.losses.sigreg import directions, sigreg, trapezoid_weights
from cjepa.losses.vicreg import covariance, variance
from cjepa.model.factory import build_projector


@dataclass
class StepTensors:
    """What the method's forward pass computed, for a regulariser to read."""

    step: int  # the global step (regularisers that draw random numbers seed from it)
    images: Tensor  # (B, C, H, W) view 1
    images2: Tensor | None  # view 2 (only when the regulariser asks for it)
    context_idx: Tensor  # (B, Kc)
    context: Tensor  # (B, Kc, D) context-encoder tokens of view 1
    pred: Tensor  # (M, B, Kt, D) predicted target-block tokens
    target_out: Tensor  # (B, N, D) target-encoder output of view 1, no gradient


class Regularizer(nn.Module):
    """One reading of the extra terms; ``forward`` returns the raw (unweighted) terms and
    :attr:`loss_weight` is what the objective multiplies them by. What the rest of the house knows of
    it (terms, weight key, second view, targets) is its row in the spec table."""

    name: ClassVar[str]

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.loss_cfg = cfg.loss
        self.loss_weight = SPECS[self.name].weight_of(cfg)  # loss.beta_vicreg, sigreg.weight, ...

    def embed(self, t: StepTensors, encoder: nn.Module) -> Any:
        """The tensors the statistics are taken of (runs under the step's autocast)."""
        raise NotImplementedError

    def terms(self, embedded: Any) -> Terms:
        """The terms of :meth:`embed`'s output, in float32."""
        raise NotImplementedError

    def forward(self, t: StepTensors, encoder: nn.Module) -> Terms:
        embedded = self.embed(t, encoder)
        on_cuda = t.images.is_cuda
        with torch.autocast(t.images.device.type, enabled=False) if on_cuda else contextlib.nullcontext():
            return self.terms(embedded)


REGULARIZERS: dict[str, type[Regularizer]] = {}


def register(cls: type[Regularizer]) -> type[Regularizer]:
    """Class decorator: make ``cls`` selectable under its row in ``cjepa/config/regularizer_specs.py``
    (``loss.vicreg_mode=<name>`` for a reading, ``<name>.weight > 0`` otherwise); the row must exist."""
    if cls.name in REGULARIZERS:
        raise ValueError(f"regulariser {cls.name!r} is registered twice")
    if cls.name not in SPECS:
        raise ValueError(f"regulariser {cls.name!r} has no row in cjepa/config/regularizer_specs.py (add_spec)")
    REGULARIZERS[cls.name] = cls
    return cls


def build_regularizer(cfg: Config) -> Regularizer | None:
    """The configured regulariser, or None for plain I-JEPA (every weight 0 or every term off)."""
    spec = cfg.regularizer
    return None if spec is None else REGULARIZERS[spec.name](cfg)


def needs_second_view(cfg: Config) -> bool:
    """Whether the data pipeline must make a second augmented view per image (the regulariser's spec)."""
    spec = cfg.regularizer
    return spec is not None and spec.second_view


def _projector(cfg: Config) -> nn.Module:
    return build_projector(cfg.model.embed_dim, cfg.loss.projector_dim or cfg.model.embed_dim)


@register
class PredBlocks(Regularizer):
    """Mean-pool the predictor output of each of the M target blocks, project, and apply VICReg to
    every ordered pair of blocks (the paper's Algorithm 1 as re-implementers read it)."""

    name = "pred_blocks"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.projector = _projector(cfg)

    def embed(self, t: StepTensors, encoder: nn.Module) -> Tensor:
        m, b = t.pred.shape[:2]
        pooled = t.pred.mean(dim=2)  # (M, B, D)
        if self.loss_cfg.projector_per_branch:  # each block its own batch-norm statistics
            return torch.stack([self.projector(block) for block in pooled])
        return self.projector(pooled.reshape(m * b, -1)).view(m, b, -1)

    def terms(self, z: Tensor) -> VICRegTerms:
        return vicreg_blocks(z.float(), self.loss_cfg)


@register
class ContextTarget(Regularizer):
    """The paper's pseudo-code reading: invariance between the pooled context tokens and the pooled
    target-encoder output (no gradient); variance and covariance on the context side."""

    name = "context_target"

    def embed(self, t: StepTensors, encoder: nn.Module) -> tuple[Tensor, Tensor]:
        return t.context, t.target_out

    def terms(self, embedded: tuple[Tensor, Tensor]) -> VICRegTerms:
        context, target = embedded  # pooled in float32: a bf16 mean over tokens loses digits
        return vicreg_single(context.float().mean(dim=1), target.float().mean(dim=1), self.loss_cfg)


@register
class TwoViews(Regularizer):
    """The abstract's "augmented views" reading: standard VICReg between the projected, pooled
    context-encoder representations of two crops of each image (same context mask)."""

    name = "two_views"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.projector = _projector(cfg)

    def embed(self, t: StepTensors, encoder: nn.Module) -> tuple[Tensor, Tensor]:
        if t.images2 is None:
            raise ValueError("two_views: the batch has no second view (images2)")
        ctx2 = encoder(t.images2, t.context_idx)
        views = t.context.mean(dim=1), ctx2.mean(dim=1)
        if self.loss_cfg.projector_per_branch:  # VICReg: the expander once per view, its own statistics
            return self.projector(views[0]), self.projector(views[1])
        return self.projector(torch.cat(views)).chunk(2)  # type: ignore[return-value]

    def terms(self, embedded: tuple[Tensor, Tensor]) -> VICRegTerms:
        z1, z2 = embedded
        return vicreg_pair(z1.float(), z2.float(), self.loss_cfg)



@register
class PredTokens(Regularizer):
    """The reading of public third-party code: variance and covariance on the predictor's per-token
    outputs, flattened over blocks, batch and tokens; the JEPA loss itself is the invariance term
    (``loss.invariance`` has no effect here). A pooled VICReg cannot see every masked token
    collapsing to one vector; this one can."""

    name = "pred_tokens"

    def embed(self, t: StepTensors, encoder: nn.Module) -> Tensor:
        return t.pred.reshape(-1, t.pred.shape[-1])  # (M * B * Kt, D)

    def terms(self, tokens: Tensor) -> VICRegTerms:
        c = self.loss_cfg
        x = gather_with_grad(tokens.float()) if c.gather_distributed else tokens.float()
        return VICRegTerms(inv=None, var=variance(x, c.gamma, c.eps) if c.variance else None,
                           cov=covariance(x) if c.covariance else None)


@register
class SIGReg(Regularizer):
    """LeJEPA's SIGReg (cjepa/losses/sigreg.py) on the pooled context-encoder representation:
    the Epps-Pulley statistic against N(0, 1) along ``sigreg.projections`` random directions,
    fresh every step; weighted by ``sigreg.weight``. Needs neither EMA nor stop-gradient in
    LeJEPA; here it can run with both."""

    name = "sigreg"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.seed, self.projections = cfg.run.seed, cfg.sigreg.projections
        t, w = trapezoid_weights(cfg.sigreg.knots, cfg.sigreg.t_max)
        self.register_buffer("t", t, persistent=False)
        self.register_buffer("weights", w, persistent=False)

    def embed(self, t: StepTensors, encoder: nn.Module) -> tuple[Tensor, int]:
        return t.context.mean(dim=1), t.step

    def terms(self, embedded: tuple[Tensor, int]) -> SIGRegTerms:
        x, step = embedded
        a = directions(x.shape[1], self.projections, self.seed, step, x.device)
        return SIGRegTerms(sigreg(x, a, self.t, self.weights, gather=self.loss_cfg.gather_distributed))
