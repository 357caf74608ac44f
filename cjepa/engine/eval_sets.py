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


def eval_images(cfg: Config, which: str) -> EvalImages:
    """The ``bank``, ``val`` or ``test`` images of ``cfg`` (module docstring)."""
    if cfg.data.dataset == "parquet":
        return _shard_images(cfg, which)
    d, ev = cfg.data, cfg.eval
    if which == "test":
        test = load_raw_split(d, "test")
        n = min(ev.test_samples, len(test))
        return EvalImages(test.images[:n], test.labels[:n], np.arange(n), "test")
    train = load_raw_split(d, "train")
    ids = holdout.memory_indices(d, len(train), "train" if which == "bank" else "val")
    if which == "bank":
        ids = ids[torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))[: ev.train_samples]]
    return EvalImages(train.images[ids], train.labels[ids], ids.numpy(), which)


def _shard_images(cfg: Config, which: str) -> EvalImages:
    """Parquet: contiguous rows, read shard by shard (a permutation of a large split would read
    every shard for a few thousand images)."""
    from cjepa.data.shards import split_root
    from cjepa.data.stream import ShardSplit
    from cjepa.data.stream import eval_images as read_views

    d, ev, size = cfg.data, cfg.eval, cfg.model.img_size
    if which == "test":
        split, n = ShardSplit(split_root(d.root, "test")), ev.test_samples
    elif which == "val":
        split, n = ShardSplit(split_root(d.root, "train"), limit=d.val_samples), d.val_samples
    else:
        split, n = ShardSplit(split_root(d.root, "train"), limit=d.train_subset, first=d.val_samples), ev.train_samples
    images, labels = read_views(split, n, size)
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
