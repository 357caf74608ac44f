"""VICReg terms (facebookresearch/vicreg ``main_vicreg.py`` semantics) and C-JEPA's readings.

The three term functions match the official code for ``(N, D)`` inputs; their private
``_per_*`` twins accept extra leading dims (``(M, N, D)``) so that the ``pred_blocks`` reading
costs one batched op instead of a Python loop. All statistics are computed in (at least) float32 with
autocast disabled: under bf16 autocast the covariance matmul would otherwise run in bf16, and
its small squared off-diagonal entries are exactly what the term is about.

Which tensors the terms act on is ambiguous in the paper (method.md §3):
``vicreg_pair`` (two_views), ``vicreg_single`` (context_target), ``vicreg_blocks`` (pred_blocks).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from cjepa.config import LossConfig
from cjepa.losses.distributed import gather_with_grad


@contextlib.contextmanager
def _fp32(x: Tensor) -> Iterator[None]:
    """Disable autocast for the device of ``x`` (batch statistics want float32)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


def _hi(x: Tensor) -> Tensor:
    """Upcast half/bfloat16 to float32; keep float32/float64 (tests use float64 for exactness)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _per_variance(x: Tensor, gamma: float, eps: float) -> Tensor:
    """Hinge on the per-feature std over dim -2, averaged over features: shape ``x.shape[:-2]``."""
    with _fp32(x):
        std = torch.sqrt(_hi(x).var(dim=-2) + eps)  # unbiased (N - 1), like torch.var in the official code
        return F.relu(gamma - std).mean(dim=-1)


def _per_covariance(x: Tensor) -> Tensor:
    """Sum of squared off-diagonal covariance entries / D over dim -2: shape ``x.shape[:-2]``."""
    with _fp32(x):
        x = _hi(x)
        n, d = x.shape[-2], x.shape[-1]
        xc = x - x.mean(dim=-2, keepdim=True)
        cov = xc.mT @ xc / (n - 1)
        off = ~torch.eye(d, dtype=torch.bool, device=x.device)
        return (cov.pow(2) * off).sum(dim=(-2, -1)) / d


def invariance(x: Tensor, y: Tensor) -> Tensor:
    """``mean((x - y)^2)`` over batch and features (official: ``F.mse_loss(x, y)``)."""
    with _fp32(x):
        return F.mse_loss(_hi(x), _hi(y))


def variance(x: Tensor, gamma: float = 1.0, eps: float = 1e-4) -> Tensor:
    """``mean_k relu(gamma - sqrt(Var_k(x) + eps))`` for ``x`` of shape ``(N, D)``; Var unbiased."""
    return _per_variance(_check_2d(x, "variance"), gamma, eps)


def covariance(x: Tensor) -> Tensor:
    """``sum_{k != l} C_kl^2 / D`` for ``x`` of shape ``(N, D)``, ``C = (x - mean)^T (x - mean) / (N - 1)``.

    The diagonal (the variances) is excluded: the variance term handles it.
    """
    return _per_covariance(_check_2d(x, "covariance"))


def _check_2d(x: Tensor, name: str) -> Tensor:
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"{name}: expected (N, D) with N >= 2, got {tuple(x.shape)}")
    return x


@dataclass
class VICRegTerms:
    """The raw (unweighted) VICReg terms; ``None`` marks a term switched off in the config."""

    inv: Tensor | None
    var: Tensor | None
    cov: Tensor | None

    def weighted(self, cfg: LossConfig) -> Tensor:
        """``beta_sim*inv + beta_std*var + beta_cov*cov`` over the present terms.

        Not multiplied by ``beta_vicreg``: :func:`cjepa.losses.objective.total_loss` does that,
        so the logged value is comparable across beta_vicreg sweeps. With no term present the
        result is a 0-dim zero (no graph).
        """
        parts = [beta * t for beta, t in ((cfg.beta_sim, self.inv), (cfg.beta_std, self.var),
                                          (cfg.beta_cov, self.cov)) if t is not None]
        if not parts:
            return torch.zeros(())
        return torch.stack(parts).sum()

    def present(self) -> dict[str, Tensor]:
        """The terms that exist, keyed by name (for logging)."""
        return {k: v for k, v in (("inv", self.inv), ("var", self.var), ("cov", self.cov)) if v is not None}


def _stats_input(x: Tensor, cfg: LossConfig) -> Tensor:
    return gather_with_grad(x) if cfg.gather_distributed else x


def vicreg_pair(x: Tensor, y: Tensor, cfg: LossConfig) -> VICRegTerms:
    """Standard VICReg between two branches ``(N, D)`` (the ``two_views`` reading).

    As in the official code, invariance is on the local batch (DDP's gradient averaging makes
    it the global mean) and var/cov on the gathered global batch.
    """
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(f"vicreg_pair: expected two (N, D) tensors of one shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    inv = invariance(x, y) if cfg.invariance else None
    var = cov = None
    if cfg.variance or cfg.covariance:
        xs, ys = _stats_input(x, cfg), _stats_input(y, cfg)
        if cfg.variance:
            var = variance(xs, cfg.gamma, cfg.eps) + variance(ys, cfg.gamma, cfg.eps)
            if cfg.variance_halved:
                var = var / 2
        if cfg.covariance:
            cov = covariance(xs) + covariance(ys)
    return VICRegTerms(inv, var, cov)


def vicreg_single(x: Tensor, y_target: Tensor | None, cfg: LossConfig) -> VICRegTerms:
    """The ``context_target`` reading: inv = MSE(x, target), var/cov on ``x`` only.

    ``y_target`` comes from the EMA target encoder and is detached here, because in this
    reading only the context branch is trained. The variance is never halved: one branch.
    """
    if cfg.invariance:
        if y_target is None:
            raise ValueError("vicreg_single: loss.invariance is on but no target representation was given")
        if y_target.shape != x.shape:
            raise ValueError(f"vicreg_single: x {tuple(x.shape)} and target {tuple(y_target.shape)} differ")
        inv = invariance(x, y_target.detach())
    else:
        inv = None
    var = cov = None
    if cfg.variance or cfg.covariance:
        xs = _stats_input(x, cfg)
        var = variance(xs, cfg.gamma, cfg.eps) if cfg.variance else None
        cov = covariance(xs) if cfg.covariance else None
    return VICRegTerms(inv, var, cov)


def vicreg_blocks(z: Tensor, cfg: LossConfig) -> VICRegTerms:
    """The ``pred_blocks`` reading: ``vicreg_pair`` averaged over ordered block pairs, in O(M).

    ``z`` is ``(M, B, D)``: one pooled and projected predictor vector per target block per
    image. Averaging ``vicreg_pair(z_i, z_j)`` over the M(M-1) ordered pairs i != j gives:

    - inv: ``sum_{i!=j} |z_i - z_j|^2 = 2M sum_i |z_i - zbar|^2`` (zbar = mean over blocks),
      so inv = ``2/((M-1) B D) * sum_i |z_i - zbar|^2``; no cancellation-prone S2 - S1^2 form;
    - var: each block appears in 2(M-1) pairs, so the mean of ``(v_i + v_j)/2`` is ``mean_i v_i``
      (``2 mean_i v_i`` when not halved);
    - cov: the mean of ``c_i + c_j`` is ``2 mean_i c_i``.

    tests/losses/test_vicreg.py checks this against the naive double loop.
    """
    if z.dim() != 3:
        raise ValueError(f"vicreg_blocks: expected (M, B, D), got {tuple(z.shape)}")
    m = z.shape[0]
    if m < 2:
        raise ValueError(f"vicreg_blocks: needs M >= 2 target blocks to form pairs, got M={m}")
    inv = var = cov = None
    if cfg.invariance:
        with _fp32(z):
            zf = _hi(z)
            dev = zf - zf.mean(dim=0, keepdim=True)
            inv = 2.0 * dev.pow(2).sum() / ((m - 1) * zf.shape[1] * zf.shape[2])
    if cfg.variance or cfg.covariance:
        # gather along the batch dim: (M, B, D) -> (B, M, D) -> gather -> (M, N, D)
        zs = _stats_input(z.transpose(0, 1), cfg).transpose(0, 1)
        if zs.shape[1] < 2:
            raise ValueError(f"vicreg_blocks: var/cov need a batch of >= 2, got {zs.shape[1]}")
        if cfg.variance:
            var = _per_variance(zs, cfg.gamma, cfg.eps).mean()
            if not cfg.variance_halved:
                var = 2.0 * var
        if cfg.covariance:
            cov = 2.0 * _per_covariance(zs).mean()
    return VICRegTerms(inv, var, cov)
