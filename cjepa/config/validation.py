"""Validation of a Config: impossible values are refused early, naming the key and what is expected."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from cjepa.config.mask_rules import check_masks
from cjepa.config.regularizer_specs import vicreg_readings
from cjepa.config.schema import (
    ATTENTIONS,
    DATASETS,
    DECODERS,
    DEVICES,
    EMA_SCHEDULES,
    JEPA_LOSSES,
    PATCH_EMBEDS,
    PRECISIONS,
    Config,
    DataConfig,
)
from cjepa.errors import ConfigError


def validate(cfg: Config) -> None:
    """Reject impossible values early, naming the key and what is expected."""
    _finite_floats(cfg)
    _validate_model(cfg)
    m, k = cfg.model, cfg.mask
    side = m.img_size // m.patch_size
    check_masks((side, side), k.num_targets, k.target_scale, k.target_aspect, k.context_scale, k.context_aspect,
                k.min_keep, k.context_views)
    _validate_loss(cfg)
    _validate_optim(cfg)
    _validate_data_eval(cfg)
    _validate_run(cfg)


def _validate_model(cfg: Config) -> None:
    m = cfg.model
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
    _choice("model.patch_embed", m.patch_embed, PATCH_EMBEDS)
    if m.patch_embed == "conv_stem" and (m.patch_size < 2 or m.patch_size & (m.patch_size - 1)):
        raise ConfigError(f"model.patch_embed=conv_stem: expected model.patch_size a power of two >= 2 "
                          f"(one stride-2 conv per halving), got {m.patch_size}")
    if m.patch_embed == "overlap" and m.patch_size < 2:
        raise ConfigError("model.patch_embed=overlap: expected model.patch_size >= 2 (at 1 its kernel 2p-1 "
                          "is the linear patch)")


def _validate_loss(cfg: Config) -> None:
    loss, ema, sig = cfg.loss, cfg.ema, cfg.sigreg
    _choice("loss.jepa", loss.jepa, JEPA_LOSSES)
    if loss.vicreg_mode not in vicreg_readings():  # the old "sigreg" is rewritten by the loader (aliases.py)
        raise ConfigError(f"loss.vicreg_mode: expected one of {', '.join(vicreg_readings())}, got "
                          f"{loss.vicreg_mode!r} (SIGReg has its own section: sigreg.weight > 0, loss.beta_vicreg=0)")
    for key in ("beta_vicreg", "beta_sim", "beta_std", "beta_cov", "gamma"):
        if getattr(loss, key) < 0:
            raise ConfigError(f"loss.{key}: coefficients must be >= 0, got {getattr(loss, key)}")
    _positive("loss.eps", loss.eps)
    if loss.projector_dim < 0:
        raise ConfigError(f"loss.projector_dim: expected >= 0 (0 = encoder width), got {loss.projector_dim}")
    if sig.weight < 0:
        raise ConfigError(f"sigreg.weight: expected >= 0 (0 = off), got {sig.weight}")
    _positive("sigreg.projections", sig.projections)
    _positive("sigreg.t_max", sig.t_max)
    if sig.knots < 3:
        raise ConfigError(f"sigreg.knots: expected >= 3 (trapezoid nodes), got {sig.knots}")
    spec = cfg.regularizer  # one at most: two weights > 0 is refused there, naming both
    if spec is not None and cfg.mask.num_targets < spec.min_targets:
        raise ConfigError(f"{_named(spec.name, spec.is_vicreg)} {spec.why_targets} and needs "
                          f"mask.num_targets >= {spec.min_targets}, got {cfg.mask.num_targets}")
    _choice("ema.schedule", ema.schedule, EMA_SCHEDULES)
    _in_range("ema.start", ema.start, 0.0, 1.0)
    _in_range("ema.end", ema.end, 0.0, 1.0)


def _named(name: str, is_vicreg: bool) -> str:
    """How a refusal names the regulariser: the key that chose it."""
    return f"loss.vicreg_mode={name}" if is_vicreg else f"{name}.weight > 0"


def _validate_optim(cfg: Config) -> None:
    opt = cfg.optim
    _positive("optim.batch_size", opt.batch_size)
    for key in ("lr", "start_lr", "final_lr", "weight_decay", "final_weight_decay",
                "warmup_epochs", "grad_clip"):
        if getattr(opt, key) < 0:
            raise ConfigError(f"optim.{key}: expected >= 0, got {getattr(opt, key)}")
    for b in opt.betas:
        _in_range("optim.betas", b, 0.0, 1.0, hi_open=True)


def _validate_data_eval(cfg: Config) -> None:
    d, ev, m = cfg.data, cfg.eval, cfg.model
    _choice("data.dataset", d.dataset, DATASETS)
    lo, hi = d.crop_scale
    if not (0 < lo <= hi <= 1):
        raise ConfigError(f"data.crop_scale={[lo, hi]}: expected 0 < min <= max <= 1")
    _in_range("data.hflip", d.hflip, 0.0, 1.0)
    for key in ("blur", "solarize"):
        for p in getattr(d, key):
            _in_range(f"data.{key}", p, 0.0, 1.0)
    _positive("data.shuffle_window", d.shuffle_window)
    _choice("data.decode", d.decode, DECODERS)
    if d.decode == "device" and d.dataset != "parquet":
        raise ConfigError(f"data.decode=device decodes JPEG shards (data.dataset=parquet); {d.dataset} is in memory")
    if d.num_workers < 0 or d.train_subset < 0 or d.val_samples < 0:
        raise ConfigError("data.num_workers, data.train_subset and data.val_samples must be >= 0")
    if ev.every < 0:
        raise ConfigError(f"eval.every: expected >= 0 (0 = off), got {ev.every}")
    for key in ("knn_k", "knn_temperature", "train_samples", "test_samples", "batch_size"):
        _positive(f"eval.{key}", getattr(ev, key))
    _check_knn_bank(cfg)
    _choice("eval.precision", ev.precision, PRECISIONS)
    if ev.linear_epochs < 0:
        raise ConfigError(f"eval.linear_epochs: expected >= 0 (0 = no probe), got {ev.linear_epochs}")
    for enc in ev.encoders:
        _choice("eval.encoders", enc, ("target", "context"))
    if not 1 <= ev.last_layers <= m.depth:
        raise ConfigError(f"eval.last_layers={ev.last_layers}: expected 1 <= k <= model.depth={m.depth}")
    if "mean" not in ev.poolings:
        raise ConfigError(f"eval.poolings={list(ev.poolings)}: must include 'mean' (the paper's protocol)")
    grid_side = m.img_size // m.patch_size
    for name in ev.poolings:
        cells = int(name[4:]) if name.startswith("grid") and name[4:].isdigit() else -1
        if name != "mean" and not 1 <= cells <= grid_side:
            raise ConfigError(f"eval.poolings: {name!r} is not 'mean' or 'gridK' with 1 <= K <= {grid_side} "
                              "(the token grid's side)")


def _check_knn_bank(cfg: Config) -> None:
    """``eval.knn_k`` must not exceed the kNN bank: ``eval.train_samples`` images of the train split,
    fewer under ``data.train_subset``. Why refuse: a k clipped to the bank without a word is a
    different probe than the one asked for (and than the one the results table records). A split
    smaller than both is only known once it is loaded: the evaluator checks that at its start."""
    ev, subset = cfg.eval, cfg.data.train_subset
    bank = min(ev.train_samples, subset) if subset > 0 else ev.train_samples
    if ev.knn_k > bank:
        source = (f"data.train_subset={subset}" if subset > 0 and subset < ev.train_samples
                  else f"eval.train_samples={ev.train_samples}")
        raise ConfigError(f"eval.knn_k={ev.knn_k} exceeds the kNN bank of {bank} training images ({source}); "
                          f"choose eval.knn_k <= {bank} or a larger bank")


def _validate_run(cfg: Config) -> None:
    run = cfg.run
    _positive("run.epochs", run.epochs)
    if run.max_steps < 0 or run.checkpoint_every < 0 or run.threads < 0:
        raise ConfigError("run.max_steps, run.checkpoint_every and run.threads must be >= 0")
    _positive("run.log_every", run.log_every)
    _choice("run.device", run.device, DEVICES)
    _choice("run.precision", run.precision, PRECISIONS)
    _choice("run.attention", run.attention, ATTENTIONS)
    if not run.output_dir:
        raise ConfigError("run.output_dir: must not be empty")


NATIVE_SIZE = {"fashion_mnist": 28, "digits": 8}  # the built-in sets' image side, px
BUILTIN_TRAIN_IMAGES = {"fashion_mnist": 60000, "digits": 1500}  # their stored training splits (cjepa/data)
MAX_UPSAMPLE = 4


def check_data_source(cfg: Config) -> None:
    """What a run trains on exists and makes sense at its image size: one line before Ray or any
    model starts. Not part of :func:`validate`, so a preset can be printed (``cjepa config``)
    before its ``data.root`` is known."""
    d, size = cfg.data, cfg.model.img_size
    how = ("convert an image folder or an ImageNet tree with `cjepa data convert SRC DIR` and pass "
           "data.dataset=parquet data.root=DIR")
    if d.dataset in NATIVE_SIZE and size > MAX_UPSAMPLE * NATIVE_SIZE[d.dataset]:
        native = NATIVE_SIZE[d.dataset]
        raise ConfigError(f"model.img_size={size} would train {d.dataset}'s {native} px images upsampled "
                          f"{size / native:.0f}x; the 224 px presets and --full studies need a real data set: {how} "
                          f"(or keep model.img_size <= {MAX_UPSAMPLE * native})")
    if d.dataset != "parquet":
        _check_holdout(d, BUILTIN_TRAIN_IMAGES[d.dataset], d.dataset)
        return
    if not d.root:
        raise ConfigError(f"data.dataset=parquet needs data.root (shards with train/ and test/ or val/): {how}")
    if "://" not in d.root:
        train = Path(d.root).expanduser() / "train" / "manifest.json"
        if not train.is_file():
            raise ConfigError(f"data.root={d.root}: cannot read manifest.json of the train split ({train}: no such "
                              "file); expected the output folder of `cjepa data convert` (train/ and test/ or val/)")
        try:
            total = int(json.loads(train.read_text())["total"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"data.root={d.root}: {train} cannot be read ({exc}); "
                              "re-run `cjepa data convert`") from None
        _check_holdout(d, total, str(train.parent))


def _check_holdout(d: DataConfig, train_total: int, where: str) -> None:
    """The validation split and the subset fit the training split (``cjepa.data.holdout``)."""
    from cjepa.data.holdout import check_sizes
    from cjepa.errors import DataError

    try:
        check_sizes(d, train_total, where)
    except DataError as exc:
        raise ConfigError(str(exc)) from None


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
