"""The one shape every regulariser's output has, so the objective needs no union of types.

A regulariser (``cjepa/method/regularizers.py``) returns its raw, unweighted terms; the objective
(:func:`cjepa.losses.objective.total_loss`) asks them for their combined value and logs each
present one under its name in ``cjepa.metrics.TERM_NAMES``. A new regulariser returns an object
of this shape (a dataclass with these two methods) and needs no change in the objective.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from torch import Tensor

if TYPE_CHECKING:
    from cjepa.config import LossConfig


class Terms(Protocol):
    def weighted(self, cfg: LossConfig) -> Tensor:
        """The terms combined by the loss section's coefficients, before the regulariser's weight
        (so the logged ``loss_vicreg`` compares across weight sweeps)."""
        ...

    def present(self) -> dict[str, Tensor]:
        """The terms that exist, by raw name (``inv``, ``var``, ``cov``, ``sigreg``)."""
        ...
