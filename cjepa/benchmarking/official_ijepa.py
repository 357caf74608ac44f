"""The official I-JEPA code (facebookresearch/ijepa) as a reference step, loaded from a local clone.

Why: the fairest yardstick for *our* step is the code the paper's numbers came from. Its modules
are imported at run time from ``--ijepa-src DIR`` (a ``git clone
https://github.com/facebookresearch/ijepa``); nothing of it is vendored into this repository.
The clone's files import each other as ``src.…`` (``src`` is a namespace package), so the
loader makes the clone's ``src`` folder the module ``src`` (a package whose path is that folder
alone) and imports through it: nothing goes on ``sys.path``, and the loader refuses a ``src``
that something else has already put into ``sys.modules``.

The step follows ``src/train.py``'s ``train_step`` at our sizes, masks and batches: target
forward without grad, parameter-free layer norm, ``apply_masks`` + ``repeat_interleave_batch``;
context encoder on the context indices and predictor on the M target index tensors; smooth L1;
backward, AdamW over train.py's four parameter groups (``init_opt``: no decay on biases and 1-D
parameters), ``zero_grad``, and the per-parameter EMA loop of train.py. Left out, because they
are logging rather than the step: train.py's ``grad_logger`` (one norm and one host sync per
weight matrix) and the lr/wd schedulers' Python updates; our step logs a total grad norm, so
this leaves the reference, if anything, slightly favoured.
"""

from __future__ import annotations

import copy
import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from cjepa.benchmarking.steps import Batch, Variant, count_params

# The files of the clone this benchmark uses, and the names it takes from each.
REQUIRED = {
    "src/models/vision_transformer.py": ("VisionTransformer", "VisionTransformerPredictor"),
    "src/masks/utils.py": ("apply_masks",),
    "src/utils/tensors.py": ("repeat_interleave_batch",),
}
CLONE_HINT = "git clone https://github.com/facebookresearch/ijepa DIR, then pass --ijepa-src DIR"


@dataclass
class Official:
    """What the benchmark takes from the clone, and where it came from."""

    root: Path
    vit: ModuleType  # src.models.vision_transformer
    apply_masks: Callable
    repeat_interleave_batch: Callable


def _inside(module: ModuleType, root: Path) -> bool:
    """True when every file or namespace path of ``module`` lies under ``root``."""
    paths = [module.__file__] if getattr(module, "__file__", None) else list(getattr(module, "__path__", []))
    return bool(paths) and all(Path(p).resolve().is_relative_to(root) for p in paths)


def _register_src(root: Path) -> None:
    """Make the clone's ``src`` the module ``src`` (its submodules are then found through its path)."""
    loaded = sys.modules.get("src")
    if loaded is not None:
        if not _inside(loaded, root):
            raise SystemExit(f"--ijepa-src {root}: a different 'src' package is already imported "
                             f"({getattr(loaded, '__path__', loaded)}); run the benchmark in a fresh process")
        return
    locations = [str(root / "src")]  # a plain list: a namespace path would be re-searched on sys.path
    init = root / "src" / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location("src", init, submodule_search_locations=locations)
    else:
        spec = importlib.machinery.ModuleSpec("src", None, is_package=True)
        spec.submodule_search_locations = locations
    module = importlib.util.module_from_spec(spec)
    sys.modules["src"] = module
    if spec.loader is not None:
        spec.loader.exec_module(module)


def load_official(src_dir: Path | str) -> Official:
    """Import the official modules from the clone at ``src_dir``; a clear SystemExit when it is not one."""
    root = Path(src_dir).expanduser().resolve()
    missing = [rel for rel in REQUIRED if not (root / rel).is_file()]
    if missing:
        raise SystemExit(f"--ijepa-src {root}: not an I-JEPA clone, missing {', '.join(missing)} ({CLONE_HINT})")
    _register_src(root)
    mods = {rel: importlib.import_module(rel[:-3].replace("/", ".")) for rel in REQUIRED}
    for rel, mod in mods.items():
        if not _inside(mod, root):
            raise SystemExit(f"--ijepa-src {root}: {mod.__name__} was imported from {mod.__file__}, not the clone")
        absent = [name for name in REQUIRED[rel] if not hasattr(mod, name)]
        if absent:
            raise SystemExit(f"--ijepa-src {root}: {rel} lacks {', '.join(absent)}")
    return Official(root, mods["src/models/vision_transformer.py"], mods["src/masks/utils.py"].apply_masks,
                    mods["src/utils/tensors.py"].repeat_interleave_batch)


def build_modules(off: Official, m) -> tuple[nn.Module, nn.Module]:
    """The official encoder and predictor at our model sizes (``m``: a cjepa ModelConfig).

    As in the official ``vit_*`` / ``vit_predictor`` factories: qkv bias, LayerNorm eps 1e-6,
    the predictor with the encoder's head count unless ``pred_num_heads`` says otherwise.
    """
    norm = partial(nn.LayerNorm, eps=1e-6)
    encoder = off.vit.VisionTransformer(img_size=[m.img_size], patch_size=m.patch_size, in_chans=m.in_chans,
                                        embed_dim=m.embed_dim, depth=m.depth, num_heads=m.num_heads,
                                        mlp_ratio=m.mlp_ratio, qkv_bias=True, drop_path_rate=m.drop_path_rate,
                                        norm_layer=norm)
    predictor = off.vit.VisionTransformerPredictor(
        num_patches=encoder.patch_embed.num_patches, embed_dim=m.embed_dim, predictor_embed_dim=m.pred_embed_dim,
        depth=m.pred_depth, num_heads=m.pred_num_heads or m.num_heads, mlp_ratio=m.mlp_ratio, qkv_bias=True,
        drop_path_rate=m.drop_path_rate, norm_layer=norm)
    return encoder, predictor


def official_optimizer(encoder: nn.Module, predictor: nn.Module, lr: float, betas: tuple[float, float],
                       weight_decay: float) -> torch.optim.AdamW:
    """train.py's ``init_opt`` groups: decay on weight matrices, none on biases and 1-D parameters."""
    def pick(mod: nn.Module, decay: bool) -> list[nn.Parameter]:
        return [p for n, p in mod.named_parameters() if (("bias" not in n) and p.ndim != 1) == decay]

    groups = [{"params": pick(encoder, True)}, {"params": pick(predictor, True)},
              {"params": pick(encoder, False), "WD_exclude": True, "weight_decay": 0},
              {"params": pick(predictor, False), "WD_exclude": True, "weight_decay": 0}]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, weight_decay=weight_decay)


def official_step(off: Official, encoder: nn.Module, target: nn.Module, predictor: nn.Module,
                  optimizer: torch.optim.Optimizer, momentum: float,
                  autocast: torch.dtype | None = None) -> Callable[[Batch], float]:
    """One step of train.py's ``train_step``; returns the loss as a float. ``autocast``: its bf16
    branch (forward and loss under ``autocast(dtype=bfloat16)``, as train.py's ``use_bfloat16``),
    here on the CPU, so speed ratios against ours are at equal precision."""
    def step(b: Batch) -> float:
        masks_enc, masks_pred = [b.context], b.target_list
        with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
            with torch.no_grad():
                h = target(b.images)
                h = F.layer_norm(h, (h.size(-1),))
                h = off.apply_masks(h, masks_pred)
                h = off.repeat_interleave_batch(h, len(b.images), repeat=len(masks_enc))
            z = predictor(encoder(b.images, masks_enc), masks_enc, masks_pred)
            loss = F.smooth_l1_loss(z, h)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        with torch.no_grad():
            for param_q, param_k in zip(encoder.parameters(), target.parameters()):
                param_k.data.mul_(momentum).add_((1.0 - momentum) * param_q.detach().data)
        return float(loss.detach())  # train.py's float(loss): one host sync per step, as ours has

    return step


def build_official(src_dir: Path | str, config: Path, overrides: Sequence[str], batch_size: int,
                   seed: int, bf16: bool = False) -> Variant:
    """The ``official_ijepa`` variant: the clone's modules, train.py's step, our config's sizes
    (``official_ijepa_bf16``: its bf16 autocast branch)."""
    from cjepa.config import load_config

    off = load_official(src_dir)
    cfg = load_config(config, [*overrides, "loss.beta_vicreg=0", f"optim.batch_size={batch_size}"])
    torch.manual_seed(seed)
    encoder, predictor = build_modules(off, cfg.model)
    target = copy.deepcopy(encoder)
    for p in target.parameters():
        p.requires_grad = False
    encoder.train()
    predictor.train()
    optimizer = official_optimizer(encoder, predictor, cfg.optim.lr, cfg.optim.betas, cfg.optim.weight_decay)
    dtype = torch.bfloat16 if bf16 else None
    step = official_step(off, encoder, target, predictor, optimizer, cfg.ema.start, dtype)
    return Variant("official_ijepa_bf16" if bf16 else "official_ijepa", "official", step,
                   count_params(encoder, predictor),
                   f"facebookresearch/ijepa modules from {off.root}{' under bf16 autocast' if bf16 else ''}")
