"""The C-JEPA objective: ``L = L_jepa + weight * terms``; for VICReg ``weight = beta_vicreg`` and
``terms = beta_sim*inv + beta_std*var + beta_cov*cov``, for SIGReg ``weight = sigreg.weight``."""

from __future__ import annotations

import torch
from torch import Tensor

from cjepa.config import LossConfig
from cjepa.losses.terms import Terms
from cjepa.metrics import LOSS, LOSS_JEPA, LOSS_VICREG, TERM_NAMES


def total_loss(jepa: Tensor, terms: Terms | None, cfg: LossConfig,
               weight: float) -> tuple[Tensor, dict[str, float]]:
    """Combine the JEPA loss with the regulariser's weighted terms; also return floats for logging.

    ``weight`` is the regulariser's own (its spec's weight key in
    cjepa/config/regularizer_specs.py); ``cfg`` gives the VICReg coefficients. ``terms=None`` (or
    all terms off) is plain I-JEPA. With ``weight == 0`` the terms are still logged (telemetry)
    but not added, so they cost no backward. The log dict has ``loss``, ``loss_jepa`` and, for
    the present terms, ``vicreg_inv/var/cov`` or ``sigreg``, plus ``loss_vicreg`` (the combined
    terms *before* the weight). All values are fetched with a single device sync, since one
    ``.item()`` per term would stall the GPU several times a step.
    """
    loss = jepa
    names = [LOSS_JEPA]
    values = [jepa.detach()]
    present = terms.present() if terms is not None else {}
    if present:
        assert terms is not None
        weighted = terms.weighted(cfg)
        if weight > 0:
            loss = jepa + weight * weighted
        for key, value in present.items():
            names.append(TERM_NAMES[key])
            values.append(value.detach())
        names.append(LOSS_VICREG)
        values.append(weighted.detach())
    names.insert(0, LOSS)
    values.insert(0, loss.detach())
    device = jepa.device
    floats = torch.stack([v.float().to(device) for v in values]).tolist()
    return loss, dict(zip(names, floats, strict=True))
