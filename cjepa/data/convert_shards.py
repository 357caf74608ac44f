"""Parallel, resumable conversion of one split: a :class:`SplitPlan`, one worker call per shard.

The parent scans and shuffles the file list (seeded), cuts it into shards of ``shard_size`` rows and
writes the plan (``OUT/.convert/plan.json``) before any shard. :func:`convert_shard` is a pure
top-level function of (plan, shard index): it reads its files, verifies or re-encodes them, writes
its shard atomically and a done-marker beside the plan (ShardInfo, pixel histogram, sizes,
skipped files). So shard bytes never depend on the worker count or on which worker wrote them, and
a re-run of the same command keeps every shard whose marker and file are there and writes only the
rest. The parent merges the markers and writes ``manifest.json`` last, then removes ``.convert/``.

Workers: a ``ProcessPoolExecutor`` on this machine's cores, or (``--ray``) one Ray task per shard
over a cluster's CPUs (``cjepa/distributed/convert_ray.py``; this module stays Ray-free).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import multiprocessing
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from cjepa.data.shard_format import DECODE_ERRORS, MANIFEST, Manifest, ShardInfo
from cjepa.data.shard_writer import (
    encode_image,
    existing_outputs,
    finish_split,
    mean_std,
    pixel_histogram,
    write_json,
    write_shard,
)
from cjepa.errors import DataError

log = logging.getLogger(__name__)
STATE = ".convert"  # plan and per-shard done-markers of an unfinished conversion
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
ON_CORRUPT = ("refuse", "skip")


@dataclass(frozen=True)
class SplitPlan:
    """Everything a worker needs to write shard i; ``files``/``labels`` are in row order."""

    source: str
    out: str
    files: tuple[str, ...]  # relative to source
    labels: tuple[int, ...]
    classes: tuple[str, ...]
    shard_size: int
    image_format: str  # png | jpeg | keep
    resize: int | None = None  # shorter side down to this (never up, unless center_crop)
    center_crop: bool = False  # shorter side to ``resize`` (up or down), then the central square
    jpeg_quality: int = 95
    seed: int | None = 0
    on_corrupt: str = "refuse"  # not part of the identity: a refused run may resume with skip
    labels_from: str = "class folders"

    @property
    def num_shards(self) -> int:
        return -(-len(self.files) // self.shard_size)

    def shard_name(self, i: int) -> str:
        return f"shard-{i:05d}.parquet"

    def identity(self) -> dict:
        """What plan.json holds: the options and a hash of the ordered (file, label) list."""
        digest = hashlib.sha256("\n".join(f"{f}\t{lab}" for f, lab in zip(self.files, self.labels)).encode())
        keep = ("source", "classes", "shard_size", "image_format", "resize", "center_crop", "jpeg_quality", "seed")
        return {**{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k in keep},
                "files": len(self.files), "files_sha256": digest.hexdigest()}


@dataclass
class ShardResult:
    """A worker's answer and a done-marker's content."""

    info: ShardInfo
    hist: list[list[int]]  # (3, 256) pixel counts; grey images count in every channel
    min_size: list[int]
    max_size: list[int]
    grey: bool  # every image of the shard is grey
    skipped: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict) -> ShardResult:
        return cls(**{**d, "info": ShardInfo(**d["info"])})


def _target_size(w: int, h: int, resize: int | None, center_crop: bool) -> tuple[int, int]:
    """(W, H) after scaling: the shorter side to ``resize``, aspect kept; only down unless center_crop."""
    short = min(w, h)
    if resize is None or short == resize or (short < resize and not center_crop):
        return w, h
    s = resize / short
    return (resize, max(1, round(h * s))) if w == short else (max(1, round(w * s)), resize)


def load_image(data: bytes, plan: SplitPlan) -> tuple[bytes, np.ndarray, tuple[int, int], bool]:
    """Source bytes -> (stored bytes, (3, 256) pixel histogram, stored (H, W), grey?). Raises
    DECODE_ERRORS for anything that does not decode in full. ``keep``: decoded with JPEG DCT
    scaling (``draft``, 1/8 per side), a fraction of a full decode; PNG decodes in full."""
    with Image.open(io.BytesIO(data)) as im:
        grey = im.mode in GREY_MODES
        mode, (w, h) = ("L" if grey else "RGB"), im.size
        if plan.image_format == "keep":
            im.draft(mode, (max(1, w // 8), max(1, h // 8)))
            return data, pixel_histogram(im.convert(mode)), (h, w), grey
        tw, th = _target_size(w, h, plan.resize, plan.center_crop)
        if (tw, th) != (w, h):
            im.draft(mode, (tw, th))  # JPEG: decode at the smallest scale >= the target
        out = im.convert(mode)
    if out.size != (tw, th):
        out = out.resize((tw, th), Image.BILINEAR)
    if plan.center_crop and plan.resize:
        n = plan.resize
        left, top = (tw - n) // 2, (th - n) // 2
        out = out.crop((left, top, left + n, top + n))
    stored = encode_image(out, plan.image_format, plan.jpeg_quality)
    return stored, pixel_histogram(out), (out.height, out.width), grey


def convert_shard(plan: SplitPlan, index: int) -> ShardResult:
    """Read, verify/re-encode and write shard ``index`` of ``plan``, then its done-marker."""
    rows = range(index * plan.shard_size, min(len(plan.files), (index + 1) * plan.shard_size))
    images, labels, paths, sizes, skipped = [], [], [], [], []
    hist, grey_all = np.zeros((3, 256), np.int64), True
    for r in rows:
        rel, path = plan.files[r], Path(plan.source) / plan.files[r]
        try:
            stored, pixel_hist, size, grey = load_image(path.read_bytes(), plan)
        except DECODE_ERRORS as exc:  # OSError includes a file that cannot be read
            why = re.sub(r" <_io\.BytesIO object at 0x[0-9a-f]+>", "", str(exc)) or type(exc).__name__
            if plan.on_corrupt != "skip":
                raise DataError(f"{path}: not a readable image ({why}); fix or remove it, or pass "
                                "--on-corrupt skip (then re-run: finished shards are kept)") from None
            skipped.append({"path": rel, "error": why})
            continue
        hist += pixel_hist
        grey_all &= grey
        for buf, v in zip((images, labels, paths, sizes), (stored, plan.labels[r], rel, size)):
            buf.append(v)
    out = Path(plan.out)
    if images:
        info = write_shard(out / plan.shard_name(index), images, labels, paths, sizes)
    else:  # every file skipped: no shard, the marker says so
        info = ShardInfo(plan.shard_name(index), 0, 0, "")
    hw = np.asarray(sizes).reshape(-1, 2)
    result = ShardResult(info, hist.tolist(), hw.min(0).tolist() if images else [0, 0],
                         hw.max(0).tolist() if images else [0, 0], grey_all, skipped)
    write_json(out / STATE / f"{plan.shard_name(index)}.json", asdict(result))
    return result


def _load_marker(plan: SplitPlan, i: int) -> ShardResult | None:
    """A finished shard of an earlier run of this plan: marker readable, file there at its size."""
    out = Path(plan.out)
    try:
        r = ShardResult.from_dict(json.loads((out / STATE / f"{plan.shard_name(i)}.json").read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if r.info.rows == 0:
        return r
    shard = out / r.info.file
    return r if shard.is_file() and shard.stat().st_size == r.info.bytes else None


def claim(plan: SplitPlan, overwrite: bool) -> bool:
    """Own ``plan.out`` for this plan; True when resuming an unfinished run of the same plan."""
    out, state = Path(plan.out), Path(plan.out) / STATE
    out.mkdir(parents=True, exist_ok=True)
    want = plan.identity()
    try:
        have = json.loads((state / "plan.json").read_text())
    except (OSError, ValueError):
        have = None
    if have == want and not (out / MANIFEST).exists():
        return True
    if not overwrite:
        if have is not None and not (out / MANIFEST).exists():
            k = next((k for k in want if have.get(k) != want[k]), "files_sha256")
            diff = f"{k}: {have.get(k)!r}, now {want[k]!r}" if k != "files_sha256" else \
                f"the list of source files and labels differs ({have.get('files')} files then, {want['files']} now)"
            raise DataError(f"{out} holds an unfinished conversion with other settings ({diff}); re-run its "
                            "command to finish it, or pass --overwrite")
        old = existing_outputs(out)
        if old:
            raise DataError(f"{out} already holds shards ({', '.join(old[:3])}, ...); pass --overwrite to "
                            "replace them")
    (out / MANIFEST).unlink(missing_ok=True)  # first: until the new one lands, the dir is unfinished
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir()
    write_json(state / "plan.json", want)
    return False


_PLAN: SplitPlan | None = None


def _init_worker(plan: SplitPlan) -> None:
    global _PLAN
    _PLAN = plan


def _pool_task(index: int) -> ShardResult:
    assert _PLAN is not None
    return convert_shard(_PLAN, index)


def _execute(plan: SplitPlan, todo: list[int], workers: int) -> Iterator[tuple[int, ShardResult]]:
    """Run the shards; yields each as it finishes. The first error cancels what has not started."""
    if workers <= 1 or len(todo) <= 1:
        for i in todo:
            yield i, convert_shard(plan, i)
        return
    ctx = multiprocessing.get_context("fork") if sys.platform == "linux" else None  # no re-import of torch
    pool = ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_init_worker, initargs=(plan,))
    try:
        pending = {pool.submit(_pool_task, i): i for i in todo}
        while pending:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for f in sorted(done, key=pending.get):
                if f.exception() is not None:
                    raise f.exception()
                yield pending.pop(f), f.result()
    except BrokenProcessPool:
        raise DataError(f"{plan.out}: a conversion worker died (out of memory? each holds one shard's bytes); "
                        "re-run to resume, with fewer --workers or a smaller --shard-size") from None
    finally:  # an error or Ctrl-C: nothing new starts; shards in flight finish and keep their markers
        pool.shutdown(wait=True, cancel_futures=True)


def merge_split(plan: SplitPlan, results: list[ShardResult]) -> Manifest:
    """Every shard's marker -> manifest.json (written last), classes.json; ``.convert/`` removed."""
    out = Path(plan.out)
    skipped = [s for r in results for s in r.skipped]
    if skipped and plan.on_corrupt != "skip":
        raise DataError(f"{Path(plan.source) / skipped[0]['path']}: not a readable image ({skipped[0]['error']}; "
                        "skipped by an earlier --on-corrupt skip run); pass --on-corrupt skip, or --overwrite")
    written = [r for r in results if r.info.rows]
    total = sum(r.info.rows for r in written)
    if total == 0:
        raise DataError(f"{plan.source}: no images to convert ({len(skipped)} files skipped as unreadable)")
    channels = 1 if all(r.grey for r in written) else 3
    mean, std = mean_std(np.sum([r.hist for r in written], axis=0)[:channels])
    lo, hi = np.min([r.min_size for r in written], 0).tolist(), np.max([r.max_size for r in written], 0).tolist()
    extra = {"classes": list(plan.classes), "labels_from": plan.labels_from,
             "columns": ["image", "label", "path", "height", "width"],
             "resize": {"shorter_side": plan.resize, "center_crop": plan.center_crop} if plan.resize else None,
             "stats_from": "1/8-scale decode" if plan.image_format == "keep" else "stored pixels before encoding",
             "seed": plan.seed, "skipped": skipped}
    m = Manifest([r.info for r in written], total, len(plan.classes), plan.image_format, channels,
                 lo if lo == hi else None, lo, hi, mean, std, plan.source, extra=extra)
    finish_split(out, m, plan.classes)
    shutil.rmtree(out / STATE, ignore_errors=True)
    for tmp in out.glob(".shard-*.tmp"):  # from a run killed mid-write
        tmp.unlink()
    return m


def run_plan(plan: SplitPlan, workers: int | None = None, overwrite: bool = False,
             progress: Callable[[int, int, int], None] | None = None,
             execute: Callable[[SplitPlan, list[int], int], Iterator[tuple[int, ShardResult]]] | None = None
             ) -> Manifest:
    """Convert a split (resuming an unfinished run of the same plan); ``progress(done, total, rows)``.
    ``execute``: where the shards run (default: this machine's processes; ``cjepa.distributed.convert_ray``)."""
    resumed = claim(plan, overwrite)
    results = {i: r for i in range(plan.num_shards) if resumed and (r := _load_marker(plan, i)) is not None}
    todo = [i for i in range(plan.num_shards) if i not in results]
    if resumed:
        log.info("%s: resuming; %d of %d shards already written", plan.out, len(results), plan.num_shards)
    for i, r in (execute or _execute)(plan, todo, workers or os.cpu_count() or 1):
        results[i] = r
        for s in r.skipped:
            log.warning("%s: skipped, not a readable image (%s)", Path(plan.source) / s["path"], s["error"])
        if progress is not None:
            progress(len(results), plan.num_shards, sum(x.info.rows for x in results.values()))
    return merge_split(plan, [results[i] for i in range(plan.num_shards)])
