"""Atomic checkpoints that hold everything an exact resume needs.

A checkpoint is one ``torch.save`` dict: config, global step, completed epochs, online and
target weights, optimizer state, torch RNG state, the partial-epoch metric sums and a free
``extra`` dict (reporters keep e.g. their MLflow run id there). Batches and masks are pure
functions of (seed, step), so no sampler or collator state needs saving beyond the step.

Written to a temporary file in the same directory, fsynced, then ``os.replace``d: a crash
mid-write leaves the previous checkpoint intact (timm's CheckpointSaver does the same, but it
is tied to timm's own training loop, so we keep the few lines here). Loaded with
``weights_only=True``: a checkpoint from elsewhere cannot execute code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cjepa.atomic import atomic_write
from cjepa.errors import CheckpointError

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
# Sections whose change makes a resume inexact or impossible. run.* and eval.* may change.
RESUME_SECTIONS = ("model", "mask", "loss", "ema", "optim", "data")
# Keys in those sections that do not change what is computed (where data lives, loader workers).
RESUME_FREE_KEYS = {"data.num_workers", "data.root", "data.cache_dir", "data.download", "data.skip_corrupt"}


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    return atomic_write(path, lambda fh: torch.save({"format_version": FORMAT_VERSION, **state}, fh))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint on CPU; any unreadable file is a :class:`CheckpointError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/garbage files
        raise CheckpointError(
            f"checkpoint {path}: cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "delete it to start over, or set run.resume=false") from None
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: not a cjepa checkpoint (format {FORMAT_VERSION} expected)")
    missing = {"config", "step", "epoch", "online", "target", "optimizer", "rng"} - state.keys()
    if missing:
        raise CheckpointError(f"checkpoint {path}: incomplete, missing {sorted(missing)}")
    return state


def check_compatible(saved_config: dict[str, Any], current: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume when a setting that shapes training has changed since the checkpoint."""
    diffs = []
    for section in RESUME_SECTIONS:
        old, new = saved_config.get(section, {}), current.get(section, {})
        diffs += [f"{section}.{k}: {old.get(k)!r} -> {new.get(k)!r}"
                  for k in sorted(set(old) | set(new))
                  if old.get(k) != new.get(k) and f"{section}.{k}" not in RESUME_FREE_KEYS]
    for key in ("epochs", "seed"):
        if saved_config.get("run", {}).get(key) != current.get("run", {}).get(key):
            diffs.append(f"run.{key}: {saved_config['run'].get(key)!r} -> {current['run'].get(key)!r}")
    if diffs:
        raise CheckpointError(f"checkpoint {path} was written with a different config ({'; '.join(diffs)}); "
                              "use another run.output_dir or set run.resume=false")
