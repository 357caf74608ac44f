"""Presets carry only what differs: every key a preset sets changes the value it would otherwise have.

One typed config (cjepa/config.py) is the single source of defaults; a preset that repeats a default
would silently pin it when the default moves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cjepa.config import Config, load_config, read_yaml

PRESETS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def _same(a: object, b: object) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_preset_sets_only_what_differs(preset: Path) -> None:
    raw = read_yaml(preset)
    base = raw.pop("base", None)
    parent = (load_config(preset.parent / base) if base else Config()).to_dict()
    repeated = [f"{section}.{key}" for section, body in raw.items() for key, value in body.items()
                if _same(value, parent[section][key])]
    assert not repeated, f"{preset.name} repeats {'its base' if base else 'the defaults'}: {repeated}"
    load_config(preset)  # and it is valid


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_paper_scale_presets_probe_no_raw_pixels_and_select_on_validation(preset: Path) -> None:
    """At 224 px a raw-pixel probe is 150,528-d (hours on rank 0's CPU before step 0, while the other
    ranks wait): the presets compute none. Every preset holds a validation split out of training."""
    cfg = load_config(preset)
    if cfg.model.img_size >= 224:
        assert cfg.eval.raw_baseline is False
    assert cfg.data.val_samples > 0
