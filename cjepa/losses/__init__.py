"""Losses of C-JEPA: the I-JEPA regression loss, the VICReg terms and their combination."""

from cjepa.losses.distributed import gather_with_grad, world_size
from cjepa.losses.jepa import jepa_loss
from cjepa.losses.objective import total_loss
from cjepa.losses.sigreg import SIGRegTerms, sigreg
from cjepa.losses.terms import Terms
from cjepa.losses.vicreg import (
    VICRegTerms,
    covariance,
    invariance,
    variance,
    vicreg_blocks,
    vicreg_pair,
    vicreg_single,
)

__all__ = [
    "SIGRegTerms",
    "Terms",
    "VICRegTerms",
    "covariance",
    "gather_with_grad",
    "invariance",
    "jepa_loss",
    "sigreg",
    "total_loss",
    "variance",
    "vicreg_blocks",
    "vicreg_pair",
    "vicreg_single",
    "world_size",
]
