"""The typed config tree: one dataclass per section, the single source of every default.

Defaults follow ../docs/method.md (the paper's recipe); CPU presets in ``configs/`` override what
must change for small images and carry nothing else (tests/test_presets.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import yaml

from cjepa.config.regularizer_specs import BUILTIN_MODES, SPECS, RegularizerSpec, active_terms, the_regularizer

JEPA_LOSSES = ("smooth_l1", "l2")
VICREG_MODES = BUILTIN_MODES  # the VICReg readings: one row each in cjepa/config/regularizer_specs.py
EMA_SCHEDULES = ("linear", "cosine", "constant")
DATASETS = ("fashion_mnist", "digits", "parquet")  # parquet: shards from `cjepa data convert` in data.root
DEVICES = ("auto", "cpu", "cuda")
DECODERS = ("workers", "device")  # data.decode
PRECISIONS = ("auto", "fp32", "bf16")
ATTENTIONS = ("auto", "sdpa", "math")  # run.attention: cjepa/model/attention.py
PATCH_EMBEDS = ("linear", "overlap", "conv_stem")  # model.patch_embed: cjepa/model/patch_embed.py


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
    patch_embed: str = "linear"  # lever (issue 26): linear (timm PatchEmbed), overlap (PVTv2), conv_stem (Xiao 2021)


@dataclass
class MaskConfig:
    """I-JEPA multi-block masks (src/masks/multiblock.py semantics)."""

    num_targets: int = 4
    target_scale: tuple[float, float] = (0.15, 0.2)
    target_aspect: tuple[float, float] = (0.75, 1.5)
    context_scale: tuple[float, float] = (0.85, 1.0)
    context_aspect: tuple[float, float] = (1.0, 1.0)
    min_keep: int = 10
    # K context masks per image (I-JEPA's ``nenc``), each avoiding the image's targets; the JEPA loss is
    # averaged over them (cjepa/method/cjepa.py, each reading's docstring for its terms). 1: I-JEPA's default
    context_views: int = 1


@dataclass
class LossConfig:
    """JEPA loss plus the VICReg terms: L = L_jepa + beta_vicreg * (sim*inv + std*var + cov*cov).

    SIGReg is not a VICReg reading: it has its own section (:class:`SigregConfig`). The old form
    ``loss.vicreg_mode=sigreg`` (weighted by ``beta_vicreg``) and ``loss.sigreg_*`` still load
    (``cjepa/config/aliases.py``)."""

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
    # True: each branch (each view of two_views, each target block of pred_blocks) goes through the
    # projector on its own, with its own batch-norm statistics, as VICReg calls its expander once per
    # view; False: one call over all branches, one set of statistics (the behaviour before 2026-12-07).
    projector_per_branch: bool = True
    # batch statistics over the global batch under DDP: VICReg's var/cov, SIGReg's characteristic function
    gather_distributed: bool = True

    @property
    def vicreg_on(self) -> bool:
        """Whether the VICReg terms are added (``vicreg_mode`` names the reading); SIGReg: ``sigreg.weight``."""
        return self.beta_vicreg > 0 and bool(self.terms)

    @property
    def terms(self) -> tuple[str, ...]:
        """The VICReg reading's raw terms under the switches (its row in cjepa/config/regularizer_specs.py;
        pred_tokens has no invariance term: the JEPA loss is one); none for a name that is no reading."""
        spec = SPECS.get(self.vicreg_mode)
        if spec is None or not spec.is_vicreg:
            return ()
        return active_terms(self.vicreg_mode, self.invariance, self.variance, self.covariance)


@dataclass
class SigregConfig:
    """LeJEPA's SIGReg (cjepa/losses/sigreg.py) in the VICReg terms' place: L = L_jepa + weight * sigreg.

    Its own section and weight, as dinov2 gives each loss (``do_dino = cfg.dino.loss_weight > 0``):
    on when ``weight > 0``. VICReg and SIGReg are not combined: with both weights > 0 the config is
    refused (set ``loss.beta_vicreg=0``). Was ``loss.vicreg_mode=sigreg`` weighted by
    ``loss.beta_vicreg``, with ``loss.sigreg_*``; those keys still load (cjepa/config/aliases.py)."""

    weight: float = 0.0  # LeJEPA's lambda; 0: off
    projections: int = 256  # random directions, fresh every step
    knots: int = 17  # trapezoid nodes on [-t_max, t_max]
    t_max: float = 5.0


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
    # VICReg's photometric augmentations, probability per view (view 1, view 2; view 2 exists for the
    # two_views reading): VICReg uses blur (1.0, 0.1) and solarize (0.0, 0.2); I-JEPA neither
    # (cjepa/data/photometric.py)
    blur: tuple[float, float] = (0.0, 0.0)
    solarize: tuple[float, float] = (0.0, 0.0)
    num_workers: int = 0
    train_subset: int = 0  # 0: the whole training split (less the validation split)
    # The validation split, carved from the training split and never trained on: every study's
    # selection (Optuna, ASHA, stoppers) and the per-epoch curves score it; the test split is
    # scored once, at the end of a run (test_* metrics). 0: no validation split (the per-epoch
    # evaluation then reads the test split, and studies that select refuse to run). Which images:
    # cjepa/data/holdout.py.
    val_samples: int = 10000
    val_seed: int = 0
    skip_corrupt: bool = False  # parquet: replace undecodable images (logged) instead of failing
    # parquet: rows are shuffled within windows of this many shards; each loader process holds at
    # most 2 * (shuffle_window + 1) shards (cjepa/data/shard_order.py, stream.py)
    shuffle_window: int = 2
    # parquet: where JPEGs are decoded and cropped: "workers" (DataLoader workers, Pillow with DCT-domain
    # downscaling) or "device" (the training device: nvJPEG on a GPU; cjepa/data/decode_cuda.py)
    decode: str = "workers"


@dataclass
class EvalConfig:
    every: int = 1  # epochs; 0 turns evaluation off
    knn_k: int = 20
    knn_temperature: float = 0.07
    train_samples: int = 10000  # kNN bank / probe training set, drawn from the training images
    test_samples: int = 10000  # test images scored once, at the end of a run (with a validation split)
    linear_epochs: int = 100
    linear_lr: float = 1e-2
    encoders: tuple[str, ...] = ("target", "context")
    # Feature read-outs: "mean" of patch tokens (I-JEPA's protocol: knn_target, linear_target, ...)
    # and optionally "gridK" (KxK spatial cells): reported as knn_target_gridK, linear_target_gridK.
    poolings: tuple[str, ...] = ("mean",)
    # Tokens read from the last k blocks, each through the final norm, concatenated (k * D per token)
    # before pooling: I-JEPA's linear protocol reads k = 4. 1: the encoder's output.
    last_layers: int = 1
    raw_baseline: bool = True
    random_baseline: bool = True  # also score the encoder as initialised (rand_knn_acc, rand_linear_acc)
    # Feature extraction. Batch 128 is faster on CPU than 512 (activations stay in cache) and gives
    # the same fp32 features. precision "auto": the training autocast where there is one, else bf16
    # on a CPU with native bf16 (AVX512-BF16/AMX), else fp32; "fp32" forces fp32.
    # Features are pooled and probed in fp32 either way (docs/benchmarks.md, "Evaluation cost").
    batch_size: int = 128
    precision: str = "auto"


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
    # auto: bf16 autocast where bf16 is native (CUDA; a CPU with AVX512-BF16/AMX), else fp32
    # (cjepa/engine/precision.py); "fp32" / "bf16" force one.
    precision: str = "auto"
    # Attention kernel (cjepa/model/attention.py): auto = timm's explicit softmax for bf16 training
    # on CPU (SDPA's bf16 CPU backward is slow), PyTorch's SDPA elsewhere; "sdpa" / "math" force one.
    attention: str = "auto"
    threads: int = 0  # 0: torch's default


#: Switches added after runs existed, with the value that is the behaviour from before they were
#: added: :meth:`Config.identity_dict` leaves them out at that value. A new switch whose default keeps
#: the old behaviour gets a row here (tests/test_config.py checks old names and hashes stay put).
ADDED_KEYS: dict[str, Any] = {"model.patch_embed": "linear", "mask.context_views": 1}


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sigreg: SigregConfig = field(default_factory=SigregConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)

    @property
    def regularizer(self) -> RegularizerSpec | None:
        """The one regulariser added to the JEPA loss (its row in regularizer_specs.py), None for
        plain I-JEPA; a ConfigError when two weights are > 0."""
        return the_regularizer(self)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    def identity_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the :data:`ADDED_KEYS` that hold their default: what names and
        hashes that identify a recipe are taken of (the digest, a Ray Train run's experiment, the
        random-init baseline's cache key), so adding a switch renames no earlier run."""
        d = self.to_dict()
        for dotted, default in ADDED_KEYS.items():
            section, key = dotted.split(".")
            if d[section].get(key) == default:
                del d[section][key]
        return d

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
        d = self.identity_dict()
        d["run"] = {k: v for k, v in d["run"].items()
                    if k not in ("output_dir", "resume", "max_steps", "log_every", "threads", "attention")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj
