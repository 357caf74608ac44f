"""The one shape every regulariser's output has, so the objective needs no union of types.

A regulariser (``cjepa/method/regularizers.py``) returns its raw, unweighted terms; the objective
(:func:`cjepa.losses.objective.total_loss`) asks them for their combined value and logs each
present one under its name in ``cjepa.metrics.TERM_NAMES``. A new regulariser returns an object
of this shape (a dataclass with these two methods) and needs no change in the objective.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import torch
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


T = TypeVar("T", bound=Any)


def mean_terms(per_view: Sequence[T]) -> T:
    """Each present term averaged over the context views (``mask.context_views``): a mean, not a sum,
    so a term's scale, and the weight tuned for it, do not depend on K. One view: that view's
    terms themselves (bit-identical to a run without views). The terms are dataclasses of tensors
    (None for a term switched off, the same in every view)."""
    if len(per_view) == 1:
        return per_view[0]
    first = per_view[0]
    fields = {f.name: getattr(first, f.name) for f in dataclasses.fields(first)}
    return dataclasses.replace(first, **{name: None if value is None else
                                         torch.stack([getattr(t, name) for t in per_view]).mean()
                                         for name, value in fields.items()})
