"""``cjepa data convert SRC OUT``: the command-line side of ``cjepa.data.convert``.

Kept apart from cli.py so cli.py stays small. Note: importing this module runs
``cjepa/data/__init__.py``, which imports torch, so building the ``cjepa`` parser pays for it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from cjepa.data.convert import DEFAULT_SHARD_SIZE, FORMATS, ON_CORRUPT, Manifest, convert
from cjepa.errors import DataError

DESCRIPTION = """\
Convert an image folder, ImageNet's layout or a built-in data set into Parquet shards with
classes.json and a checksummed manifest.json (per-channel mean/std, sizes, skipped files).
SRC may be: one folder with one sub-folder per class (-> OUT); train/ plus val/ and/or test/, each
with class sub-folders, or a flat val/ labelled by LOC_val_solution.csv (found in SRC or up to three
folders above it) or by the ILSVRC2012 devkit (--val-labels) (-> OUT/train, OUT/val, one class index
from train's folders); or builtin:NAME (-> OUT/train, OUT/test). Runs on all cores. Interrupted?
Re-run the same command: finished shards are kept and only the missing ones are written."""


def add_data_parser(subparsers: Any) -> None:
    """Add ``data`` (with its ``convert`` sub-command) to the ``cjepa`` sub-parsers."""
    p = subparsers.add_parser("data", help="data set tools (convert image folders to Parquet shards)",
                              description="Data set tools.")
    sub = p.add_subparsers(dest="data_command", required=True)
    c = sub.add_parser("convert", help="image folder, ImageNet or built-in data set -> Parquet image shards",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("src", metavar="SRC", help="image folder, ImageNet root, or builtin:fashion_mnist / builtin:digits")
    c.add_argument("out", metavar="OUT", help="output directory")
    c.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="N",
                   help=f"images per shard, the unit of work of one process (default: {DEFAULT_SHARD_SIZE})")
    c.add_argument("--format", dest="image_format", choices=FORMATS, default="png",
                   help="re-encode as PNG (lossless, default) or JPEG, or keep the source files' bytes "
                        "(each is still decoded, at 1/8 scale, to verify it and for the statistics)")
    c.add_argument("--resize", type=int, metavar="N",
                   help="scale the shorter side down to N, keeping the aspect ratio; images whose shorter "
                        "side is already <= N keep their size (never upscaled)")
    c.add_argument("--center-crop", action="store_true",
                   help="with --resize N: shorter side to N (smaller images are upscaled), then the central "
                        "N x N square, so every image has one size")
    c.add_argument("--jpeg-quality", type=int, default=95, metavar="Q", help="with --format jpeg (default: 95)")
    c.add_argument("--seed", type=int, default=0, help="seed of the row shuffle of image folders (default: 0)")
    c.add_argument("--workers", type=int, default=os.cpu_count() or 1, metavar="N",
                   help=f"processes, each writing one shard at a time (default: all cores, {os.cpu_count()})")
    c.add_argument("--on-corrupt", choices=ON_CORRUPT, default="refuse",
                   help="a file that does not decode: refuse (default: stop, naming it; finished shards are "
                        "kept) or skip (leave it out, warn, list it in manifest.json)")
    c.add_argument("--val-labels", metavar="PATH",
                   help="labels of a flat val/: LOC_val_solution.csv, or the ILSVRC2012 devkit's data/ folder "
                        "(or its ILSVRC2012_validation_ground_truth.txt with meta.mat beside it)")
    c.add_argument("--overwrite", action="store_true",
                   help="replace shards already in OUT (or an unfinished conversion with other settings)")
    c.add_argument("--ray", action="store_true",
                   help="spread the shards over a Ray cluster's CPUs, one task per shard (RAY_ADDRESS or the "
                        "running cluster, else a local one); SRC and OUT must be on storage every node mounts")
    c.set_defaults(func=cmd_convert)


def check_options(shard_size: int, image_format: str, resize: int | None, jpeg_quality: int,
                  seed: int | None, workers: int = 1, center_crop: bool = False) -> None:
    """The flags, before any file is read: a bad one should not wait for a scan of the whole folder
    (nor be hidden behind an unrelated bad image), and PIL silently clamps what it does not accept."""
    if shard_size < 1:
        raise DataError(f"--shard-size must be >= 1, got {shard_size}")
    if image_format not in FORMATS:
        raise DataError(f"--format must be one of {', '.join(FORMATS)}, got {image_format!r}")
    if resize is not None and resize < 1:
        raise DataError(f"--resize must be a side length >= 1 (pixels), got {resize}")
    if resize is not None and image_format == "keep":
        raise DataError("--resize needs --format png or jpeg (keep stores the original bytes)")
    if center_crop and resize is None:
        raise DataError("--center-crop needs --resize N (the side of the square)")
    if not 1 <= jpeg_quality <= 100:
        raise DataError(f"--jpeg-quality must be in 1..100 (95 = default), got {jpeg_quality}")
    if seed is not None and seed < 0:
        raise DataError(f"--seed must be >= 0, got {seed}")
    if workers < 1:
        raise DataError(f"--workers must be >= 1, got {workers}")


def _progress(start: float) -> Callable[[str, int, int, int], None]:
    """Prints to stderr at most every 10 s (and at each split's end): a long import shows its pace."""
    last = [start]

    def report(split: str, done: int, total: int, rows: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= 10 or done == total:
            last[0] = now
            print(f"[cjepa] {split or 'images'}: {done}/{total} shards, {rows} images", file=sys.stderr, flush=True)

    return report


def summary(where: str, m: Manifest) -> list[str]:
    """A split's lines: images, classes, shards, MB, sizes, mean/std, skipped files."""
    size = "x".join(map(str, m.image_size)) if m.image_size else \
        f"{m.min_size[0]}x{m.min_size[1]} to {m.max_size[0]}x{m.max_size[1]} (HxW)"
    mb = sum(s.bytes for s in m.shards) / 1e6
    fmt = lambda xs: "/".join(f"{x:.3f}" for x in xs)  # noqa: E731
    lines = [f"[cjepa] {where}: {m.total} images, {m.num_classes} classes, {len(m.shards)} shards "
             f"({mb:.1f} MB {m.image_format}, {size}, {m.channels} channel{'s' * (m.channels > 1)}); "
             f"mean {fmt(m.mean)} std {fmt(m.std)}" + (" (1/8-scale decode)" if m.image_format == "keep" else "")]
    skipped = m.extra.get("skipped") or []
    if skipped:
        lines.append(f"[cjepa] {where}: {len(skipped)} file{'s' * (len(skipped) > 1)} skipped as unreadable, "
                     f"listed in {where}/manifest.json (extra.skipped), first {skipped[0]['path']}")
    return lines


def _executor(args: argparse.Namespace) -> Any:
    if not getattr(args, "ray", False):
        return None
    from cjepa.distributed.convert_ray import ray_execute  # Ray only when asked for

    return ray_execute()


def cmd_convert(args: argparse.Namespace) -> int:
    check_options(args.shard_size, args.image_format, args.resize, args.jpeg_quality, args.seed, args.workers,
                  args.center_crop)
    start = time.perf_counter()
    try:
        manifests = convert(args.src, args.out, args.shard_size, args.image_format, resize=args.resize,
                            center_crop=args.center_crop, jpeg_quality=args.jpeg_quality, seed=args.seed,
                            overwrite=args.overwrite, workers=args.workers, on_corrupt=args.on_corrupt,
                            val_labels=args.val_labels, progress=_progress(start), execute=_executor(args))
    except OSError as exc:  # OUT not creatable (a file in the way, read-only), a source file unreadable, disk full
        where = exc.filename or args.out
        raise DataError(f"{where}: {exc.strerror or exc} while converting {args.src} into {args.out}; "
                        "expected a readable SRC and a writable OUT folder") from None
    took = time.perf_counter() - start
    for split, m in manifests.items():
        print("\n".join(summary(f"{args.out}/{split}" if split else args.out, m)))
    n = sum(m.total for m in manifests.values())
    hint = f"train with data.dataset=parquet data.root={args.out}" if "train" in manifests else \
        "put it under ROOT/train or ROOT/test and train with data.dataset=parquet data.root=ROOT"
    print(f"[cjepa] converted {n} images in {took:.1f} s ({n / max(took, 1e-9):.0f} images/s, "
          f"{args.workers} workers); {hint}")
    return 0
