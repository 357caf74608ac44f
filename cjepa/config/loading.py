"""Building a Config: defaults, a YAML chain (``base:``), text overrides, typed settings."""

from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from cjepa.config.aliases import renamed, resolve
from cjepa.config.schema import Config
from cjepa.config.validation import validate
from cjepa.errors import ConfigError


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                settings: dict[str, Any] | None = None, source: str = "setting") -> Config:
    """Defaults, then the YAML file, then ``key=value`` overrides (text, e.g. from a command line),
    then ``settings`` (dotted key -> typed value, e.g. a study arm: set as they are, never turned
    into text and parsed back); old keys read as today's (cjepa/config/aliases.py); validated once."""
    cfg = Config()
    if path is not None:
        for file, values in _yaml_chain(Path(path)):
            apply_dict(cfg, values, source=str(file))
    apply_overrides(cfg, overrides or [])
    for key, value in (settings or {}).items():
        set_value(cfg, key, value, source=source)
    resolve(cfg, source)
    validate(cfg)
    return cfg


def apply_overrides(cfg: Config, overrides: list[str]) -> None:
    """``key=value`` texts (a command line's), parsed as YAML scalars and set with type checks."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value, e.g. loss.beta_vicreg=0.01")
        set_value(cfg, key.strip(), _parse_scalar(raw), source="override")


def from_saved(values: dict[str, Any]) -> Config:
    """A config a run wrote (its checkpoint's or its ``config.yaml``). A run from before
    ``data.val_samples`` existed trained on its whole training split: it reads as
    ``val_samples = 0``, not as today's default."""
    values = {section: dict(body) for section, body in values.items()}
    values.setdefault("data", {}).setdefault("val_samples", 0)
    return from_dict(values)


def from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a config from :meth:`Config.to_dict` output (e.g. a checkpoint's copy), written in
    today's keys or the old ones (cjepa/config/aliases.py: no note, an old file is not a typo)."""
    cfg = Config()
    apply_dict(cfg, values, source="dict")
    resolve(cfg, "dict")
    validate(cfg)
    return cfg


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"config file {p}: is a folder; expected a YAML file or a preset name")
    if not p.is_file():
        raise ConfigError(f"config file {p}: not found")
    try:
        data = yaml.safe_load(p.read_text())
    except (OSError, UnicodeDecodeError) as exc:  # unreadable, or not text at all
        raise ConfigError(f"config file {p}: cannot be read as UTF-8 YAML text ({type(exc).__name__})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {p}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p}: expected a mapping of sections, got {type(data).__name__}")
    return data


def _yaml_chain(path: Path, seen: tuple[Path, ...] = ()) -> list[tuple[Path, dict[str, Any]]]:
    """A YAML file and the files it names under ``base:`` (relative to itself), base first."""
    if path.resolve() in seen:
        raise ConfigError(f"config file {path}: 'base' chain loops back to itself")
    data = read_yaml(path)
    base = data.pop("base", None)
    if base is None:
        return [(path, data)]
    if not isinstance(base, str):
        raise ConfigError(f"config file {path}: 'base' must be a file name, got {base!r}")
    return _yaml_chain(path.parent / base, (*seen, path.resolve())) + [(path, data)]


def apply_dict(cfg: Config, values: dict[str, Any], source: str) -> None:
    for section, body in values.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping of keys")
        for key, value in body.items():
            set_value(cfg, f"{section}.{key}", value, source=source)


def set_value(cfg: Config, dotted: str, value: Any, source: str = "override") -> None:
    """Set ``section.key`` with type coercion; unknown keys and wrong types raise ConfigError.
    A renamed key sets today's (``loss.sigreg_knots`` -> ``sigreg.knots``)."""
    dotted = renamed(dotted, source)
    parts = dotted.split(".")
    if len(parts) != 2:
        raise ConfigError(f"{source}: key {dotted!r} must look like section.key (e.g. loss.beta_vicreg)")
    section_name, key = parts
    if section_name not in _fields(Config):
        raise ConfigError(f"{source}: unknown section {section_name!r} in {dotted!r}; "
                          f"sections are {', '.join(_fields(Config))}")
    section = getattr(cfg, section_name)
    hints = _fields(type(section))
    if key not in hints:
        raise ConfigError(f"{source}: unknown key {dotted!r}; {section_name} has "
                          f"{', '.join(hints)}")
    setattr(section, key, coerce(dotted, value, hints[key]))


def _fields(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _parse_scalar(raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def coerce(key: str, value: Any, typ: Any) -> Any:
    """Check/convert ``value`` to the annotated type; name the key in the error."""
    origin = typing.get_origin(typ)
    if origin is tuple:
        args = typing.get_args(typ)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list like {_example(args)}, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(key, v, args[0]) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values like {_example(args)}, got {value!r}")
        return tuple(coerce(key, v, a) for v, a in zip(value, args))
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"{key}: unsupported annotation {typ}")  # not used by Config
    if typ is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if typ is float:
        number = _number(value)
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(number):  # nan passes every `< 0` check below; inf breaks schedules
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if typ is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    raise ConfigError(f"{key}: unsupported type {typ}")


def _number(value: Any) -> float | None:
    """``value`` as a float, or None. YAML reads 1e-3 (no dot) as a string, so numeric strings count."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _example(args: tuple) -> str:
    names = {int: "1", float: "0.5", str: "a", bool: "true"}
    if len(args) == 2 and args[1] is Ellipsis:
        return f"[{names.get(args[0], 'x')}, ...]"
    return "[" + ", ".join(names.get(a, "x") for a in args) + "]"
