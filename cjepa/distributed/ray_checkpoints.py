"""The checkpoint before Ray's latest, for the engine's fallback when the latest is damaged.

The engine resumes from ``checkpoint.prev.pt`` when ``checkpoint.pt`` cannot be read (truncated,
bytes changed: its CRC catches it), never silently from epoch 0. A Ray worker's run dir is
rebuilt from Ray storage, whose checkpoint folders (``epoch_NNNN`` under Ray Train, Tune's
``checkpoint_NNNNNN`` for a trial trained in its actor; the last two kept,
``CheckpointConfig(num_to_keep=2)``) hold ``checkpoint.pt`` only. So the worker also fetches the
previous folder's ``checkpoint.pt`` as its ``checkpoint.prev.pt``, and the same engine code covers
a damaged checkpoint in Ray storage. Read through the checkpoint's own pyarrow filesystem, so it
works for a shared path and for ``s3://`` alike. Ray Train's API offers only the latest
checkpoint (``get_checkpoint``), hence this listing of its folder.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from cjepa.distributed.reporter import checkpoint_dir_name
from cjepa.engine.checkpoint import CHECKPOINT_NAME, PREVIOUS_NAME

#: Checkpoint folder prefixes: ours under Ray Train ("epoch_"), Tune's for a trial trained in its
#: actor ("checkpoint_NNNNNN", cjepa/sweep/trial_actor.py); both zero-padded, so names sort by age.
PREFIXES = (checkpoint_dir_name(0)[:-4], "checkpoint_")


def previous_checkpoint_path(checkpoint: Any) -> str | None:
    """Path (in ``checkpoint.filesystem``) of the ``checkpoint.pt`` of the newest folder of the same
    kind (``epoch_NNNN`` or Tune's ``checkpoint_NNNNNN``) older than ``checkpoint``'s, or None."""
    from pyarrow import fs as pafs

    latest = checkpoint.path.rstrip("/")
    parent, name = latest.rsplit("/", 1)
    infos = checkpoint.filesystem.get_file_info(pafs.FileSelector(parent, allow_not_found=True))
    prefix = next((p for p in PREFIXES if name.startswith(p)), None)
    if prefix is None:
        return None
    older = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory
                   and i.base_name.startswith(prefix) and i.base_name < name)
    if not older:
        return None
    path = f"{parent}/{older[-1]}/{CHECKPOINT_NAME}"
    return path if checkpoint.filesystem.get_file_info(path).type == pafs.FileType.File else None


def copy_previous_checkpoint(checkpoint: Any, run_dir: Path) -> Path | None:
    """Copy the previous Ray checkpoint's ``checkpoint.pt`` to ``run_dir/checkpoint.prev.pt``
    (best effort: without it a damaged latest checkpoint is the engine's one-line error)."""
    try:
        src = previous_checkpoint_path(checkpoint)
        if src is None:
            return None
        dst = run_dir / PREVIOUS_NAME
        with checkpoint.filesystem.open_input_stream(src) as fin, dst.open("wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
        return dst
    except OSError as exc:
        print(f"[cjepa] warning: the previous Ray checkpoint could not be fetched ({exc}); "
              "a damaged latest checkpoint cannot fall back", file=sys.stderr)
        return None
