"""The Parquet image-shard writer: image folders and built-in data sets -> shards. The format
(:class:`Manifest`) is ``shard_format.py``, the reader ``shards.py``.

An image folder has one sub-folder per class (JPEG/PNG files, searched recursively). Two passes:
headers first (cheap: size and mode of every file) to fix the channel count (grey only when every
source is grey), then decode, re-encode (``png``/``jpeg``) or keep the original bytes (``keep``),
accumulate per-channel pixel mean/std and write the shards. Corrupt sources stop the conversion
with the path named: better now than as a hole in every epoch.

Atomic: the old ``manifest.json`` is removed first, every shard is written to a temporary name and
``os.replace``d, ``manifest.json`` comes last; a reader therefore never trusts a half-written
directory. Rows are shuffled (``seed``) before sharding, so any prefix of a split (the evaluator
takes the first ``eval.test_samples`` test images) is a class-mixed sample; training order comes
from the sampler. Built-in sets keep their order, so parquet row i is ``load_split`` image i.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

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
from cjepa.errors import DataError

FORMATS = ("png", "jpeg", "keep")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
DEFAULT_SHARD_SIZE = 4096
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
BUILTIN_CLASSES = {
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"),
    "digits": tuple(str(d) for d in range(10)),
}


def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync, ``os.replace``: readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    _fsync_replace(tmp, path)


def write_shard(path: Path, images: list[bytes], labels: list[int], paths: list[str],
                row_group_size: int = 1024) -> ShardInfo:
    """One shard, atomically. Image bytes stay uncompressed: PNG/JPEG do not compress further."""
    table = pa.table({"image": pa.array(images, pa.binary()), "label": pa.array(labels, pa.int32()),
                      "path": pa.array(paths, pa.string())})
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, row_group_size=row_group_size, use_dictionary=["path"],
                   compression={"image": "NONE", "label": "ZSTD", "path": "ZSTD"})
    data = tmp.read_bytes()
    info = ShardInfo(path.name, len(images), len(data), hashlib.sha256(data).hexdigest())
    _fsync_replace(tmp, path)
    return info


def encode_image(arr: np.ndarray, image_format: str, jpeg_quality: int = 95) -> bytes:
    """(H, W) or (H, W, 3) uint8 -> PNG (lossless) or JPEG bytes."""
    buf = io.BytesIO()
    if image_format == "jpeg":
        Image.fromarray(arr).save(buf, format="JPEG", quality=jpeg_quality)
    else:
        Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


class ShardWriter:
    """Buffers rows, writes ``shard-NNNNN.parquet`` every ``shard_size`` rows, then the manifest."""

    def __init__(self, out: str | Path, shard_size: int, image_format: str, channels: int,
                 overwrite: bool = False) -> None:
        if shard_size < 1:
            raise DataError(f"--shard-size must be >= 1, got {shard_size}")
        if image_format not in FORMATS:
            raise DataError(f"--format must be one of {', '.join(FORMATS)}, got {image_format!r}")
        self.out, self.shard_size, self.image_format, self.channels = Path(out), shard_size, image_format, channels
        self.out.mkdir(parents=True, exist_ok=True)
        old = sorted(p.name for p in self.out.iterdir() if p.name in (MANIFEST, CLASSES) or p.name.startswith("shard-"))
        if old and not overwrite:
            raise DataError(f"{self.out} already holds shards ({', '.join(old[:3])}, ...); pass --overwrite "
                            "to replace them")
        (self.out / MANIFEST).unlink(missing_ok=True)  # first: until the new one lands, the dir is unfinished
        self.shards: list[ShardInfo] = []
        self._rows: tuple[list[bytes], list[int], list[str]] = ([], [], [])
        self._hist = np.zeros((channels, 256), np.int64)  # exact pixel histograms -> mean/std
        self._min, self._max = np.array([1 << 30, 1 << 30]), np.array([0, 0])

    def add(self, encoded: bytes, label: int, path: str, pixels: np.ndarray | None = None) -> None:
        """One image: its stored bytes and, unless given to :meth:`add_stats` already, its decoded
        (H, W[, 3]) uint8 pixels (for the manifest's mean/std and sizes)."""
        for buf, value in zip(self._rows, (encoded, label, path)):
            buf.append(value)
        if pixels is not None:
            self.add_stats(pixels[None])
        if len(self._rows[0]) >= self.shard_size:
            self._flush()

    def add_stats(self, batch: np.ndarray) -> None:
        """Pixel sums and sizes of an (N, H, W[, 3]) uint8 batch."""
        for start in range(0, len(batch), 1024):  # chunks: bincount widens to int64
            px = batch[start:start + 1024].reshape(-1, self.channels)
            for ch in range(self.channels):
                self._hist[ch] += np.bincount(px[:, ch], minlength=256)
        self._min, self._max = np.minimum(self._min, batch.shape[1:3]), np.maximum(self._max, batch.shape[1:3])

    def _flush(self) -> None:
        if self._rows[0]:
            self.shards.append(write_shard(self.out / f"shard-{len(self.shards):05d}.parquet", *self._rows))
            self._rows = ([], [], [])

    def finish(self, classes: list[str], source: str) -> Manifest:
        self._flush()
        n = sum(s.rows for s in self.shards)
        if n == 0:
            raise DataError(f"{source}: no images to convert")
        v = np.arange(256, dtype=np.float64) / 255
        count = self._hist.sum(1)
        mean = self._hist @ v / count
        std = np.sqrt(np.maximum(self._hist @ (v * v) / count - mean * mean, 0.0))
        m = Manifest(self.shards, n, len(classes), self.image_format, self.channels,
                     self._min.tolist() if (self._min == self._max).all() else None, self._min.tolist(),
                     self._max.tolist(), [round(float(x), 6) for x in mean], [round(float(x), 6) for x in std], source)
        mapping = {c: i for i, c in enumerate(classes)}
        write_atomic(self.out / CLASSES, (json.dumps(mapping, indent=1, ensure_ascii=False) + "\n").encode())
        write_atomic(self.out / MANIFEST, (m.to_json() + "\n").encode())
        keep = {s.file for s in self.shards}
        for stale in self.out.glob("shard-*.parquet"):  # left over from an earlier, larger conversion
            if stale.name not in keep:
                stale.unlink()
        return m


def scan_image_folder(src: Path, classes: list[str] | None = None) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names (sorted sub-folders, or the given mapping) and (file, label) pairs, sorted."""
    if not src.is_dir():
        raise DataError(f"{src}: not a folder (expected one sub-folder per class)")
    found = sorted(p.name for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = classes or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{src}: classes {', '.join(unknown)} are not among the training classes")
    files = [(p, label) for label, c in enumerate(classes) if (src / c).is_dir()
             for p in sorted((src / c).rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise DataError(f"{src}: no {'/'.join(IMAGE_SUFFIXES)} files in class sub-folders")
    return classes, files


def convert_image_folder(src: str | Path, out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE,
                         image_format: str = "png", *, resize: int | None = None, jpeg_quality: int = 95,
                         seed: int | None = 0, classes: list[str] | None = None, overwrite: bool = False) -> Manifest:
    """Convert an image folder; ``resize=N`` scales the shorter side to N and centre-crops N x N."""
    src = Path(src).expanduser()
    if resize is not None and image_format == "keep":
        raise DataError("--resize needs --format png or jpeg (keep stores the original bytes)")
    classes, files = scan_image_folder(src, classes)
    modes = set()
    for path, _ in files:  # pass 1: headers only
        try:
            with Image.open(path) as im:
                modes.add(im.mode)
        except DECODE_ERRORS as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from None
    channels = 1 if modes <= set(GREY_MODES) else 3
    mode = "L" if channels == 1 else "RGB"
    order = np.random.default_rng(seed).permutation(len(files)) if seed is not None else np.arange(len(files))
    writer = ShardWriter(out, shard_size, image_format, channels, overwrite)
    size = (resize, resize) if resize else None
    for i in order:
        path, label = files[i]
        data = path.read_bytes()
        try:
            pixels = decode_image(data, mode, size)
        except DECODE_ERRORS as exc:
            raise DataError(f"{path}: cannot decode ({exc}); remove or fix the file") from None
        stored = data if image_format == "keep" else encode_image(pixels, image_format, jpeg_quality)
        writer.add(stored, label, path.relative_to(src).as_posix(), pixels)
    return writer.finish(classes, str(src))


def convert_builtin(name: str, split: str, out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE,
                    image_format: str = "png", overwrite: bool = False) -> Manifest:
    """A split of a built-in data set (``fashion_mnist``, ``digits``) as PNG (or JPEG) shards, in order."""
    from cjepa.config import DataConfig
    from cjepa.data.datasets import load_split

    if name not in BUILTIN_CLASSES:
        raise DataError(f"builtin:{name}: unknown; built-in data sets are {', '.join(BUILTIN_CLASSES)}")
    data = load_split(DataConfig(dataset=name), split)
    images, labels = data.images[:, 0].numpy(), data.labels.tolist()
    fmt = "png" if image_format == "keep" else image_format  # the arrays have no original encoding
    writer = ShardWriter(out, shard_size, fmt, 1, overwrite)
    writer.add_stats(images)
    for i, (img, label) in enumerate(zip(images, labels)):
        writer.add(encode_image(img, fmt), label, f"{name}/{split}/{i:05d}.{fmt}")
    return writer.finish(list(BUILTIN_CLASSES[name]), f"builtin:{name}/{split}")


def convert(src: str, out: str | Path, shard_size: int = DEFAULT_SHARD_SIZE, image_format: str = "png", *,
            resize: int | None = None, jpeg_quality: int = 95, seed: int | None = 0,
            overwrite: bool = False) -> dict[str, Manifest]:
    """The CLI's entry. ``builtin:NAME``, or a folder holding ``train/`` and ``test/`` (each with
    class sub-folders): both splits into ``out/train`` and ``out/test``, the layout ``data.root``
    expects. Any other folder: one split into ``out``. Returns {split ("" for one): manifest}."""
    out = Path(out).expanduser()
    if src.startswith("builtin:"):
        name = src.split(":", 1)[1]
        return {s: convert_builtin(name, s, out / s, shard_size, image_format, overwrite) for s in ("train", "test")}
    root = Path(src).expanduser()
    kw = dict(resize=resize, jpeg_quality=jpeg_quality, seed=seed, overwrite=overwrite)
    if not ((root / "train").is_dir() and (root / "test").is_dir()):
        return {"": convert_image_folder(root, out, shard_size, image_format, **kw)}
    train = convert_image_folder(root / "train", out / "train", shard_size, image_format, **kw)
    classes = list(json.loads((out / "train" / CLASSES).read_text()))  # the test split uses the same labels
    return {"train": train,
            "test": convert_image_folder(root / "test", out / "test", shard_size, image_format, classes=classes, **kw)}
