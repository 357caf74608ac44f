"""Old config keys that still load, so that studies, ``config.yaml`` files, checkpoints and results
written before SIGReg had its own section read as they ran.

Until 2026-12, SIGReg was chosen as a VICReg reading and weighted by VICReg's weight. Now it is
the ``sigreg`` section (:class:`cjepa.config.schema.SigregConfig`), on when ``sigreg.weight > 0``:

* ``loss.sigreg_projections`` / ``loss.sigreg_knots`` / ``loss.sigreg_t_max`` are renamed
  ``sigreg.projections`` / ``sigreg.knots`` / ``sigreg.t_max`` (the value as given);
* ``loss.vicreg_mode=sigreg`` means ``sigreg.weight = loss.beta_vicreg``, ``loss.beta_vicreg = 0``
  and ``loss.vicreg_mode`` back to its default (the old form had no VICReg reading).

The second rule needs the *final* ``beta_vicreg`` (a preset may set it, an override name the
mode), so it is applied once the config is complete (:func:`resolve`), not key by key.
Why kept, not refused: the objective is the same (``jepa + w * sigreg``), so an old study, a
saved run's config and a ``--resume`` go on exactly; typed input gets one note per process.
"""

from __future__ import annotations

import sys
from typing import Any

from cjepa.config.schema import LossConfig
from cjepa.errors import ConfigError

#: old dotted key -> today's
RENAMED = {"loss.sigreg_projections": "sigreg.projections", "loss.sigreg_knots": "sigreg.knots",
           "loss.sigreg_t_max": "sigreg.t_max"}
LEGACY_MODE = "sigreg"  # the old value of loss.vicreg_mode that chose SIGReg
_LOSS_DEFAULTS = LossConfig()  # a weight a saved config lacks; the reading the old form leaves behind
_noted: set[str] = set()


def renamed(dotted: str, source: str) -> str:
    """Today's key for ``dotted`` (itself when it was never renamed); a note for typed input."""
    new = RENAMED.get(dotted)
    if new is None:
        return dotted
    if source != "dict":
        _note(dotted, f"{dotted} is now {new} (SIGReg has its own section); the old key still loads")
    return new


def resolve(cfg: Any, source: str = "setting") -> None:
    """Rewrite the old ``loss.vicreg_mode=sigreg`` form of a complete :class:`~cjepa.config.Config`
    in place (nothing to do in today's form). ``source="dict"`` (a saved config) takes no note."""
    if cfg.loss.vicreg_mode != LEGACY_MODE:
        return
    weight = _legacy_sigreg(vars(cfg.loss), vars(cfg.sigreg))
    if source != "dict":
        _note(LEGACY_MODE, f"loss.vicreg_mode=sigreg with loss.beta_vicreg={weight} is now sigreg.weight={weight} "
                           "with loss.beta_vicreg=0 (SIGReg has its own section); the old form still loads")


def upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """A saved config (section -> key -> value, e.g. a checkpoint's) in today's keys; keys it lacks
    stay absent (a reader fills defaults). Unvalidated: for comparing configs, not building one."""
    out = {section: dict(body) if isinstance(body, dict) else body for section, body in values.items()}
    loss = out.get("loss")
    if not isinstance(loss, dict):
        return out
    sigreg = dict(out.get("sigreg") or {})
    for old, new in RENAMED.items():
        key = old.split(".")[1]
        if key in loss:
            sigreg[new.split(".")[1]] = loss.pop(key)
    if loss.get("vicreg_mode") == LEGACY_MODE:
        loss.setdefault("beta_vicreg", _LOSS_DEFAULTS.beta_vicreg)
        _legacy_sigreg(loss, sigreg)
    if sigreg:
        out["sigreg"] = sigreg
    return out


def _legacy_sigreg(loss: dict[str, Any], sigreg: dict[str, Any]) -> float:
    """The old mode's rule on a loss section and a sigreg section (plain dicts, or a dataclass's
    ``vars``: one rule for configs and saved dicts). Returns the weight SIGReg gets."""
    weight = loss["beta_vicreg"]
    given = sigreg.get("weight", 0.0)
    if given and given != weight:
        raise ConfigError(f"loss.vicreg_mode=sigreg (the old form: SIGReg weighted by loss.beta_vicreg={weight}) "
                          f"and sigreg.weight={given} disagree; give sigreg.weight alone, with loss.beta_vicreg=0")
    sigreg["weight"], loss["beta_vicreg"], loss["vicreg_mode"] = weight, 0.0, _LOSS_DEFAULTS.vicreg_mode
    return weight


def _note(key: str, text: str) -> None:
    """One stderr line per old form per process (a sweep builds many configs)."""
    if key not in _noted:
        _noted.add(key)
        print(f"[cjepa] note: {text}", file=sys.stderr)
