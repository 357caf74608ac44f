"""SIGReg (LeJEPA, Balestriero & LeCun 2025): push embeddings towards an isotropic standard Gaussian.

Written from the paper's formulas (arXiv 2511.08544, SIGReg with the Epps-Pulley test): project the
(N, D) embeddings on P random unit directions a_p; for each 1-D sample z = x a_p compare its
empirical characteristic function with the standard normal's, weighted by that same Gaussian:

    EP(z) = N * integral |phi_N(t) - exp(-t^2/2)|^2 exp(-t^2/2) dt,   phi_N(t) = mean_n exp(i t z_n)

and average EP over the directions. The integral runs over [-t_max, t_max] by the trapezoid rule
on ``knots`` points (the paper: 17 knots on [-5, 5]); since |phi_N(t) - phi(t)|^2 is even in t,
only t >= 0 is evaluated and doubled. ``|.|^2 = (mean cos(tz) - exp(-t^2/2))^2 + (mean sin(tz))^2``.

Why the directions come from an explicit generator seeded by (seed, step): the paper draws fresh
directions every step; drawing them from the global RNG would make resume and the golden-loss
tests depend on unrelated draws, and every DDP rank must use the same directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from cjepa.losses.distributed import gather_with_grad

_DIRECTION_TAG = 0x51_6E_E6


@dataclass
class SIGRegTerms:
    """The regulariser's one term (a :class:`~cjepa.losses.terms.Terms`): ``L = L_jepa + weight * sigreg``
    (``sigreg.weight``, LeJEPA's lambda)."""

    sigreg: Tensor

    def weighted(self, cfg: object) -> Tensor:
        return self.sigreg

    def present(self) -> dict[str, Tensor]:
        return {"sigreg": self.sigreg}  # keeps this stream apart from the others seeded by (seed, step)


def directions(dim: int, count: int, seed: int, step: int, device: torch.device | str = "cpu") -> Tensor:
    """``count`` random unit vectors in R^dim as columns of a (dim, count) matrix, a function of (seed, step)."""
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(step) * 7919 + _DIRECTION_TAG) % (2**63))
    a = torch.randn(dim, count, generator=g, dtype=torch.float32)
    return (a / a.norm(dim=0, keepdim=True)).to(device)


def trapezoid_weights(knots: int, t_max: float) -> tuple[Tensor, Tensor]:
    """Nodes t in [0, t_max] and weights w such that sum w f(t) ~ integral_{-t_max}^{t_max} f for even f,
    with the Gaussian window exp(-t^2/2) folded into w."""
    t = torch.linspace(0.0, t_max, knots, dtype=torch.float32)
    dt = t_max / (knots - 1)
    w = torch.full((knots,), 2 * dt)  # doubled: the integrand is even
    w[0], w[-1] = dt, dt  # trapezoid ends; t = 0 counted once on the symmetric interval
    return t, w * torch.exp(-t.square() / 2)


def epps_pulley(z: Tensor, t: Tensor, weights: Tensor) -> Tensor:
    """EP statistic of each column of ``z`` (N, P) against N(0, 1): shape (P,)."""
    zt = z.unsqueeze(-1) * t  # (N, P, T)
    err = (zt.cos().mean(dim=0) - torch.exp(-t.square() / 2)).square() + zt.sin().mean(dim=0).square()
    return (err @ weights) * z.shape[0]


def sigreg(x: Tensor, a: Tensor, t: Tensor, weights: Tensor, gather: bool = True) -> Tensor:
    """Mean EP statistic of ``x`` (N, D) over the directions ``a`` (D, P), over the global batch under DDP."""
    if x.dim() != 2 or x.shape[1] != a.shape[0]:
        raise ValueError(f"sigreg: expected x (N, {a.shape[0]}), got {tuple(x.shape)}")
    with torch.autocast(device_type=x.device.type, enabled=False):
        xs = gather_with_grad(x.float()) if gather else x.float()
        return epps_pulley(xs @ a.to(xs.device), t.to(xs.device), weights.to(xs.device)).mean()


def collapsed_value(n: int, t_max: float) -> float:
    """EP of a sample of n zeros (full collapse), in closed form for t_max -> inf:
    n * integral (1 - g)^2 g dt with g = exp(-t^2/2) = n * (sqrt(2 pi) - 2 sqrt(pi) + sqrt(2 pi / 3))."""
    del t_max  # the tails beyond |t| = 5 weigh < 1e-6
    return n * (math.sqrt(2 * math.pi) - 2 * math.sqrt(math.pi) + math.sqrt(2 * math.pi / 3))
