"""``cjepa data convert``'s library side: image folders, ImageNet's layout and built-in data sets ->
Parquet image shards. The format (:class:`Manifest`) is ``shard_format.py``, the reader ``shards.py``.

* Layouts (``imagenet_layout.py``): one image folder (one sub-folder per class), or ``train/`` plus
  ``val/`` and/or ``test/`` (class folders, or a flat val/ with ``LOC_val_solution.csv`` or the
  ILSVRC2012 devkit's ground truth). A pair becomes ``OUT/train`` and ``OUT/val`` (the source's
  names) sharing train's class index, recorded in each split's classes.json and manifest.
* Images (``convert_shards.py``): originals kept (``keep``: verified by a 1/8-scale JPEG decode that
  also gives the statistics), or re-encoded (``png``/``jpeg``), optionally with the shorter side
  scaled down to N, aspect kept (``center_crop``: N x N). Per-channel mean/std go to the manifest.
* Parallel and resumable: one process per core writes one whole shard at a time; shard bytes do not
  depend on the worker count; re-running an interrupted command writes only the missing shards.
  Spreading a conversion over a Ray cluster is not implemented (see ``convert_shards.py`` for how).
* Corrupt sources: refused with the file named (default), or skipped, logged and listed in the
  manifest (``extra["skipped"]``): never a silent hole.

Rows are shuffled (``seed``) before sharding, so any prefix of a split (the evaluator takes the first
``eval.test_samples`` test images) is a class-mixed sample; training order comes from the sampler.
Built-in sets keep their order, so parquet row i is ``load_split`` image i.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cjepa.data.convert_shards import ON_CORRUPT, SplitPlan, run_plan
from cjepa.data.imagenet_layout import IMAGE_SUFFIXES, SplitSource, find_splits, scan_class_folders  # noqa: F401
from cjepa.data.shard_format import (  # noqa: F401  (re-exported: the format's names, for callers of convert)
    CLASSES,
    DECODE_ERRORS,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    Manifest,
    ShardInfo,
    decode_image,
)
from cjepa.data.shard_writer import FORMATS, ShardWriter, encode_image, write_atomic, write_shard  # noqa: F401
from cjepa.errors import DataError

DEFAULT_SHARD_SIZE = 4096
BUILTIN_CLASSES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"),
    "digits": tuple(str(d) for d in range(10)),
}
Progress = Callable[[str, int, int, int], None]  # (split, shards done, shards, rows)


def plan_split(split: SplitSource, out: Path, shard_size: int, image_format: str, *, resize: int | None = None,
               center_crop: bool = False, jpeg_quality: int = 95, seed: int | None = 0,
               on_corrupt: str = "refuse") -> SplitPlan:
    """The shuffled (seeded) row order of a split, cut into shards: what every worker reads."""
    if shard_size < 1:
        raise DataError(f"--shard-size must be >= 1, got {shard_size}")
    if image_format not in FORMATS:
        raise DataError(f"--format must be one of {', '.join(FORMATS)}, got {image_format!r}")
    if resize is not None and image_format == "keep":
        raise DataError("--resize needs --format png or jpeg (keep stores the original bytes)")
    if center_crop and resize is None:
        raise DataError("--center-crop needs --resize N (the side of the square)")
    if on_corrupt not in ON_CORRUPT:
        raise DataError(f"--on-corrupt must be one of {', '.join(ON_CORRUPT)}, got {on_corrupt!r}")
    n = len(split.files)
    order = np.random.default_rng(seed).permutation(n) if seed is not None else np.arange(n)
    return SplitPlan(str(split.root.resolve()), str(out), tuple(split.files[i][0] for i in order),
                     tuple(int(split.files[i][1]) for i in order), tuple(split.classes), shard_size, image_format,
                     resize, center_crop, jpeg_quality, seed, on_corrupt, split.labels_from)


def convert_image_folder(src: str | Path, out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE,
                         image_format: str = "png", *, resize: int | None = None, center_crop: bool = False,
                         jpeg_quality: int = 95, seed: int | None = 0, classes: list[str] | None = None,
                         overwrite: bool = False, workers: int | None = None, on_corrupt: str = "refuse") -> Manifest:
    """One image folder (one sub-folder per class) -> one split. ``resize=N`` scales the shorter side
    down to N, aspect kept; with ``center_crop`` to N x N. ``workers``: processes (default: all cores)."""
    split = scan_class_folders(Path(src).expanduser(), classes)
    plan = plan_split(split, Path(out).expanduser(), shard_size, image_format, resize=resize, center_crop=center_crop,
                      jpeg_quality=jpeg_quality, seed=seed, on_corrupt=on_corrupt)
    return run_plan(plan, workers, overwrite)


def convert_builtin(name: str, split: str, out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE,
                    image_format: str = "png", overwrite: bool = False) -> Manifest:
    """A split of a built-in data set (``fashion_mnist``, ``digits``) as PNG (or JPEG) shards, in order."""
    from cjepa.config import DataConfig
    from cjepa.data.datasets import load_raw_split

    if name not in BUILTIN_CLASSES:
        raise DataError(f"builtin:{name}: unknown; built-in data sets are {', '.join(BUILTIN_CLASSES)}")
    data = load_raw_split(DataConfig(dataset=name), split)  # whole: the holdout is carved at training
    images, labels = data.images[:, 0].numpy(), data.labels.tolist()
    fmt = "png" if image_format == "keep" else image_format  # the arrays have no original encoding
    writer = ShardWriter(out, shard_size, fmt, 1, overwrite)
    writer.add_stats(images)
    for i, (img, label) in enumerate(zip(images, labels)):
        writer.add(encode_image(img, fmt), label, f"{name}/{split}/{i:05d}.{fmt}", size=img.shape[:2])
    return writer.finish(list(BUILTIN_CLASSES[name]), f"builtin:{name}/{split}")


def convert(src: str, out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE, image_format: str = "png", *,
            resize: int | None = None, center_crop: bool = False, jpeg_quality: int = 95, seed: int | None = 0,
            overwrite: bool = False, workers: int | None = None, on_corrupt: str = "refuse",
            val_labels: str | Path | None = None, progress: Progress | None = None,
            execute: Any = None) -> dict[str, Manifest]:
    """The CLI's entry. ``builtin:NAME`` -> ``out/train`` and ``out/test``; a folder holding
    ``train/`` and ``val/`` or ``test/`` -> ``out/train`` and ``out/val`` / ``out/test`` with one class
    index; any other folder -> one split into ``out``. Returns {split ("" for one): manifest}.
    Re-running an interrupted conversion with the same arguments finishes it. ``execute``: where the
    shards run (``run_plan``'s; e.g. Ray tasks, ``cjepa.distributed.convert_ray``), paths made absolute."""
    for what, path in (("SRC", src), ("OUT", str(out))):
        if "://" in path:  # pathlib would make a local folder named "s3:"
            raise DataError(f"{what} {path}: conversion reads and writes local or mounted folders; convert to a "
                            "local OUT, then copy it to the object store (data.root may be an s3:// or gs:// URI)")
    out = Path(out).expanduser()
    if src.startswith("builtin:"):
        name = src.split(":", 1)[1]
        return {s: convert_builtin(name, s, out / s, shard_size, image_format, overwrite) for s in ("train", "test")}
    if execute is not None:  # other processes, maybe other machines: no path relative to this cwd
        src, out = str(Path(src).expanduser().resolve()), out.resolve()
    labels = Path(val_labels).expanduser() if val_labels is not None else None
    splits = find_splits(Path(src).expanduser(), labels)  # every label file checked before any shard
    plans = [plan_split(s, out / s.name, shard_size, image_format, resize=resize, center_crop=center_crop,
                        jpeg_quality=jpeg_quality, seed=seed, on_corrupt=on_corrupt) for s in splits]
    return {s.name: run_plan(p, workers, overwrite, _reporter(progress, s.name), execute)
            for s, p in zip(splits, plans)}


def _reporter(progress: Progress | None, split: str) -> Callable[[int, int, int], None] | None:
    return None if progress is None else (lambda done, n, rows: progress(split, done, n, rows))
