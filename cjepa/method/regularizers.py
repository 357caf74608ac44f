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

Several context views (``mask.context_views = K > 1``, I-JEPA's ``nenc``): the method stacks the K
views along the batch, view-major (:meth:`cjepa.masks.Masks.stacked`), so ``context`` and ``pred``
hold K copies of the batch. One rule for every reading, from VICReg's per-branch statistics: a
term that compares two things compares them within a view (each view is a full C-JEPA step on its
own mask), batch statistics (variance, covariance, SIGReg's characteristic function) are taken
per view, and each term is averaged over the views (:func:`cjepa.losses.terms.mean_terms`: a mean,
so its scale and tuned weight do not depend on K; K = 1 is the old computation, bit for bit).
Statistics over K*B rows would count each image K times, rows that are far from independent.
Each class says what this means for it.
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
from cjepa.losses.terms import mean_terms
from cjepa.losses.vicreg import covariance, variance
from cjepa.model.factory import build_projector


@dataclass
class StepTensors:
    """What the method's forward pass computed, for a regulariser to read. K = ``mask.context_views``
    context masks per image: the context side holds K copies of the batch, view-major (row
    ``v * B + i`` is view v of image i); the images and the target side hold one."""

    step: int  # the global step (regularisers that draw random numbers seed from it)
    images: Tensor  # (B, C, H, W) view 1 (the first augmented crop)
    images2: Tensor | None  # view 2 (only when the regulariser asks for it)
    context_idx: Tensor  # (K*B, Kc)
    context: Tensor  # (K*B, Kc, D) context-encoder tokens of view 1
    pred: Tensor  # (M, K*B, Kt, D) predicted target-block tokens
    target_out: Tensor  # (B, N, D) target-encoder output of view 1, no gradient


def repeat_views(x: Tensor, views: int, dim: int = 0) -> Tensor:
    """``x`` repeated ``views`` times along ``dim``, view-major, as :meth:`cjepa.masks.Masks.stacked`
    lays out the context views; ``x`` itself for one view (no copy)."""
    if views == 1:
        return x
    reps = [1] * x.dim()
    reps[dim] = views
    return x.repeat(*reps)


class Regularizer(nn.Module):
    """One reading of the extra terms; ``forward`` returns the raw (unweighted) terms and
    :attr:`loss_weight` is what the objective multiplies them by. What the rest of the house knows of
    it (terms, weight key, second view, targets) is its row in the spec table."""

    name: ClassVar[str]

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.loss_cfg = cfg.loss
        self.loss_weight = SPECS[self.name].weight_of(cfg)  # loss.beta_vicreg, sigreg.weight, ...
        self.views = cfg.mask.context_views  # K: the context side of StepTensors holds K copies of the batch

    def project_views(self, projector: nn.Module, x: Tensor) -> Tensor:
        """``projector`` on (K*B, D) rows, once per context view: each view its own batch-norm
        statistics, as VICReg calls its expander once per branch; one call for one view."""
        if self.views == 1:
            return projector(x)
        return torch.cat([projector(v) for v in x.chunk(self.views)])

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
    every ordered pair of blocks (the paper's Algorithm 1 as re-implementers read it).

    K context views: the pairs are the blocks one view predicts (the blocks of one image are
    compared as predicted from one context), the terms averaged over the views; each (block, view)
    is a projector branch of its own under ``loss.projector_per_branch``."""

    name = "pred_blocks"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.projector = _projector(cfg)

    def embed(self, t: StepTensors, encoder: nn.Module) -> Tensor:
        m, b = t.pred.shape[:2]
        pooled = t.pred.mean(dim=2)  # (M, K*B, D)
        if self.loss_cfg.projector_per_branch:  # each block (and view) its own batch-norm statistics
            return torch.stack([self.project_views(self.projector, block) for block in pooled])
        return self.projector(pooled.reshape(m * b, -1)).view(m, b, -1)

    def terms(self, z: Tensor) -> VICRegTerms:
        return mean_terms([vicreg_blocks(v, self.loss_cfg) for v in z.float().chunk(self.views, dim=1)])


@register
class ContextTarget(Regularizer):
    """The paper's pseudo-code reading: invariance between the pooled context tokens and the pooled
    target-encoder output (no gradient); variance and covariance on the context side.

    K context views: the invariance is each view's pooled representation against the one target
    (the target encoder sees the full image once), averaged over the views; pulling every view to
    the same target pulls the views together, so no second, between-view term is added (the
    paper's reading has one invariance). Variance and covariance take each view's batch
    statistics (VICReg's per branch), averaged."""

    name = "context_target"

    def embed(self, t: StepTensors, encoder: nn.Module) -> tuple[Tensor, Tensor]:
        return t.context, t.target_out

    def terms(self, embedded: tuple[Tensor, Tensor]) -> VICRegTerms:
        context, target = embedded  # pooled in float32: a bf16 mean over tokens loses digits
        pooled_target = target.float().mean(dim=1)
        views = context.float().mean(dim=1).chunk(self.views)
        return mean_terms([vicreg_single(c, pooled_target, self.loss_cfg) for c in views])


@register
class TwoViews(Regularizer):
    """The abstract's "augmented views" reading: standard VICReg between the projected, pooled
    context-encoder representations of two crops of each image (same context mask).

    K context views: the second crop is encoded under each of the K masks (K more context-encoder
    rows per image), and VICReg pairs crop 1 and crop 2 under the same mask, so the invariance
    stays about the augmentation, not the mask; each (crop, view) is a branch with its own
    statistics and projector batch norm; the terms are averaged over the views."""

    name = "two_views"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.projector = _projector(cfg)

    def embed(self, t: StepTensors, encoder: nn.Module) -> tuple[Tensor, Tensor]:
        if t.images2 is None:
            raise ValueError("two_views: the batch has no second view (images2)")
        ctx2 = encoder(repeat_views(t.images2, self.views), t.context_idx)
        views = t.context.mean(dim=1), ctx2.mean(dim=1)
        if self.loss_cfg.projector_per_branch:  # VICReg: the expander once per view, its own statistics
            return self.project_views(self.projector, views[0]), self.project_views(self.projector, views[1])
        return self.projector(torch.cat(views)).chunk(2)  # type: ignore[return-value]

    def terms(self, embedded: tuple[Tensor, Tensor]) -> VICRegTerms:
        z1, z2 = (z.float().chunk(self.views) for z in embedded)
        return mean_terms([vicreg_pair(a, b, self.loss_cfg) for a, b in zip(z1, z2, strict=True)])



@register
class PredTokens(Regularizer):
    """The reading of public third-party code: variance and covariance on the predictor's per-token
    outputs, flattened over blocks, batch and tokens; the JEPA loss itself is the invariance term
    (``loss.invariance`` has no effect here). A pooled VICReg cannot see every masked token
    collapsing to one vector; this one can.

    K context views: the JEPA loss, its invariance, already asks every view to predict the same
    targets; variance and covariance take each view's tokens on their own, averaged."""

    name = "pred_tokens"

    def embed(self, t: StepTensors, encoder: nn.Module) -> Tensor:
        d = t.pred.shape[-1]  # view-major rows: (K, M, B, Kt, D) flattened to (K * M * B * Kt, D)
        return t.pred.unflatten(1, (self.views, -1)).transpose(0, 1).reshape(-1, d)

    def terms(self, tokens: Tensor) -> VICRegTerms:
        c = self.loss_cfg
        per_view = []
        for view in tokens.float().chunk(self.views):
            x = gather_with_grad(view) if c.gather_distributed else view
            per_view.append(VICRegTerms(inv=None, var=variance(x, c.gamma, c.eps) if c.variance else None,
                                        cov=covariance(x) if c.covariance else None))
        return mean_terms(per_view)


@register
class SIGReg(Regularizer):
    """LeJEPA's SIGReg (cjepa/losses/sigreg.py) on the pooled context-encoder representation:
    the Epps-Pulley statistic against N(0, 1) along ``sigreg.projections`` random directions,
    fresh every step; weighted by ``sigreg.weight``. Needs neither EMA nor stop-gradient in
    LeJEPA; here it can run with both.

    K context views: the statistic of each view's batch, along the same directions, averaged
    over the views, as LeJEPA averages SIGReg over its views."""

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
        gather = self.loss_cfg.gather_distributed
        return mean_terms([SIGRegTerms(sigreg(v, a, self.t, self.weights, gather=gather)) for v in x.chunk(self.views)])
