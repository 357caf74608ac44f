"""The C-JEPA objective: ``L = L_jepa + beta_vicreg * (beta_sim*inv + beta_std*var + beta_cov*cov)``."""

from __future__ import annotations

import torch
from torch import Tensor

from cjepa.config import LossConfig
from cjepa.losses.sigreg import SIGRegTerms
from cjepa.losses.vicreg import VICRegTerms
from cjepa.metrics import LOSS, LOSS_JEPA, LOSS_VICREG, TERM_NAMES


def total_loss(jepa: Tensor, terms: VICRegTerms | SIGRegTerms | None,
               cfg: LossConfig) -> tuple[Tensor, dict[str, float]]:
    """Combine the JEPA loss with the weighted VICReg terms; also return floats for logging.

    ``terms=None`` (or all terms off) is plain I-JEPA. With ``beta_vicreg == 0`` the terms are
    still logged (telemetry) but not added, so they cost no backward. The log dict has
    ``loss``, ``loss_jepa`` and, for the present terms, ``vicreg_inv/var/cov`` plus
    ``loss_vicreg`` (the weighted sum *before* beta_vicreg). All values are fetched with a
    single device sync, since one ``.item()`` per term would stall the GPU several times a step.
    """
    loss = jepa
    names = [LOSS_JEPA]
    values = [jepa.detach()]
    present = terms.present() if terms is not None else {}
    if present:
        assert terms is not None
        weighted = terms.weighted(cfg)
        if cfg.beta_vicreg > 0:
            loss = jepa + cfg.beta_vicreg * weighted
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
