"""The datasets cjepa trains and evaluates on, as whole in-memory uint8 tensors.

Both sets are tiny (Fashion-MNIST is 47 MB decoded), so a split is one ``(N, 1, H, W)`` uint8
tensor: indexing a batch is a single gather, DataLoader workers share it copy-on-write, and the
augmentations run batched on it (see ``transforms.py``) instead of per PIL image.

Fashion-MNIST lookup order: ``data.root`` if set (an error if it lacks the files), then the
Debian package ``dataset-fashion-mnist`` (:data:`DEBIAN_DIR`), then ``data.cache_dir/fashion-mnist``,
then, only with ``data.download=true``, a checksummed download into that cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from cjepa.config import DataConfig
from cjepa.data import holdout
from cjepa.data.holdout import SPLITS
from cjepa.data.idx import IMAGES_MAGIC, LABELS_MAGIC, read_idx
from cjepa.errors import DataError

if TYPE_CHECKING:
    from cjepa.data.shards import ParquetImages

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
# Zalando's canonical host first, then the GitHub copy of the same files.
FASHION_URLS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)
# MD5s as published in Zalando's README (also torchvision's). The Debian package recompresses
# the files, so its .gz bytes differ; checksums are only checked on what we download.
FASHION_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
_PREFIX = {"train": "train", "test": "t10k"}
DIGITS_TRAIN = 1500  # of 1797; the remaining 297 are the test split

# Per-channel (mean, std) of pixels / 255 over the training split.
_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    # Computed once: load_split(digits, "train").images.double() / 255 -> mean(), std()
    # (population std) = 0.30510, 0.37572.
    "digits": ((0.3051,), (0.3757,)),
    # Any data set, so a name-keyed constant (the trainer and evaluator look stats up by name): the
    # ImageNet statistics averaged over RGB, one value that serves grey and RGB alike.
    # (manifest.json also records the split's own mean/std, for reference.)
    "parquet": ((0.449,), (0.226,)),
}


@dataclass
class LabeledImages:
    """One split of a dataset, whole, in memory."""

    images: Tensor  # (N, 1, H, W) uint8
    labels: Tensor  # (N,) int64
    num_classes: int
    name: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def dataset_stats(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation constants ``(mean, std)`` (one value per channel) of a dataset."""
    if name not in _STATS:
        raise DataError(f"no normalisation statistics for dataset {name!r}; known: {', '.join(_STATS)}")
    return _STATS[name]


def _fashion_files(split: str) -> tuple[str, str]:
    p = _PREFIX[split]
    return f"{p}-images-idx3-ubyte.gz", f"{p}-labels-idx1-ubyte.gz"


def _has_all(d: Path) -> bool:
    return all((d / f).is_file() for f in FASHION_MD5)


def fashion_mnist_dir(cfg: DataConfig) -> Path:
    """The folder holding the four Fashion-MNIST files (downloading them if allowed)."""
    if cfg.root:
        root = Path(cfg.root).expanduser()
        if not _has_all(root):
            missing = [f for f in FASHION_MD5 if not (root / f).is_file()]
            raise DataError(f"data.root={cfg.root}: missing Fashion-MNIST files {', '.join(missing)}")
        return root
    for cand in (Path(DEBIAN_DIR), Path(cfg.cache_dir).expanduser() / "fashion-mnist"):
        if _has_all(cand):
            return cand
    cache = Path(cfg.cache_dir).expanduser() / "fashion-mnist"
    if cfg.download:
        download_fashion_mnist(cache)
        return cache
    raise DataError(
        f"Fashion-MNIST not found in {DEBIAN_DIR} or {cache}. Get it with "
        "`apt-get install dataset-fashion-mnist`, or point data.root=DIR at a folder with "
        f"{', '.join(FASHION_MD5)}, or set data.download=true to fetch it into data.cache_dir")


def download_fashion_mnist(dest: Path, urls: tuple[str, ...] | None = None) -> None:
    """Fetch the four files into ``dest``, MD5-verified, each moved into place atomically.

    A file is written to a temporary name in ``dest`` and renamed only after its checksum
    matches, so an interrupted download never leaves a plausible-looking partial file.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for fname, md5 in FASHION_MD5.items():
        if (dest / fname).is_file():
            continue
        errors = []
        for base in urls or FASHION_URLS:
            try:
                _fetch(base + fname, dest / fname, md5)
                break
            except (OSError, DataError) as exc:
                errors.append(f"{base}: {exc}")
        else:
            raise DataError(f"could not download {fname}: " + "; ".join(errors))


def _fetch(url: str, target: Path, md5: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != md5:
            raise DataError(f"checksum mismatch (md5 {digest.hexdigest()}, expected {md5})")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _load_fashion(cfg: DataConfig, split: str) -> LabeledImages:
    folder = fashion_mnist_dir(cfg)
    img_file, lab_file = _fashion_files(split)
    images = read_idx(folder / img_file, IMAGES_MAGIC)
    labels = read_idx(folder / lab_file, LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{folder / img_file}: {images.shape[0]} images but {lab_file} has "
                        f"{labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{folder / lab_file}: label {int(labels.max())} outside 0..9")
    return LabeledImages(
        images=torch.from_numpy(images.copy()).unsqueeze(1),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=10,
        name="fashion_mnist",
    )


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 -> 0..255
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0)).numpy()
    return images[perm], d.target[perm].astype(np.int64)


def _load_digits(split: str) -> LabeledImages:
    images, labels = _digits_arrays()
    sl = slice(0, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
    return LabeledImages(
        images=torch.from_numpy(images[sl].copy()).unsqueeze(1),
        labels=torch.from_numpy(labels[sl].copy()),
        num_classes=10,
        name="digits",
    )


def load_raw_split(cfg: DataConfig, split: str) -> LabeledImages | ParquetImages:
    """A whole stored split (``train`` or ``test``) of ``cfg.dataset``, before the validation split
    is carved out: what a converter copies and what the holdout indexes into."""
    if split not in ("train", "test"):
        raise DataError(f"unknown stored split {split!r}; expected train or test")
    if cfg.dataset == "fashion_mnist":
        return _load_fashion(cfg, split)
    if cfg.dataset == "digits":
        return _load_digits(split)
    if cfg.dataset == "parquet":  # decoded lazily, batch by batch (see shards.py)
        from cjepa.data.shards import ParquetImages, split_root

        return ParquetImages(split_root(cfg.root, split), skip_corrupt=cfg.skip_corrupt)
    raise DataError(f"data.dataset: unknown dataset {cfg.dataset!r}; expected fashion_mnist, digits or parquet")


def load_split(cfg: DataConfig, split: str) -> LabeledImages | ParquetImages:
    """``train`` (the images a run trains on), ``val`` (held out of the stored training split,
    never trained on) or ``test``; which images: :mod:`cjepa.data.holdout`.

    ``parquet`` gives a :class:`~cjepa.data.shards.ParquetImages` (same duck type, lazy images)
    over ``data.root/<split>``. The parts are the same images in every run and on every rank,
    whatever ``run.seed`` is (seeds then vary only the training).
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split == "test":
        return load_raw_split(cfg, "test")
    data = load_raw_split(cfg, "train")
    if not isinstance(data, LabeledImages):
        return data.subset(holdout.shard_rows(cfg, len(data), split))
    keep = holdout.memory_indices(cfg, len(data), split)
    if split == "train" and len(keep) == len(data):
        return data
    return LabeledImages(data.images[keep], data.labels[keep], data.num_classes, data.name)
