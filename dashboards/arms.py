"""What an arm *is*, read from its resolved config: Table 3's parts and which of the paper's arms it is.

Why from the config and not the arm's label: a label is free text (``beta_vicreg=0.0``,
``beta_vicreg=0``, ``I-JEPA (EMA only)`` all name one recipe) and a coefficient's default lives
in one place, :class:`cjepa.config.Config`. The results table carries each trial's config as
typed ``config.<section>.<key>`` columns (cjepa.sweep.results); here a config is that flat
mapping, dotted key -> value, and a key it lacks means the default.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

#: Mo & Tong 2024, ablation (method.md §4): ViT-B/16, ImageNet-1K, 100 epochs, linear probe top-1 %.
PAPER_TABLE3: dict[str, float] = {
    "I-JEPA (EMA only)": 63.7,
    "var/cov only": 68.3,
    "EMA + invariance": 67.6,
    "C-JEPA (var/cov + inv)": 69.5,
}
#: (EMA, var/cov, inv) switched on -> the paper's arm. The paper keeps EMA in every arm of Table 3.
PAPER_PARTS: dict[tuple[bool, bool, bool], str] = {
    (True, False, False): "I-JEPA (EMA only)",
    (True, True, False): "var/cov only",
    (True, False, True): "EMA + invariance",
    (True, True, True): "C-JEPA (var/cov + inv)",
}
#: Settings of the paper's recipe that every paper arm keeps at the default (the EMA schedule, the JEPA loss).
RECIPE_KEYS = ("ema.start", "ema.end", "ema.schedule", "loss.jepa")


@lru_cache(maxsize=256)
def default(key: str) -> Any:
    """``cjepa.config``'s default of a dotted key (``loss.beta_vicreg`` -> 0.001); None if no such key."""
    from cjepa.config import Config

    node: Any = Config()
    for part in key.split("."):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node


def flatten(nested: dict[str, Any]) -> dict[str, Any]:
    """``{"loss": {"beta_vicreg": 0.0}}`` (a checkpoint's config) -> ``{"loss.beta_vicreg": 0.0}``."""
    return {f"{section}.{key}": value for section, values in nested.items() if isinstance(values, dict)
            for key, value in values.items()}


def value(cfg: dict[str, Any], key: str) -> Any:
    """The config's value of ``key``, its default where the config does not say."""
    v = cfg.get(key)
    return default(key) if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def terms(cfg: dict[str, Any]) -> dict[str, bool]:
    """Which parts really act: a term is on when its switch is on *and* its weight is > 0
    (``beta_sim=0`` is no invariance term, ``beta_vicreg=0`` no VICReg at all). SIGReg
    (``sigreg.weight > 0``; in results written before it had its own section,
    ``vicreg_mode=sigreg`` weighted by ``beta_vicreg``: cjepa/config/aliases.py) replaces the
    VICReg terms, so none of them acts; ``pred_tokens`` has no invariance term of its own (the JEPA
    loss plays that role), as in LossConfig.vicreg_on."""
    weight = float(value(cfg, "loss.beta_vicreg")) > 0
    mode = value(cfg, "loss.vicreg_mode")
    legacy = mode == "sigreg"
    vicreg = weight and not legacy
    sigreg = (weight and legacy) or float(value(cfg, "sigreg.weight")) > 0

    def on(switch: str, weight: str) -> bool:
        return vicreg and bool(value(cfg, switch)) and float(value(cfg, weight)) > 0

    return {"EMA": bool(value(cfg, "ema.enabled")), "var": on("loss.variance", "loss.beta_std"),
            "cov": on("loss.covariance", "loss.beta_cov"),
            "inv": mode != "pred_tokens" and on("loss.invariance", "loss.beta_sim"),
            "sigreg": bool(sigreg)}


def parts_of(cfg: dict[str, Any] | None) -> dict[str, bool | None]:
    """Table 3's check marks (EMA / var-cov / inv) of a config; None each where the config is unknown."""
    if cfg is None:
        return {"EMA": None, "var/cov": None, "inv": None}
    t = terms(cfg)
    return {"EMA": t["EMA"], "var/cov": t["var"] or t["cov"], "inv": t["inv"]}


def paper_arm(cfg: dict[str, Any] | None) -> str | None:
    """The paper's arm this config reproduces, or None: its parts are one of :data:`PAPER_PARTS`
    and every setting that matters for them has ``cjepa.config``'s default (the coefficients of
    the terms that are on, the VICReg reading, the EMA schedule, the JEPA loss)."""
    if cfg is None:
        return None
    t = terms(cfg)
    name = PAPER_PARTS.get((t["EMA"], t["var"] or t["cov"], t["inv"]))
    if name is None or t["var"] != t["cov"] or t["sigreg"]:  # the paper switches variance and covariance together
        return None
    keys = list(RECIPE_KEYS)
    if t["var"] or t["inv"]:
        keys += ["loss.beta_vicreg", "loss.vicreg_mode"]
    keys += ["loss.beta_sim"] if t["inv"] else []
    keys += ["loss.beta_std", "loss.beta_cov"] if t["var"] else []
    return name if all(_same(value(cfg, k), default(k)) for k in keys) else None
