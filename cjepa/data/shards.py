"""Parquet image shards: the random-access reader :class:`ParquetImages` (format and writer: ``convert.py``).

A split is a directory of ``shard-NNNNN.parquet`` (columns ``image``: encoded PNG/JPEG, ``label``:
int32, ``path``: source path), ``classes.json`` and ``manifest.json`` (rows, bytes, SHA-256 per
shard; total; size; channels; pixel mean/std), written last by ``cjepa data convert``.

Why not Ray Data (``read_parquet`` + ``iter_torch_batches``): batches are pure functions of (seed,
global step) (``StepBatchSampler``: an exact global permutation per epoch, rank r's slice, resume at
step k on the exact sample); Ray Data's shuffles depend on block layout and execution and cannot
restart at a sample, and cjepa/data stays free of Ray. So ``ParquetImages`` has the duck type of
``LabeledImages`` (``images[idx]``, ``labels``, ``num_classes``, ``name``): the sampler,
``StepBatchDataset`` and the evaluator use it unchanged; ``images[idx]`` decodes, in DataLoader workers.

Access: shards' *encoded* image columns are cached whole (LRU, byte budget), images decoded per
batch. Not lazy row-group reads: a global permutation makes a batch touch ~min(B, shards) shards and
hardly ever two rows of one row group, so row-group reads would fetch rows_per_group x the bytes used
(a GET per image on S3). Encoded, not decoded: several times smaller, and decoding is the workers'
job. A split within the budget (2 GiB; Fashion-MNIST is ~30 MB) is read and verified at open, and
workers forked later share it copy-on-write; larger splits are read per shard on demand (verified
on first read) and re-read under a global shuffle, so size the budget to the encoded data set.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import torch
from torch import Tensor

from cjepa.data.shard_format import CLASSES, DECODE_ERRORS, MANIFEST, Manifest, ShardInfo, decode_image
from cjepa.errors import DataError

log = logging.getLogger(__name__)
DEFAULT_CACHE_BYTES = 2 << 30


class _ShardCache:
    """LRU of shards' encoded image columns within a byte budget (always keeps the newest)."""

    def __init__(self, budget: int) -> None:
        self.budget, self.nbytes, self.items = budget, 0, OrderedDict()

    def get(self, i: int) -> pa.BinaryArray | None:
        if i in self.items:
            self.items.move_to_end(i)
        return self.items.get(i)

    def put(self, i: int, col: pa.BinaryArray) -> None:
        self.items[i] = col
        self.nbytes += col.nbytes
        while len(self.items) > 1 and self.nbytes > self.budget:
            self.nbytes -= self.items.popitem(last=False)[1].nbytes


class ParquetImages:
    """A split of Parquet image shards: a local path or a pyarrow URI (``s3://``, ``gs://``, ``file://``).

    ``images`` is the object itself: ``data.images[idx]`` decodes (n, C, H, W) uint8.
    ``skip_corrupt``: an undecodable image is replaced by the next row (wrapping) *of the same
    class* that decodes (deterministic, labels stay right), logged and counted in
    :attr:`corrupt_count`; without it, a :class:`DataError` names shard and row.
    ``size=(H, W)``: decode every image to this size (needed when the manifest's sizes differ).
    ``preload``: read all shards at open (default: when they fit ``cache_bytes``).
    """

    def __init__(self, root: str | Path, *, skip_corrupt: bool = False, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 size: tuple[int, int] | None = None, preload: bool | None = None) -> None:
        self.root, self.skip_corrupt, self.cache_bytes = str(root), skip_corrupt, cache_bytes
        self.fs, self._dir = resolve_fs(self.root)
        self.manifest = m = Manifest.from_json(self._read_text(MANIFEST), self.root)
        self.classes: dict[str, int] = json.loads(self._read_text(CLASSES))
        if size is None and m.image_size is None:
            raise DataError(f"{self.root}: images differ in size ({m.min_size} to {m.max_size}); re-convert "
                            "with `cjepa data convert --resize N --center-crop`, or pass size=(H, W); training "
                            "reads any sizes through the shard stream (cjepa/data/stream.py)")
        self.size: tuple[int, int] = tuple(size or m.image_size)  # type: ignore[assignment]
        self._resize = size is not None and list(size) != m.image_size
        self.channels, self.mode = m.channels, ("L" if m.channels == 1 else "RGB")
        self.num_classes, self.name = m.num_classes, "parquet"
        self._check_files()
        self._offsets = np.cumsum([0] + [s.rows for s in m.shards])
        self._cache = _ShardCache(cache_bytes)
        self._corrupt: dict[int, int] = {}  # global row -> the row that replaces it
        if preload is None:
            preload = sum(s.bytes for s in m.shards) <= cache_bytes
        labels = [self._read_labels(i, preload) for i in range(len(m.shards))]
        self._all_labels = np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
        self._rows: np.ndarray | None = None  # a subset's global rows
        self.labels = torch.from_numpy(self._all_labels.copy())
        self.images = self

    # ------------------------------------------------------------------ files

    def _path(self, name: str) -> str:
        return f"{self._dir.rstrip('/')}/{name}"

    def _read_text(self, name: str) -> str:
        try:
            with self.fs.open_input_stream(self._path(name)) as f:
                return f.read().decode()
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{self.root}: cannot read {name} ({exc}); not written by `cjepa data convert`?") from None

    def _check_files(self) -> None:
        infos = self.fs.get_file_info([self._path(s.file) for s in self.manifest.shards])
        for s, info in zip(self.manifest.shards, infos):
            if info.type != pafs.FileType.File:
                raise DataError(f"{self.root}: shard {s.file} (listed in {MANIFEST}) is missing")
            if info.size != s.bytes:
                raise DataError(f"{self.root}: shard {s.file} has {info.size} bytes, {MANIFEST} says {s.bytes}")

    def _read_shard(self, i: int, columns: list[str]) -> pa.Table:
        """The whole shard file, SHA-256 checked against the manifest, then parsed."""
        return read_verified_shard(self.fs, self._path(self.manifest.shards[i].file), self.manifest.shards[i],
                                   self.root, columns)

    def _read_labels(self, i: int, preload: bool) -> np.ndarray:
        if preload:
            table = self._read_shard(i, ["image", "label"])
            self._cache.put(i, table.column("image").combine_chunks())
            return table.column("label").to_numpy()
        s = self.manifest.shards[i]
        try:  # the footer and the label column only: cheap even on an object store
            return pq.read_table(self._path(s.file), columns=["label"], filesystem=self.fs)["label"].to_numpy()
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{self.root}: shard {s.file} is not readable Parquet ({exc})") from None

    def _shard(self, i: int) -> pa.BinaryArray:
        col = self._cache.get(i)
        if col is None:
            col = self._read_shard(i, ["image"]).column("image").combine_chunks()
            self._cache.put(i, col)
        return col

    def verify(self) -> None:
        """Check every shard's checksum and row count now (otherwise each is checked when first read)."""
        for i in range(len(self.manifest.shards)):
            self._read_shard(i, ["label"])

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self._all_labels) if self._rows is None else len(self._rows)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self), self.channels, *self.size)

    def __getitem__(self, key: Any) -> Tensor:
        """Decoded (n, C, H, W) uint8 for a slice or an index array/tensor; (C, H, W) for an int."""
        if isinstance(key, slice):
            return self.decode(np.arange(*key.indices(len(self))))
        if isinstance(key, int | np.integer):
            return self.decode(np.array([int(key)]))[0]
        return self.decode(np.asarray(key, dtype=np.int64).reshape(-1))

    def _global(self, idx: np.ndarray) -> np.ndarray:
        n = len(self)
        if len(idx) and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"image index out of range for {n} images")
        idx = idx % max(n, 1)
        return idx if self._rows is None else self._rows[idx]

    def locate(self, row: int) -> tuple[int, int]:
        """Global row -> (shard number, row within the shard)."""
        s = int(np.searchsorted(self._offsets, row, side="right")) - 1
        return s, int(row - self._offsets[s])

    def read_bytes(self, index: int) -> bytes:
        """The stored (encoded) bytes of image ``index``."""
        s, r = self.locate(int(self._global(np.array([index]))[0]))
        return self._shard(s)[r].as_py()

    def subset(self, indices: Tensor | np.ndarray) -> ParquetImages:
        """A view of some images sharing the shard cache (``data.train_subset``)."""
        out = copy.copy(self)
        out._cache = self._cache  # copy.copy goes through __getstate__, which drops it
        out._rows = self._global(np.asarray(indices, dtype=np.int64).reshape(-1))
        out.labels = torch.from_numpy(self._all_labels[out._rows])
        out.images = out
        return out

    @property
    def corrupt_count(self) -> int:
        """Distinct corrupt images replaced so far in this process (``skip_corrupt=True``)."""
        return len(self._corrupt)

    def decode(self, idx: np.ndarray) -> Tensor:
        """(n, C, H, W) uint8 images at this view's indices ``idx``, grouped by shard."""
        rows = self._global(idx)
        h, w = self.size
        out = np.empty((len(rows), h, w) if self.channels == 1 else (len(rows), h, w, 3), np.uint8)
        for j in np.argsort(rows, kind="stable"):
            out[j] = self._decode_row(int(rows[j]))
        t = torch.from_numpy(out)
        return t.unsqueeze(1) if self.channels == 1 else t.permute(0, 3, 1, 2).contiguous()

    def _try_decode(self, row: int) -> np.ndarray:
        s, r = self.locate(row)
        arr = decode_image(self._shard(s)[r].as_py(), self.mode, self.size if self._resize else None)
        if arr.shape[:2] != self.size:
            raise ValueError(f"size {arr.shape[1]}x{arr.shape[0]}, {MANIFEST} says {self.size[1]}x{self.size[0]}")
        return arr

    def _decode_row(self, row: int) -> np.ndarray:
        if row in self._corrupt:
            return self._try_decode(self._corrupt[row])
        try:
            return self._try_decode(row)
        except DECODE_ERRORS as exc:
            s, r = self.locate(row)
            where = f"{self.root}: shard {self.manifest.shards[s].file} row {r}"
            if not self.skip_corrupt:
                raise DataError(f"{where}: cannot decode the image ({exc}); data.skip_corrupt=true "
                                "replaces such images") from None
            n, label = len(self._all_labels), self._all_labels[row]
            for cand in ((row + k) % n for k in range(1, n)):
                if self._all_labels[cand] != label or cand in self._corrupt:
                    continue
                try:
                    arr = self._try_decode(cand)
                except DECODE_ERRORS:
                    continue
                self._corrupt[row] = cand
                log.warning("%s: corrupt image (%s) replaced by row %d of the same class; %d corrupt so far",
                            where, exc, cand, len(self._corrupt))
                return arr
            raise DataError(f"{where}: corrupt, and no other image of class {label} decodes") from None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled copies (spawned workers, Ray) re-read shards on demand instead of carrying them."""
        return {**self.__dict__, "_cache": _ShardCache(self.cache_bytes)}


def read_verified_shard(fs: pafs.FileSystem, path: str, s: ShardInfo, root: str, columns: list[str]) -> pa.Table:
    """One shard read whole (one request, also on an object store), its SHA-256 and row count
    checked against the manifest, then parsed: damage is named, never decoded as images."""
    try:
        with fs.open_input_stream(path) as f:
            data = f.read()
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{root}: cannot read shard {s.file} ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != s.sha256:
        raise DataError(f"{root}: shard {s.file} is corrupt: its sha256 is {digest[:12]}..., "
                        f"{MANIFEST} says {s.sha256[:12]}... (re-run `cjepa data convert`)")
    try:
        table = pq.read_table(pa.BufferReader(data), columns=columns)
    except pa.ArrowException as exc:
        raise DataError(f"{root}: shard {s.file} is not readable Parquet ({exc})") from None
    if table.num_rows != s.rows:
        raise DataError(f"{root}: shard {s.file} has {table.num_rows} rows, {MANIFEST} says {s.rows}")
    return table


def resolve_fs(root: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in root:
        return pafs.LocalFileSystem(), str(Path(root).expanduser().resolve())
    try:
        return pafs.FileSystem.from_uri(root)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{root}: pyarrow cannot open this URI ({exc})") from None


def split_root(root: str, split: str) -> str:
    """``data.root`` + ``/train`` or ``/test`` (URIs keep their scheme). The test split is
    ``test/``, or ``val/`` where there is no ``test/`` (ImageNet's layout, as converted: its official
    val images are the test split, scored once; the validation split that runs select on is carved
    from ``train/``, :mod:`cjepa.data.holdout`)."""
    if not root:
        raise DataError("data.dataset=parquet needs data.root=<dir or URI with train/ and test/ (or val/) shard "
                        "directories>; make one with `cjepa data convert SRC OUT`")
    join = (lambda name: f"{root.rstrip('/')}/{name}") if "://" in root else \
        (lambda name: str(Path(root).expanduser() / name))
    if split != "test":
        return join(split)
    fs, base = resolve_fs(root)
    try:
        infos = fs.get_file_info([f"{base.rstrip('/')}/test/{MANIFEST}", f"{base.rstrip('/')}/val/{MANIFEST}"])
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"data.root={root}: cannot be reached ({exc}); expected a folder or URI holding "
                        "train/ and test/ (or val/) shard directories") from None
    has_test, has_val = (info.type == pafs.FileType.File for info in infos)
    return join("val") if has_val and not has_test else join("test")
