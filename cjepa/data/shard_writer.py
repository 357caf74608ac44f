"""Writing Parquet image shards: atomic files, one shard, pixel statistics, and :class:`ShardWriter`
(the in-order writer of the built-in data sets). Image folders go through ``convert_shards.py``,
which writes one whole shard per worker with :func:`write_shard`.

Kept apart from ``shard_format.py`` (which the reader imports) so the reader carries no writer code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from cjepa.data.shard_format import CLASSES, MANIFEST, SIZE_COLUMNS, Manifest, ShardInfo
from cjepa.errors import DataError

FORMATS = ("png", "jpeg", "keep")
ROW_GROUP = 1024


def _fsync_replace(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync, ``os.replace``: readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    _fsync_replace(tmp, path)


def write_json(path: Path, obj: object) -> None:
    write_atomic(path, (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode())


def write_shard(path: Path, images: Sequence[bytes], labels: Sequence[int], paths: Sequence[str],
                sizes: Sequence[tuple[int, int]] | None = None, row_group_size: int = ROW_GROUP) -> ShardInfo:
    """One shard, atomically (temporary name, fsync, ``os.replace``). Image bytes stay
    uncompressed: PNG/JPEG do not compress further. ``sizes`` ((H, W) per row) adds the ``height``
    and ``width`` columns, so a reader can plan crops without decoding."""
    columns = {"image": pa.array(images, pa.binary()), "label": pa.array(labels, pa.int32()),
               "path": pa.array(paths, pa.string())}
    if sizes is not None:
        hw = np.asarray(sizes, np.int32).reshape(-1, 2)
        columns |= {name: pa.array(hw[:, k], pa.int32()) for k, name in enumerate(SIZE_COLUMNS)}
    compression = {name: "NONE" if name == "image" else "ZSTD" for name in columns}
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.table(columns), tmp, row_group_size=row_group_size, use_dictionary=["path"],
                   compression=compression)
    data = tmp.read_bytes()
    info = ShardInfo(path.name, len(images), len(data), hashlib.sha256(data).hexdigest())
    _fsync_replace(tmp, path)
    return info


def encode_image(arr: np.ndarray | Image.Image, image_format: str, jpeg_quality: int = 95) -> bytes:
    """(H, W) or (H, W, 3) uint8 (or an "L"/"RGB" image) -> PNG (lossless) or JPEG bytes."""
    im = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    buf = io.BytesIO()
    if image_format == "jpeg":
        im.save(buf, format="JPEG", quality=jpeg_quality)
    else:
        im.save(buf, format="PNG")
    return buf.getvalue()


def pixel_histogram(im: Image.Image) -> np.ndarray:
    """(3, 256) int64 counts of an "L" or "RGB" image (PIL's C histogram: ~20x numpy's bincount). A
    grey image counts in all three channels (it decodes to R = G = B), so grey and colour images of
    one split add up."""
    hist = np.asarray(im.histogram(), np.int64).reshape(-1, 256)
    return np.repeat(hist, 3, axis=0) if len(hist) == 1 else hist


def mean_std(hist: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of pixels / 255 from exact (C, 256) histograms."""
    v = np.arange(256, dtype=np.float64) / 255
    count = np.maximum(hist.sum(1), 1)
    mean = hist @ v / count
    std = np.sqrt(np.maximum(hist @ (v * v) / count - mean * mean, 0.0))
    return [round(float(x), 6) for x in mean], [round(float(x), 6) for x in std]


def existing_outputs(out: Path) -> list[str]:
    """Names of shards, manifest or class list already in ``out`` (what --overwrite would replace)."""
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir() if p.name in (MANIFEST, CLASSES) or p.name.startswith("shard-"))


def refuse_existing(out: Path) -> None:
    old = existing_outputs(out)
    if old:
        raise DataError(f"{out} already holds shards ({', '.join(old[:3])}, ...); pass --overwrite to replace them")


def finish_split(out: Path, manifest: Manifest, classes: Sequence[str]) -> None:
    """Class list, then manifest (last: it marks the split complete), then stale shards removed."""
    write_json(out / CLASSES, {c: i for i, c in enumerate(classes)})
    write_atomic(out / MANIFEST, (manifest.to_json() + "\n").encode())
    keep = {s.file for s in manifest.shards}
    for stale in out.glob("shard-*.parquet"):  # left over from an earlier, larger conversion
        if stale.name not in keep:
            stale.unlink()


class ShardWriter:
    """Buffers rows in order, writes ``shard-NNNNN.parquet`` every ``shard_size`` rows, then the manifest."""

    def __init__(self, out: str | Path, shard_size: int, image_format: str, channels: int,
                 overwrite: bool = False) -> None:
        if shard_size < 1:
            raise DataError(f"--shard-size must be >= 1, got {shard_size}")
        if image_format not in FORMATS:
            raise DataError(f"--format must be one of {', '.join(FORMATS)}, got {image_format!r}")
        self.out, self.shard_size, self.image_format, self.channels = Path(out), shard_size, image_format, channels
        self.out.mkdir(parents=True, exist_ok=True)
        if not overwrite:
            refuse_existing(self.out)
        (self.out / MANIFEST).unlink(missing_ok=True)  # first: until the new one lands, the dir is unfinished
        self.shards: list[ShardInfo] = []
        self._rows: tuple[list[bytes], list[int], list[str], list[tuple[int, int]]] = ([], [], [], [])
        self._hist = np.zeros((channels, 256), np.int64)  # exact pixel histograms -> mean/std
        self._min, self._max = np.array([1 << 30, 1 << 30]), np.array([0, 0])

    def add(self, encoded: bytes, label: int, path: str, pixels: np.ndarray | None = None,
            size: tuple[int, int] | None = None) -> None:
        """One image: its stored bytes, its (H, W) and, unless given to :meth:`add_stats` already,
        its decoded (H, W[, 3]) uint8 pixels (for the manifest's mean/std and sizes)."""
        if pixels is not None:
            self.add_stats(pixels[None])
            size = size or pixels.shape[:2]
        for buf, value in zip(self._rows, (encoded, label, path, tuple(size or (0, 0)))):
            buf.append(value)
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
            images, labels, paths, sizes = self._rows
            self.shards.append(write_shard(self.out / f"shard-{len(self.shards):05d}.parquet", images, labels,
                                           paths, sizes))
            self._rows = ([], [], [], [])

    def finish(self, classes: list[str], source: str) -> Manifest:
        self._flush()
        n = sum(s.rows for s in self.shards)
        if n == 0:
            raise DataError(f"{source}: no images to convert")
        mean, std = mean_std(self._hist)
        m = Manifest(self.shards, n, len(classes), self.image_format, self.channels,
                     self._min.tolist() if (self._min == self._max).all() else None, self._min.tolist(),
                     self._max.tolist(), mean, std, source, extra={"classes": list(classes)})
        finish_split(self.out, m, classes)
        return m
