"""The one typed config of cjepa: the single source of defaults.

A :class:`Config` is a tree of dataclasses. It is built from defaults, then a YAML file, then
dotted overrides (``loss.beta_vicreg=0.01``), and validated once, before anything expensive
starts. Sweeps address exactly the same dotted keys. Defaults follow ../docs/method.md (the
paper's recipe); CPU presets in ``configs/`` override what must change for small images.

Why hand-written and not Hydra/OmegaConf: we need strict typing of dataclass fields, tuple
values and one-line error messages that name the key; OmegaConf would add a dependency and
still need the same validation code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cjepa.errors import ConfigError

JEPA_LOSSES = ("smooth_l1", "l2")
VICREG_MODES = ("pred_blocks", "context_target", "two_views")
EMA_SCHEDULES = ("linear", "cosine", "constant")
DATASETS = ("fashion_mnist", "digits", "parquet")  # parquet: shards from `cjepa data convert` in data.root
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class ModelConfig:
    """ViT encoder and predictor sizes (I-JEPA layout: no CLS token, fixed sin-cos positions)."""

    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    pred_embed_dim: int = 384
    pred_depth: int = 6
    pred_num_heads: int = 0  # 0: same as the encoder's heads (as in I-JEPA)
    drop_path_rate: float = 0.0


@dataclass
class MaskConfig:
    """I-JEPA multi-block masks (src/masks/multiblock.py semantics)."""

    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)
    min_keep: int = 10


@dataclass
class LossConfig:
    """JEPA loss plus the VICReg terms: L = L_jepa + beta_vicreg * (sim*inv + std*var + cov*cov)."""

    jepa: str = "smooth_l1"  # the official I-JEPA code; "l2" is the paper's equation
    vicreg_mode: str = "pred_blocks"  # which tensors the VICReg terms act on (method.md §3)
    beta_vicreg: float = 0.001  # 0 turns VICReg off entirely: plain I-JEPA
    beta_sim: float = 25.0
    beta_std: float = 25.0
    beta_cov: float = 1.0
    invariance: bool = True
    variance: bool = True
    covariance: bool = True
    gamma: float = 1.0
    eps: float = 1e-4
    # The official VICReg code averages the two branches' variance terms (/2); the paper's
    # equation sums them. True = official.
    variance_halved: bool = True
    projector_dim: int = 0  # 0: the encoder width
    gather_distributed: bool = True  # var/cov statistics over the global batch under DDP

    @property
    def vicreg_on(self) -> bool:
        return self.beta_vicreg > 0 and (self.invariance or self.variance or self.covariance)


@dataclass
class EMAConfig:
    """Target-encoder momentum; ``enabled: false`` means momentum 0 (copy + stop-gradient)."""

    enabled: bool = True
    start: float = 0.996
    end: float = 1.0
    schedule: str = "linear"


@dataclass
class OptimConfig:
    """AdamW with per-iteration schedules (pure functions of the global step)."""

    batch_size: int = 2048  # global batch
    lr: float = 1e-3
    start_lr: float = 1e-4
    final_lr: float = 1e-6
    warmup_epochs: float = 15.0
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0  # 0: off


@dataclass
class DataConfig:
    dataset: str = "fashion_mnist"
    root: str = ""  # "": the Debian package's path, then the download cache
    download: bool = False  # fetch + checksum into cache_dir when the files are missing
    cache_dir: str = "~/.cache/cjepa"
    crop_scale: tuple[float, float] = (0.3, 1.0)
    hflip: float = 0.0  # probability of a horizontal flip per view (I-JEPA uses none)
    num_workers: int = 0
    train_subset: int = 0  # 0: the whole training split
    skip_corrupt: bool = False  # parquet: replace undecodable images (next valid row of the class) instead of failing


@dataclass
class EvalConfig:
    every: int = 1  # epochs; 0 turns evaluation off
    knn_k: int = 20
    knn_temperature: float = 0.07
    train_samples: int = 10000  # kNN bank / probe training set, drawn from the train split
    test_samples: int = 10000
    linear_epochs: int = 100
    linear_lr: float = 1e-2
    encoders: tuple[str, ...] = ("target", "context")
    # Feature read-outs: "mean" of patch tokens (I-JEPA's protocol: knn_target, linear_target, ...)
    # and optionally "gridK" (KxK spatial cells): reported as knn_target_gridK, linear_target_gridK.
    poolings: tuple[str, ...] = ("mean",)
    raw_baseline: bool = True
    random_baseline: bool = True  # also score the encoder as initialised (rand_knn_acc, rand_linear_acc)


@dataclass
class RunConfig:
    epochs: int = 300
    seed: int = 0
    output_dir: str = "runs/default"
    resume: bool = True  # continue from output_dir/checkpoint.pt when it exists
    checkpoint_every: int = 1  # epochs
    max_steps: int = 0  # >0: stop (and checkpoint) after this global step; schedules still span all epochs
    log_every: int = 50  # steps between console lines
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    threads: int = 0  # 0: torch's default


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    def flat(self) -> dict[str, Any]:
        """Dotted key -> value, e.g. for MLflow params."""
        out: dict[str, Any] = {}
        for section, values in self.to_dict().items():
            for key, value in values.items():
                out[f"{section}.{key}"] = value
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def digest(self) -> str:
        """A short hash of the resolved config (ignoring where outputs go)."""
        d = self.to_dict()
        d["run"] = {k: v for k, v in d["run"].items()
                    if k not in ("output_dir", "resume", "max_steps", "log_every", "threads")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- building


def load_config(path: str | Path | None = None, overrides: list[str] | None = None,
                settings: dict[str, Any] | None = None, source: str = "setting") -> Config:
    """Defaults, then the YAML file, then ``key=value`` overrides (text, e.g. from a command line),
    then ``settings`` (dotted key -> typed value, e.g. a study arm: set as they are, never turned
    into text and parsed back); validated once."""
    cfg = Config()
    if path is not None:
        for file, values in _yaml_chain(Path(path)):
            apply_dict(cfg, values, source=str(file))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r}: expected key=value, e.g. loss.beta_vicreg=0.01")
        set_value(cfg, key.strip(), _parse_scalar(raw), source="override")
    for key, value in (settings or {}).items():
        set_value(cfg, key, value, source=source)
    validate(cfg)
    return cfg


def from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a config from :meth:`Config.to_dict` output (e.g. a checkpoint's copy)."""
    cfg = Config()
    apply_dict(cfg, values, source="dict")
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
    """Set ``section.key`` with type coercion; unknown keys and wrong types raise ConfigError."""
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


# --------------------------------------------------------------------------- validation


def validate(cfg: Config) -> None:
    """Reject impossible values early, naming the key and what is expected."""
    _finite_floats(cfg)
    m, k, loss, ema, opt, d, ev, run = (cfg.model, cfg.mask, cfg.loss, cfg.ema, cfg.optim,
                                         cfg.data, cfg.eval, cfg.run)
    _positive("model.img_size", m.img_size)
    _positive("model.patch_size", m.patch_size)
    if m.img_size % m.patch_size:
        raise ConfigError(f"model.patch_size={m.patch_size} must divide model.img_size={m.img_size}")
    if m.in_chans not in (1, 3):
        raise ConfigError(f"model.in_chans: expected 1 or 3, got {m.in_chans}")
    for key in ("embed_dim", "depth", "num_heads", "pred_embed_dim", "pred_depth"):
        _positive(f"model.{key}", getattr(m, key))
    for key in ("embed_dim", "pred_embed_dim"):
        if getattr(m, key) % 4:
            raise ConfigError(f"model.{key}={getattr(m, key)}: must be a multiple of 4 (2-D sin-cos positions)")
    if m.embed_dim % m.num_heads:
        raise ConfigError(f"model.num_heads={m.num_heads} must divide model.embed_dim={m.embed_dim}")
    pred_heads = m.pred_num_heads or m.num_heads
    if m.pred_num_heads < 0 or m.pred_embed_dim % pred_heads:
        raise ConfigError(f"model.pred_num_heads={pred_heads} must divide "
                          f"model.pred_embed_dim={m.pred_embed_dim}")
    _positive("model.mlp_ratio", m.mlp_ratio)
    _in_range("model.drop_path_rate", m.drop_path_rate, 0.0, 1.0, hi_open=True)

    grid = (m.img_size // m.patch_size) ** 2
    _positive("mask.num_targets", k.num_targets)
    for key in ("target_scale", "context_scale"):
        lo, hi = getattr(k, key)
        if not (0 < lo <= hi <= 1):
            raise ConfigError(f"mask.{key}={[lo, hi]}: expected 0 < min <= max <= 1")
    for key in ("target_aspect", "context_aspect"):
        lo, hi = getattr(k, key)
        if not (0 < lo <= hi):
            raise ConfigError(f"mask.{key}={[lo, hi]}: expected 0 < min <= max")
    if k.min_keep < 1:
        raise ConfigError(f"mask.min_keep: expected >= 1, got {k.min_keep}")
    if k.min_keep > grid:
        raise ConfigError(f"mask.min_keep={k.min_keep} exceeds the {grid} patches of the grid")
    tgt_patches = max(1, int(grid * k.target_scale[0]))
    if k.num_targets * tgt_patches >= grid:
        raise ConfigError(f"mask.num_targets={k.num_targets} blocks of at least {tgt_patches} "
                          f"patches (mask.target_scale) cover the whole {grid}-patch grid: "
                          "no context would remain")

    _choice("loss.jepa", loss.jepa, JEPA_LOSSES)
    _choice("loss.vicreg_mode", loss.vicreg_mode, VICREG_MODES)
    for key in ("beta_vicreg", "beta_sim", "beta_std", "beta_cov", "gamma"):
        if getattr(loss, key) < 0:
            raise ConfigError(f"loss.{key}: coefficients must be >= 0, got {getattr(loss, key)}")
    _positive("loss.eps", loss.eps)
    if loss.projector_dim < 0:
        raise ConfigError(f"loss.projector_dim: expected >= 0 (0 = encoder width), got {loss.projector_dim}")
    if loss.vicreg_on and loss.vicreg_mode == "pred_blocks" and k.num_targets < 2:
        raise ConfigError("loss.vicreg_mode=pred_blocks compares target blocks pairwise and needs "
                          f"mask.num_targets >= 2, got {k.num_targets}")

    _choice("ema.schedule", ema.schedule, EMA_SCHEDULES)
    _in_range("ema.start", ema.start, 0.0, 1.0)
    _in_range("ema.end", ema.end, 0.0, 1.0)

    _positive("optim.batch_size", opt.batch_size)
    for key in ("lr", "start_lr", "final_lr", "weight_decay", "final_weight_decay",
                "warmup_epochs", "grad_clip"):
        if getattr(opt, key) < 0:
            raise ConfigError(f"optim.{key}: expected >= 0, got {getattr(opt, key)}")
    for b in opt.betas:
        _in_range("optim.betas", b, 0.0, 1.0, hi_open=True)

    _choice("data.dataset", d.dataset, DATASETS)
    lo, hi = d.crop_scale
    if not (0 < lo <= hi <= 1):
        raise ConfigError(f"data.crop_scale={[lo, hi]}: expected 0 < min <= max <= 1")
    _in_range("data.hflip", d.hflip, 0.0, 1.0)
    if d.num_workers < 0 or d.train_subset < 0:
        raise ConfigError("data.num_workers and data.train_subset must be >= 0")

    if ev.every < 0:
        raise ConfigError(f"eval.every: expected >= 0 (0 = off), got {ev.every}")
    _positive("eval.knn_k", ev.knn_k)
    _positive("eval.knn_temperature", ev.knn_temperature)
    _positive("eval.train_samples", ev.train_samples)
    _positive("eval.test_samples", ev.test_samples)
    if ev.linear_epochs < 0:
        raise ConfigError(f"eval.linear_epochs: expected >= 0 (0 = no probe), got {ev.linear_epochs}")
    for enc in ev.encoders:
        _choice("eval.encoders", enc, ("target", "context"))
    if "mean" not in ev.poolings:
        raise ConfigError(f"eval.poolings={list(ev.poolings)}: must include 'mean' (the paper's protocol)")
    grid_side = m.img_size // m.patch_size
    for name in ev.poolings:
        cells = int(name[4:]) if name.startswith("grid") and name[4:].isdigit() else -1
        if name != "mean" and not 1 <= cells <= grid_side:
            raise ConfigError(f"eval.poolings: {name!r} is not 'mean' or 'gridK' with 1 <= K <= {grid_side} "
                              "(the token grid's side)")

    _positive("run.epochs", run.epochs)
    if run.max_steps < 0 or run.checkpoint_every < 0 or run.threads < 0:
        raise ConfigError("run.max_steps, run.checkpoint_every and run.threads must be >= 0")
    _positive("run.log_every", run.log_every)
    _choice("run.device", run.device, DEVICES)
    _choice("run.precision", run.precision, PRECISIONS)
    if not run.output_dir:
        raise ConfigError("run.output_dir: must not be empty")


def _positive(key: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{key}: expected a positive value, got {value}")


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: expected one of {', '.join(allowed)}, got {value!r}")


def _in_range(key: str, value: float, lo: float, hi: float, hi_open: bool = False) -> None:
    if value < lo or value > hi or (hi_open and value == hi):
        bracket = ")" if hi_open else "]"
        raise ConfigError(f"{key}: expected a value in [{lo}, {hi}{bracket}, got {value}")


def _finite_floats(cfg: Config) -> None:
    """Every float (also inside tuples) is finite: a Config built in Python skips :func:`coerce`."""
    for dotted, value in cfg.flat().items():
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"{dotted}: expected a finite number, got {value!r}")


def check_output_dir(cfg: Config) -> Path:
    """Create ``run.output_dir`` and prove it takes files, before any model or data is built.

    Why a real write probe: ``os.access`` says yes to root everywhere and knows nothing of
    read-only mounts; without this, an unusable directory ends in an OSError traceback from the
    engine after the data set has loaded.
    """
    path = Path(cfg.run.output_dir).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"run.output_dir={cfg.run.output_dir}: cannot be created or written ({reason}); "
                          "expected a writable directory") from None
    return path
