"""Collapse telemetry on pooled features (method.md §5).

A falling JEPA loss can hide collapse: a constant encoder predicts its own (constant) targets
perfectly. These figures look at the features themselves, so the sweep layer can stop a
collapsed trial. Each catches a different failure:

- ``std_min`` / ``std_mean``: per-feature std of the *raw* pooled features over the batch. This is
  the quantity VICReg's variance hinge pushes above gamma = 1, so it shows whether that term is
  satisfied; but it is scale-dependent (layer-normed targets vs raw context tokens differ).
- ``std_mean_normalized``: the same on L2-normalised rows, times sqrt(D). Scale-free, so it
  compares encoders and runs: 1.0 for isotropic features, 0 for complete collapse (every sample
  the same direction), whatever the feature norm. A net that merely shrinks its outputs lowers
  ``std_mean`` but not this; one that collapses lowers both.
- ``eff_rank``: dimensional collapse (features spanning few directions while each still varies).
- ``offdiag_corr``: redundancy between features, what VICReg's covariance term fights.

All statistics are computed in float64, return plain floats, and never produce NaN for finite
input (constant features, a single sample, a single dimension). Non-finite input (a diverged run)
gives NaN figures instead of an exception, so telemetry never crashes training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_CONST_REL = 1e-10  # a feature whose std is below this fraction of its magnitude counts as constant


def feature_std(feats: Tensor) -> dict[str, float]:
    """``{"std_min", "std_mean", "std_mean_normalized"}`` of per-feature stds over the batch.

    The std is unbiased (N - 1, as in VICReg's variance term); a single sample gives 0.
    """
    x = _as_matrix(feats)
    if not torch.isfinite(x).all():
        return {"std_min": math.nan, "std_mean": math.nan, "std_mean_normalized": math.nan}
    correction = 1 if x.shape[0] > 1 else 0
    std = x.std(dim=0, correction=correction)
    std_n = F.normalize(x, dim=1).std(dim=0, correction=correction)  # zero rows stay zero
    return {
        "std_min": float(std.min()),
        "std_mean": float(std.mean()),
        "std_mean_normalized": float(std_n.mean() * math.sqrt(x.shape[1])),
    }


def effective_rank(feats: Tensor, eps: float = 1e-12) -> float:
    """RankMe (Garrido et al., ICML 2023): ``exp(-sum_k p_k log p_k)``, ``p_k = s_k / ||s||_1 + eps``.

    ``s`` are the singular values of the (N, D) feature matrix **as is, not centred**: that is
    RankMe's definition, and we keep it so our numbers compare with the paper's. Consequence: a
    common offset shared by all samples counts as one direction (constant non-zero features give
    1, not 0). The value lies in [1, min(N, D)]; an all-zero matrix gives 1 (the floor), not NaN.
    """
    x = _as_matrix(feats)
    if not torch.isfinite(x).all():
        return math.nan
    s = torch.linalg.svdvals(x)
    p = s / s.sum().clamp_min(torch.finfo(s.dtype).tiny) + eps
    return float(torch.exp(-(p * p.log()).sum()))


def mean_abs_offdiag_corr(feats: Tensor) -> float:
    """Mean |Pearson correlation| over feature pairs k != l; 0 means decorrelated, 1 redundant.

    A constant feature has no defined correlation; it counts as 0 (not NaN) so one dead feature
    does not blank the figure. With fewer than 2 samples or 2 features the result is 0.
    """
    x = _as_matrix(feats)
    if not torch.isfinite(x).all():
        return math.nan
    n, d = x.shape
    if n < 2 or d < 2:
        return 0.0
    xc = x - x.mean(dim=0)
    std = xc.pow(2).mean(dim=0).sqrt()
    # Relative threshold: centring in float64 leaves ~1e-17 * |x| of rounding noise in a constant
    # feature, which an absolute "std > 0" test would turn into spurious +-1 correlations.
    live = std > _CONST_REL * x.abs().amax(dim=0)
    z = torch.where(live, xc / torch.where(live, std, torch.ones_like(std)), torch.zeros_like(xc))
    corr = (z.T @ z) / n
    off = corr.abs().sum() - corr.diagonal().abs().sum()
    return float(off / (d * (d - 1)))


def collapse_metrics(feats: Tensor, prefix: str) -> dict[str, float]:
    """All figures above, keyed ``{prefix}_std_min``, ``_std_mean``, ``_std_mean_normalized``,
    ``_eff_rank``, ``_offdiag_corr`` (e.g. prefix "target" -> "target_eff_rank")."""
    out = {f"{prefix}_{k}": v for k, v in feature_std(feats).items()}
    out[f"{prefix}_eff_rank"] = effective_rank(feats)
    out[f"{prefix}_offdiag_corr"] = mean_abs_offdiag_corr(feats)
    return out


def _as_matrix(feats: Tensor) -> Tensor:
    if feats.dim() != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        raise ValueError(f"features: expected a non-empty (N, D) matrix, got shape {tuple(feats.shape)}")
    return feats.detach().to(dtype=torch.float64)
