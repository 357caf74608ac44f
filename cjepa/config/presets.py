"""Where presets live and how a ``-c NAME`` becomes a YAML path: the CLI and the study layer share it."""

from __future__ import annotations

from pathlib import Path

from cjepa.errors import ConfigError

# Inside the package (package data), so a non-editable install has its presets; the checkout's
# top-level configs/ is a symlink to this folder, so every path quoted in the docs still works.
PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
DEFAULT_PRESET = "cjepa_fmnist_cpu"


def resolve_config_path(name: str | None) -> Path:
    """A YAML path, or the name of a preset in ``configs/`` (e.g. ``ijepa_fmnist_cpu``)."""
    name = name or DEFAULT_PRESET
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    preset = PRESET_DIR / f"{name}.yaml"
    if not preset.exists():
        known = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
        raise ConfigError(f"--config {name}: no such file or preset; presets are {known}")
    return preset
