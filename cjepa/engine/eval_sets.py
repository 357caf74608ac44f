"""The images an evaluation reads, and cache keys that cannot collide.

Three sets (which images: :mod:`cjepa.data.holdout`):

- the **bank**: the kNN bank and the linear probe's training set, ``eval.train_samples`` of the
  images the run trains on (in memory: the first of a seed-0 permutation of the training images;
  Parquet: the first rows after the validation split);
- the **validation** queries: the whole validation split, scored every ``eval.every`` epochs: the
  curves and every selection a study makes read these;
- the **test** queries: the first ``eval.test_samples`` of the test split, scored once at the end
  of a run (with ``data.val_samples = 0`` they are the per-epoch queries instead, as before).

Cached baselines (raw pixels, the random-initialised encoder) are keyed on a SHA-256 of the bank's
and the queries' image ids plus every setting that changes their number; a readable prefix names
the split and the sizes. Why: a key made of the sizes alone gave two subsets of equal size one
entry (the raw-pixel kNN of a 5000/2000 evaluation is 82.05 % from the 60k split, 81.50 % from a
20k subset).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from cjepa.config import Config
from cjepa.data import holdout
from cjepa.data.datasets import load_raw_split


@dataclass
class EvalImages:
    """Evaluation images (uint8, (n, C, S, S)), their labels and their ids in the stored split."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: np.ndarray
    split: str  # "bank" (training images), "val" or "test"


def query_split(cfg: Config) -> str:
    """Where the per-epoch evaluation (and so every selection) reads: ``val`` when there is one."""
    return "val" if cfg.data.val_samples > 0 else "test"


def eval_images(cfg: Config, which: str, lo: int = 0, hi: int | None = None) -> EvalImages:
    """Images ``[lo, hi)`` of the ``bank``, ``train`` (every image the run trains on: ``cjepa eval``'s
    whole-split bank), ``val`` or ``test`` set of ``cfg`` (module docstring). A slice lets workers
    each read their own part of a large set (:mod:`cjepa.distributed.eval_ray`)."""
    if cfg.data.dataset == "parquet":
        return _shard_images(cfg, which, lo, hi)
    d = cfg.data
    stored = load_raw_split(d, "test" if which == "test" else "train")
    ids = _memory_ids(cfg, which, len(stored))[lo:hi]
    return EvalImages(stored.images[ids], stored.labels[ids], ids.numpy(), which)


def set_size(cfg: Config, which: str) -> int:
    """How many images :func:`eval_images` gives for ``which`` (without reading them)."""
    if cfg.data.dataset == "parquet":
        return _shard_range(cfg, which)[1]
    from cjepa.config.validation import BUILTIN_TRAIN_IMAGES
    from cjepa.data.datasets import DIGITS_TRAIN

    total = {"fashion_mnist": (BUILTIN_TRAIN_IMAGES["fashion_mnist"], 10000),
             "digits": (DIGITS_TRAIN, 1797 - DIGITS_TRAIN)}[cfg.data.dataset]
    return len(_memory_ids(cfg, which, total[1] if which == "test" else total[0]))


def _memory_ids(cfg: Config, which: str, stored: int) -> torch.Tensor:
    d, ev = cfg.data, cfg.eval
    if which == "test":
        return torch.arange(min(ev.test_samples, stored))
    ids = holdout.memory_indices(d, stored, "val" if which == "val" else "train")
    if which == "bank":
        ids = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))[: ev.train_samples]]
    return ids


def _shard_range(cfg: Config, which: str) -> tuple[str, int, int]:
    """(stored split, first row, rows) of a Parquet evaluation set."""
    from cjepa.data.shards import split_root
    from cjepa.data.stream import ShardSplit

    d, ev = cfg.data, cfg.eval
    if which == "test":
        root = split_root(d.root, "test")
        return root, 0, min(ev.test_samples, ShardSplit(root).num_rows)
    root = split_root(d.root, "train")
    if which == "val":
        return root, 0, d.val_samples
    rows = ShardSplit(root, limit=d.train_subset, first=d.val_samples).num_rows
    return root, d.val_samples, rows if which == "train" else min(ev.train_samples, rows)


def _shard_images(cfg: Config, which: str, lo: int, hi: int | None) -> EvalImages:
    """Parquet: contiguous rows, read shard by shard (a permutation of a large split would read
    every shard for a few thousand images)."""
    from cjepa.data.stream import ShardSplit
    from cjepa.data.stream import eval_images as read_views

    root, first, n = _shard_range(cfg, which)
    hi = n if hi is None else min(hi, n)
    split = ShardSplit(root, limit=max(hi - lo, 1), first=first + lo)
    images, labels = read_views(split, hi - lo, cfg.model.img_size)
    return EvalImages(images, labels, split.first + np.arange(len(labels)), which)


def data_identity(cfg: Config) -> str:
    """What the stored images are: the built-in set's name, or the shards' checksums."""
    d = cfg.data
    if d.dataset != "parquet":
        return d.dataset
    from cjepa.data.shards import split_root
    from cjepa.data.stream import ShardSplit

    sums = [s.sha256 for name in ("train", "test") for s in ShardSplit(split_root(d.root, name)).manifest.shards]
    return "parquet:" + hashlib.sha256("".join(sums).encode()).hexdigest()[:16]


def cache_key(kind: str, cfg: Config, bank: EvalImages, query: EvalImages, identity: str,
              settings: dict[str, Any]) -> str:
    """``kind:split:bank<n>:<split><n>:<sha>``: the hash covers the data, both sets' ids, the image
    size and normalisation, and ``settings`` (the probe's, the encoder's)."""
    from cjepa.data.build import normalization

    h = hashlib.sha256()
    for ids in (bank.ids, query.ids):
        h.update(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
        h.update(b"|")
    mean, std = normalization(cfg.data)
    fixed = {"data": identity, "img": cfg.model.img_size, "chans": cfg.model.in_chans, "mean": list(mean),
             "std": list(std), **settings}
    h.update(json.dumps(fixed, sort_keys=True, default=str).encode())
    return f"{kind}:{query.split}:bank{len(bank.ids)}:{query.split}{len(query.ids)}:{h.hexdigest()[:24]}"
