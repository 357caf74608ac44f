"""Atomic checkpoints that hold everything an exact resume needs.

A checkpoint is one ``torch.save`` dict: config, global step, completed epochs, online and
target weights, optimizer state, torch RNG state, the partial-epoch metric sums and a free
``extra`` dict (reporters keep e.g. their MLflow run id there). Batches and masks are pure
functions of (seed, step), so no sampler or collator state needs saving beyond the step.

Written to a temporary file in the same directory, fsynced, then ``os.replace``d: a crash
mid-write leaves the previous checkpoint intact (timm's CheckpointSaver does the same, but it
is tied to timm's own training loop, so we keep the few lines here). Loaded with
``weights_only=True``: a checkpoint from elsewhere cannot execute code.

Rotation: the checkpoint being replaced is kept as ``checkpoint.prev.pt`` (renamed, not copied),
so a checkpoint damaged later (a truncated copy, a bad disk block) costs one checkpoint interval,
not the run: :func:`load_for_resume` warns in one line and resumes from the previous one. Damage
a zip reader does not notice (bytes changed inside a tensor) is caught by a CRC-32 over every
tensor and value, stored in the checkpoint (``checksum``) and checked on load.
"""

from __future__ import annotations

import errno
import sys
import zlib
from pathlib import Path
from typing import Any

import torch

from cjepa.atomic import atomic_write, tmp_pattern
from cjepa.config import Config
from cjepa.config.aliases import upgrade
from cjepa.errors import CheckpointError
from cjepa.hooks import wrap_checkpoint_write

FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
PREVIOUS_NAME = "checkpoint.prev.pt"  # the one before, kept by save_checkpoint
DAMAGED_NAME = "checkpoint.damaged.pt"  # an unreadable checkpoint set aside by load_for_resume (never read)
# Sections whose change makes a resume inexact or impossible. run.* and eval.* may change.
RESUME_SECTIONS = ("model", "mask", "loss", "sigreg", "ema", "optim", "data")
# Keys in those sections that do not change what is computed (where data lives, loader workers).
RESUME_FREE_KEYS = {"data.num_workers", "data.root", "data.cache_dir", "data.download", "data.skip_corrupt"}


def checksum(value: Any, crc: int = 0) -> int:
    """CRC-32 over every tensor's bytes and every other value's repr, in (insertion) order.

    Why: torch's zip records carry no checksum a load verifies, so a changed byte inside a tensor
    loads silently; this makes it a :class:`CheckpointError` instead. Cost: one pass over the
    state, about what ``torch.save`` itself costs.
    """
    if isinstance(value, dict):
        for k, v in value.items():
            crc = checksum(v, zlib.crc32(repr(k).encode(), crc))
        return crc
    if isinstance(value, (list, tuple)):
        for v in value:
            crc = checksum(v, crc)
        return crc
    if torch.is_tensor(value):
        t = value.detach().cpu().contiguous().reshape(-1)
        crc = zlib.crc32(f"{t.dtype}{tuple(value.shape)}".encode(), crc)
        return zlib.crc32(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"", crc)
    return zlib.crc32(repr(value).encode(), crc)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` atomically, the file it replaces renamed to ``checkpoint.prev.pt`` beside it.

    A storage error (a full disk, a read-only mount) is a :class:`CheckpointError` naming the file
    and the errno; the temp file is removed and the earlier checkpoints stay as they were.
    The file is written through :func:`cjepa.hooks.wrap_checkpoint_write` (itself in real use; the
    seam where the test-only faults of ``cjepa/faults.py`` fill the disk or kill mid-write).
    """
    path = Path(path)
    payload = {"format_version": FORMAT_VERSION, **state}
    payload["checksum"] = checksum(payload)
    try:
        return atomic_write(path, lambda fh: torch.save(payload, wrap_checkpoint_write(fh, path)),
                            keep_previous=path.with_name(PREVIOUS_NAME))
    except Exception as err:
        exc = _os_error(err)
        if exc is None:
            raise
        code = errno.errorcode.get(exc.errno or 0, "")
        kept = [p.name for p in (path, path.with_name(PREVIOUS_NAME)) if p.is_file()]
        raise CheckpointError(
            f"checkpoint {path}: cannot be written ({exc.strerror or exc}{', ' + code if code else ''}); "
            f"{'earlier checkpoints intact: ' + ', '.join(kept) if kept else 'no earlier checkpoint'}; "
            "free space or fix the storage, then rerun the same command to resume") from None


def _os_error(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc``: torch.save's zip writer hides a failed write behind its own
    RuntimeError ("unexpected pos") raised while closing, with the OSError as its context."""
    while exc is not None and not isinstance(exc, OSError):
        exc = exc.__cause__ or exc.__context__
    return exc


def remove_stale_temp_files(run_dir: str | Path) -> list[Path]:
    """Delete the temp files of checkpoint writes that were killed (they are never complete)."""
    removed = []
    for name in (CHECKPOINT_NAME, PREVIOUS_NAME):
        for tmp in Path(run_dir).glob(tmp_pattern(name)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def has_checkpoint(run_dir: str | Path) -> bool:
    return any((Path(run_dir) / name).is_file() for name in (CHECKPOINT_NAME, PREVIOUS_NAME))


def load_for_resume(path: str | Path) -> tuple[dict[str, Any], Path]:
    """The latest readable checkpoint: ``path``, else ``checkpoint.prev.pt`` beside it, with its path.

    A damaged ``path`` is renamed to ``checkpoint.damaged.pt`` (kept for inspection, never read):
    otherwise the next save would rotate it over the good previous checkpoint. One warning line
    names it. With no readable checkpoint, a :class:`CheckpointError` names every file tried.
    """
    path = Path(path)
    previous = path.with_name(PREVIOUS_NAME)
    try:
        return load_checkpoint(path), path
    except CheckpointError as exc:
        if not previous.is_file():
            raise
        first = str(exc)
    try:
        state = load_checkpoint(previous)
    except CheckpointError as exc:
        raise CheckpointError(f"{first.split('; delete it')[0]}; and the previous one: {exc}") from None
    moved = ""
    if path.exists():
        path.replace(path.with_name(DAMAGED_NAME))
        moved = f"; moved to {DAMAGED_NAME}"
    print(f"[cjepa] warning: {first.split('; delete it')[0]}{moved}; resuming from the previous checkpoint "
          f"{previous} (epoch {state['epoch']}, step {state['step']})", file=sys.stderr)
    return state, previous


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
    stored = state.pop("checksum", None)  # absent in checkpoints written before it existed
    if stored is not None and stored != checksum(state):
        raise CheckpointError(f"checkpoint {path}: cannot be read (checksum mismatch: its contents changed "
                              "after it was written); delete it to start over, or set run.resume=false")
    return state


def check_compatible(saved_config: dict[str, Any], current: dict[str, Any], path: str | Path) -> None:
    """Refuse to resume when a setting that shapes training has changed since the checkpoint (whose
    config is read in today's keys: cjepa/config/aliases.py, e.g. an old ``loss.vicreg_mode=sigreg``)."""
    saved_config = upgrade(saved_config)
    diffs = []
    defaults = Config().to_dict()  # a key added since the checkpoint was written reads as its default
    for section in RESUME_SECTIONS:
        old, new = {**defaults[section], **saved_config.get(section, {})}, current.get(section, {})
        diffs += [f"{section}.{k}: {old.get(k)!r} -> {new.get(k)!r}"
                  for k in sorted(set(old) | set(new))
                  if old.get(k) != new.get(k) and f"{section}.{k}" not in RESUME_FREE_KEYS]
    for key in ("epochs", "seed"):
        if saved_config.get("run", {}).get(key) != current.get("run", {}).get(key):
            diffs.append(f"run.{key}: {saved_config['run'].get(key)!r} -> {current['run'].get(key)!r}")
    if diffs:
        raise CheckpointError(f"checkpoint {path} was written with a different config ({'; '.join(diffs)}); "
                              "use another run.output_dir or set run.resume=false")
