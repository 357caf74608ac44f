"""The streaming reader of Parquet image shards: each shard read once per epoch, step-keyed batches.

``ShardSplit`` opens a split (manifest, classes, filesystem: local paths and pyarrow URIs such as
``s3://`` / ``gs://`` through one layer); ``StreamSampler`` yields ``(step, rows)`` keys from the
shard-aware order of ``shard_order.py``; ``ShardStream`` turns a key into a training batch
(decode + crop per image, ``decode.py``; masks and the rank's slice as ``StepBatchDataset``).

Memory and disk are bounded by settings: each process keeps at most ``2 * (data.shuffle_window
+ 1)`` shards' encoded image columns (``ShardWindowCache``), and nothing is written to local disk
(an object store is read directly, one request per shard). ``reads`` counts shard reads, so a test
can check that an epoch reads each byte about once.

Why not a library's loader (measured in docs/architecture.md, "Data at scale"): MosaicML
Streaming, LitData, WebDataset and Ray Data each own the sample order; none keys a batch on the
global step, which is what makes the house's resume exact and keeps crops and masks a function of
(seed, step). The I/O is pyarrow's (Parquet, filesystems), the decode Pillow's libjpeg-turbo.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from cjepa.data import photometric, shard_order
from cjepa.data.decode import crop_boxes, crop_resize, eval_crop, open_image
from cjepa.data.decode_cuda import decode_views, encoded_tensors
from cjepa.data.loader import rank_masks
from cjepa.data.seeds import derive_seed
from cjepa.data.shard_format import CLASSES, DECODE_ERRORS, MANIFEST, Manifest
from cjepa.data.shards import read_verified_shard, resolve_fs
from cjepa.data.transforms import Stat, normalize
from cjepa.errors import DataError

log = logging.getLogger(__name__)
_AUG_TAG = 0x5EED_A097


class ShardSplit:
    """One split: its manifest, classes and shards, optionally only the rows ``[first, first + limit)``
    (``limit = 0``: to the end). Training reads the rows after the validation split (``first =
    data.val_samples``, ``limit = data.train_subset``, :mod:`cjepa.data.holdout`); rows were shuffled
    at import, so a contiguous range is a class-mixed sample."""

    def __init__(self, root: str, limit: int = 0, first: int = 0) -> None:
        self.root = root
        self.fs, self._dir = resolve_fs(root)
        self.manifest = Manifest.from_json(self._read_text(MANIFEST), root)
        self.classes: dict[str, int] = json.loads(self._read_text(CLASSES))
        m = self.manifest
        if first + limit > m.total or first >= max(m.total, 1):
            raise DataError(f"data.train_subset={limit} after data.val_samples={first} exceeds the {m.total} "
                            f"images of {root}")
        self.offsets = np.concatenate([[0], np.cumsum([s.rows for s in m.shards])]).astype(np.int64)
        end = first + limit if limit else m.total
        lo, hi = np.clip(self.offsets[:-1], first, end), np.clip(self.offsets[1:], first, end)
        keep = hi > lo  # a shard's part inside the range: [lo, hi) in global rows
        self.shard_ranges = [(int(a), int(b)) for a, b in zip(lo[keep], hi[keep])]
        self.first, self.num_rows = first, end - first
        self.channels, self.mode = m.channels, ("L" if m.channels == 1 else "RGB")
        self.num_classes = m.num_classes
        self.reads = 0

    def _read_text(self, name: str) -> str:
        try:
            with self.fs.open_input_stream(f"{self._dir.rstrip('/')}/{name}") as f:
                return f.read().decode()
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{self.root}: cannot read {name} ({exc}); not written by `cjepa data convert`?") from None

    def locate(self, row: int) -> tuple[int, int]:
        """Global row -> (shard number, row within the shard)."""
        s = int(np.searchsorted(self.offsets, row, side="right")) - 1
        return s, int(row - self.offsets[s])

    def read(self, shard: int) -> tuple[pa.BinaryArray, np.ndarray]:
        """A shard's encoded images and labels, checksum-verified."""
        info = self.manifest.shards[shard]
        table = read_verified_shard(self.fs, f"{self._dir.rstrip('/')}/{info.file}", info, self.root,
                                    ["image", "label"])
        self.reads += 1
        return table.column("image").combine_chunks(), table.column("label").to_numpy().astype(np.int64)

    def stats(self) -> tuple[list[float], list[float]]:
        """Per-channel mean and std of pixels / 255 (computed at import, over this split)."""
        return list(self.manifest.mean), list(self.manifest.std)


class ShardWindowCache:
    """The shards a process is reading, at most ``capacity`` (LRU): the memory bound."""

    def __init__(self, split: ShardSplit, capacity: int) -> None:
        self.split, self.capacity = split, max(1, capacity)
        self.items: OrderedDict[int, tuple[pa.BinaryArray, np.ndarray]] = OrderedDict()

    def get(self, shard: int) -> tuple[pa.BinaryArray, np.ndarray]:
        if shard in self.items:
            self.items.move_to_end(shard)
        else:
            self.items[shard] = self.split.read(shard)
            while len(self.items) > self.capacity:
                self.items.popitem(last=False)
        return self.items[shard]

    def rows(self, rows: np.ndarray) -> tuple[list[bytes], np.ndarray]:
        """Encoded bytes and labels of global rows, in the order given."""
        out, labels = [], np.empty(len(rows), np.int64)
        for i, row in enumerate(rows):
            shard, r = self.split.locate(int(row))
            images, shard_labels = self.get(shard)
            out.append(images[r].as_py())
            labels[i] = shard_labels[r]
        return out, labels


class StreamSampler(Sampler):
    """``(global_step, rows)`` for steps ``[start_step, epochs * steps_per_epoch)``, this rank's
    share of each global batch (see ``shard_order``); ``lanes`` = the DataLoader's workers (>= 1)."""

    def __init__(self, split: ShardSplit, batch_size: int, seed: int, start_step: int = 0, epochs: int = 1,
                 rank: int = 0, world_size: int = 1, lanes: int = 1, window: int = 2) -> None:
        if batch_size % world_size:
            raise DataError(f"optim.batch_size={batch_size} (the global batch) must be divisible by "
                            f"the {world_size} workers")
        self.split, self.seed, self.rank, self.world_size = split, seed, rank, world_size
        self.lanes, self.window, self.local_batch = max(1, lanes), window, batch_size // world_size
        self.steps_per_epoch = shard_order.steps_per_epoch(split.num_rows, batch_size, world_size, self.lanes)
        if self.steps_per_epoch == 0:
            raise DataError(f"optim.batch_size={batch_size} is too large for the {split.num_rows} images of "
                            f"{split.root} split over {world_size} rank(s) x {self.lanes} loader worker(s)")
        self.start_step, self.end = start_step, epochs * self.steps_per_epoch
        self._epoch, self._lanes = -1, []

    def lane_order(self, epoch: int) -> list[np.ndarray]:
        if epoch != self._epoch:
            self._lanes = shard_order.lane_rows(self.split.shard_ranges, self.seed, epoch, self.world_size,
                                                self.lanes, self.window)
            self._epoch = epoch
        return self._lanes

    def indices(self, step: int) -> torch.Tensor:
        """This rank's rows at a global step."""
        epoch, k = divmod(step, self.steps_per_epoch)
        lane = self.lane_order(epoch)[self.rank * self.lanes + k % self.lanes]
        lo = (k // self.lanes) * self.local_batch
        return torch.from_numpy(lane[lo:lo + self.local_batch].copy())

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        for step in range(self.start_step, self.end):
            yield step, self.indices(step)

    def __len__(self) -> int:
        return max(0, self.end - self.start_step)


class ShardStream(Dataset):
    """Map-style dataset of whole training batches keyed by ``(global_step, rows)``.

    Crop boxes and flips come from a generator seeded by (seed, step, rank), drawn from the
    images' headers before any pixel is decoded; masks are drawn for the global batch and
    sliced to this rank, as in ``StepBatchDataset``. Images: (b, C, S, S) uint8 (C: the split's
    channels); :meth:`normalize` finishes them on the device (the trainer calls it).
    """

    def __init__(self, split: ShardSplit, img_size: int, crop_scale: tuple[float, float], mean: Stat, std: Stat,
                 in_chans: int, seed: int, mask_fn: Callable[[int, int], Any] | None, two_views: bool = False,
                 rank: int = 0, world_size: int = 1, hflip: float = 0.0, window: int = 2,
                 skip_corrupt: bool = False, decode: str = "workers", blur: tuple[float, float] = (0.0, 0.0),
                 solarize: tuple[float, float] = (0.0, 0.0)) -> None:
        if split.channels not in (1, in_chans):
            raise DataError(f"{split.root}: the images have {split.channels} channels but model.in_chans={in_chans}")
        self.split, self.img_size, self.crop_scale = split, img_size, tuple(crop_scale)
        self.mean, self.std, self.in_chans, self.seed = mean, std, in_chans, seed
        self.mask_fn, self.two_views, self.hflip = mask_fn, two_views, hflip
        self.photo = tuple(zip(blur, solarize))  # per view: (blur, solarize) probabilities
        self.rank, self.world_size, self.window, self.skip_corrupt = rank, world_size, window, skip_corrupt
        self.cache = ShardWindowCache(split, 2 * (window + 1))
        self.on_device = decode == "device"
        if self.on_device and split.manifest.image_format == "png":
            raise DataError(f"{split.root}: data.decode=device decodes JPEG (nvJPEG on a GPU) but these shards "
                            "hold PNG; re-convert with --format jpeg (or keep JPEG originals), or use "
                            "data.decode=workers")

    def __len__(self) -> int:
        return self.split.num_rows

    def sampler(self, batch_size: int, seed: int, start_step: int, epochs: int, lanes: int) -> StreamSampler:
        return StreamSampler(self.split, batch_size, seed, start_step, epochs, self.rank, self.world_size, lanes,
                             self.window)

    def normalize(self, images_u8: torch.Tensor, photo: torch.Tensor | None = None) -> torch.Tensor:
        """The last step, on whatever device the batch is on (the GPU in training): uint8 -> float,
        VICReg's blur / solarisation where drawn (``photo``), normalised with the split's
        statistics, grey repeated to ``in_chans``."""
        x = images_u8.to(torch.float32).div_(255.0)
        if photo is not None:
            x = photometric.apply(x, photo)
        return normalize(x, self.mean, self.std, self.in_chans)

    def finish_on_device(self, batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
        """What the trainer calls once the batch is on its device: decode there (``data.decode=device``),
        then normalise the uint8 views."""
        for key in ("images", "images2"):
            if f"{key}_jpeg" in batch:
                jpeg, boxes, flips = batch.pop(f"{key}_jpeg"), batch.pop(f"{key}_boxes"), batch.pop(f"{key}_flips")
                batch[key] = decode_views(jpeg, boxes, flips, self.img_size, self.split.channels, device)
            if key in batch:
                batch[key] = self.normalize(batch[key], batch.pop(f"{key}_photo", None))
        return batch

    def _draw(self, opened: list[Image.Image], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Crop boxes (from the headers) and flips of one view: the same draws on either decode path."""
        sizes = np.array([im.size for im in opened], np.int64).reshape(-1, 2)
        boxes = crop_boxes(sizes[:, 1], sizes[:, 0], self.crop_scale, rng)
        flips = rng.random(len(opened)) < self.hflip if self.hflip > 0 else np.zeros(len(opened), bool)
        return boxes, flips

    def _view(self, key: str, encoded: list[bytes], rows: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        opened = [open_image(b) for b in encoded]
        boxes, flips = self._draw(opened, rng)
        blur, solar = self.photo[1 if key == "images2" else 0]
        extra = ({f"{key}_photo": photometric.draw(len(opened), blur, solar, self.img_size, rng)}
                 if blur > 0 or solar > 0 else {})  # applied on the device, in finish_on_device
        if self.on_device:
            return {f"{key}_jpeg": encoded_tensors(encoded), f"{key}_boxes": torch.from_numpy(boxes),
                    f"{key}_flips": torch.from_numpy(flips), **extra}
        return {key: self._views(opened, boxes, flips, rows), **extra}

    def _views(self, opened: list[Image.Image], boxes: np.ndarray, flips: np.ndarray,
               rows: np.ndarray) -> torch.Tensor:
        """(b, C, S, S) uint8: 4x less to move between processes and to the device than float."""
        out = np.stack([self._crop(im, box, flip, row) for im, box, flip, row in zip(opened, boxes, flips, rows)])
        t = torch.from_numpy(out)  # RGB: NCHW in channels-last memory, as the patch-embedding conv takes it
        return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2)

    def _crop(self, im: Image.Image, box: np.ndarray, flip: bool, row: int) -> np.ndarray:
        try:
            top, left, h, w = (int(v) for v in box)
            return crop_resize(im, (left, top, left + w, top + h), self.img_size, self.split.mode, bool(flip))
        except DECODE_ERRORS as exc:
            shard, r = self.split.locate(int(row))
            where = f"{self.split.root}: shard {self.split.manifest.shards[shard].file} row {r}"
            if not self.skip_corrupt:
                raise DataError(f"{where}: cannot decode the image ({exc}); data.skip_corrupt=true "
                                "replaces such images") from None
            log.warning("%s: corrupt image (%s) replaced by a grey image", where, exc)
            shape = (self.img_size, self.img_size) + ((3,) if self.split.mode == "RGB" else ())
            return np.full(shape, 128, np.uint8)

    def __getitem__(self, key: tuple[int, torch.Tensor]) -> dict[str, Any]:
        step, idx = int(key[0]), key[1]
        rows = idx.numpy()
        encoded, labels = self.cache.rows(rows)
        rng = np.random.default_rng(derive_seed(self.seed, _AUG_TAG, step, self.rank))
        out: dict[str, Any] = {"step": step, **self._view("images", encoded, rows, rng)}
        if self.two_views:
            out.update(self._view("images2", encoded, rows, rng))
        out["labels"] = torch.from_numpy(labels)
        if self.mask_fn is not None:
            out["masks"] = rank_masks(self.mask_fn, len(rows), step, self.rank, self.world_size)
        return out


def eval_images(split: ShardSplit, count: int, img_size: int, crop_pct: float | None = None) -> tuple[torch.Tensor,
                                                                                                     torch.Tensor]:
    """The first ``count`` images of a split's range (from ``split.first``) as (n, C, S, S) uint8
    evaluation views, and their labels, read shard by shard in order. ``crop_pct=None``: images of
    one size are resized whole (as the in-memory sets), images of many sizes get ImageNet's centre
    crop (``decode.EVAL_CROP_PCT``)."""
    if crop_pct is None:
        crop_pct = 1.0 if split.manifest.image_size is not None else 0.875
    count = min(count, split.num_rows)
    cache = ShardWindowCache(split, 1)
    encoded, labels = cache.rows(split.first + np.arange(count))
    views = np.stack([eval_crop(b, img_size, split.mode, crop_pct) for b in encoded]) if count else \
        np.zeros((0, img_size, img_size), np.uint8)
    t = torch.from_numpy(views)
    return (t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()), torch.from_numpy(labels)
