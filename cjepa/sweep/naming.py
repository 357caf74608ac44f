"""What a trial is called, and which arm a Tune trial config means: shared by the runner, which
starts trials, and the results table, which reads them back (neither imports the other)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from cjepa.sweep.study import Space, Study


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)[:80]


def trial_dir_name(study_name: str, arm: str, seed: int) -> str:
    """The trial's folder under ``<storage>/<study>/runs/`` and its Ray Train run name (restore key)."""
    return _slug(f"{study_name}-{arm}-s{seed}")


def _short(value: Any) -> str:
    """A sampled number in 2 significant digits (``0.0012``, ``17``): the run name is for telling apart."""
    return f"{value:.2g}" if isinstance(value, float) else str(value)


def child_run_name(study: Study, arm: str, settings: dict[str, Any], seed: int, trial_id: str = "") -> str:
    """The child run's name in MLflow's runs table, distinguishing part first (the table cuts names
    at ~15 characters, so ``beta_vicreg=0.0 s0`` and ``beta_vicreg=0.01 s0`` looked alike).

    Factor grids: the levels, the seed, then the keys (``0.001 s0 · beta_vicreg``); named arms
    already start with what differs (``I-JEPA (EMA only) s0``); Optuna: Tune's trial number and
    the sampled values (``#3 · vicreg_mode=two_views beta_vicreg=0.0012``). The exact arm stays
    in the ``arm`` tag (Group by -> arm)."""
    if study.search == "optuna":
        number = trial_id.rsplit("_", 1)[-1]
        head = f"#{int(number)}" if number.isdigit() else arm
        return f"{head} · " + " ".join(f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in settings.items())
    if study.factors and settings:
        levels = ",".join(str(v) for v in settings.values())
        keys = ",".join(k.rsplit(".", 1)[-1] for k in settings)
        return f"{levels} s{seed} · {keys}"
    return f"{arm} s{seed}"


def _indexed(dim: Space) -> bool:
    """Optuna's categorical values must be None/bool/int/float/str: list-valued choices (e.g.
    ``data.crop_scale`` pairs) are searched as indices and mapped back in :func:`trial_arm`."""
    return dim.kind == "choice" and any(isinstance(c, (list, tuple)) for c in dim.choices)


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's Tune config with an extension's ``trial`` pair (``{"arm": ..., "seed": ...}``, see
    cjepa.sweep.runner.build_tuner) lifted to the top, so every reader sees ``arm`` and ``seed``."""
    return {**config, **config["trial"]} if isinstance(config.get("trial"), dict) else config


def trial_arm(config: dict[str, Any], study: Study, arms: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """(arm name, settings) of a trial's Tune config."""
    config = flat_config(config)
    if study.search == "grid":
        return config["arm"], arms[config["arm"]]
    settings = {k: (dim.choices[config[k]] if _indexed(dim) else config[k]) for k, dim in study.space.items()}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"optuna-{digest}", settings
