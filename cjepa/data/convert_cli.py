"""``cjepa data convert SRC OUT``: the command-line side of ``cjepa.data.convert``.

Kept apart from cli.py so cli.py stays small. Note: importing this module runs
``cjepa/data/__init__.py``, which imports torch, so building the ``cjepa`` parser pays for it.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from cjepa.data.convert import DEFAULT_SHARD_SIZE, FORMATS, convert
from cjepa.errors import DataError


def add_data_parser(subparsers: Any) -> None:
    """Add ``data`` (with its ``convert`` sub-command) to the ``cjepa`` sub-parsers."""
    p = subparsers.add_parser("data", help="data set tools (convert image folders to Parquet shards)",
                              description="Data set tools.")
    sub = p.add_subparsers(dest="data_command", required=True)
    c = sub.add_parser(
        "convert", help="image folder or built-in data set -> Parquet image shards",
        description="Convert an image folder (one sub-folder per class; or train/ and test/ folders "
                    "that each hold class sub-folders) or a built-in data set into Parquet shards with "
                    "classes.json and a checksummed manifest.json. builtin:NAME and train/+test/ folders "
                    "write OUT/train and OUT/test: train on them with data.dataset=parquet data.root=OUT.")
    c.add_argument("src", metavar="SRC", help="image folder, or builtin:fashion_mnist / builtin:digits")
    c.add_argument("out", metavar="OUT", help="output directory")
    c.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, metavar="N",
                   help=f"images per shard (default: {DEFAULT_SHARD_SIZE})")
    c.add_argument("--format", dest="image_format", choices=FORMATS, default="png",
                   help="re-encode as PNG (lossless, default) or JPEG, or keep the source files' bytes")
    c.add_argument("--resize", type=int, metavar="N",
                   help="scale the shorter side to N and centre-crop N x N (needed when sizes differ)")
    c.add_argument("--jpeg-quality", type=int, default=95, metavar="Q", help="with --format jpeg (default: 95)")
    c.add_argument("--seed", type=int, default=0, help="seed of the row shuffle of image folders (default: 0)")
    c.add_argument("--overwrite", action="store_true", help="replace shards already in OUT")
    c.set_defaults(func=cmd_convert)


def check_options(shard_size: int, image_format: str, resize: int | None, jpeg_quality: int,
                  seed: int | None) -> None:
    """The flags, before any file is read: a bad one should not wait for a scan of the whole folder
    (nor be hidden behind an unrelated bad image), and PIL silently clamps what it does not accept."""
    if shard_size < 1:
        raise DataError(f"--shard-size must be >= 1, got {shard_size}")
    if image_format not in FORMATS:
        raise DataError(f"--format must be one of {', '.join(FORMATS)}, got {image_format!r}")
    if resize is not None and resize < 1:
        raise DataError(f"--resize must be a side length >= 1 (pixels), got {resize}")
    if not 1 <= jpeg_quality <= 100:
        raise DataError(f"--jpeg-quality must be in 1..100 (95 = default), got {jpeg_quality}")
    if seed is not None and seed < 0:
        raise DataError(f"--seed must be >= 0, got {seed}")


def cmd_convert(args: argparse.Namespace) -> int:
    check_options(args.shard_size, args.image_format, args.resize, args.jpeg_quality, args.seed)
    start = time.perf_counter()
    try:
        manifests = convert(args.src, args.out, args.shard_size, args.image_format, resize=args.resize,
                            jpeg_quality=args.jpeg_quality, seed=args.seed, overwrite=args.overwrite)
    except OSError as exc:  # OUT not creatable (a file in the way, read-only), a source file unreadable, disk full
        where = exc.filename or args.out
        raise DataError(f"{where}: {exc.strerror or exc} while converting {args.src} into {args.out}; "
                        "expected a readable SRC and a writable OUT folder") from None
    took = time.perf_counter() - start
    for split, m in manifests.items():
        size = "x".join(map(str, m.image_size)) if m.image_size else f"{m.min_size} to {m.max_size}"
        mb = sum(s.bytes for s in m.shards) / 1e6
        where = f"{args.out}/{split}" if split else args.out
        print(f"[cjepa] {where}: {m.total} images, {m.num_classes} classes, {len(m.shards)} shards "
              f"({mb:.1f} MB {m.image_format}, {size}, {m.channels} channel{'s' * (m.channels > 1)})")
    hint = "data.dataset=parquet data.root=" + args.out if set(manifests) == {"train", "test"} else \
        "put it under ROOT/train or ROOT/test and train with data.dataset=parquet data.root=ROOT"
    print(f"[cjepa] converted in {took:.1f} s; {hint}")
    return 0
