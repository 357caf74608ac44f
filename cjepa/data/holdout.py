"""The validation split: images carved from the training split, never trained on.

Why: every choice a study makes (Optuna, ASHA, the collapse stopper, a probe's settings) must be
scored on images that are neither trained on nor the test set, so that the test split is read
once, at the end of a run, and its number is an estimate, not a selected maximum.

One definition for every path (the in-memory loader, the shard stream, the evaluator):

- In-memory sets (Fashion-MNIST, digits): ``P`` = a permutation of the training split drawn with
  ``data.val_seed``. The validation split is ``P[:data.val_samples]``; the training set is the rest,
  in the split's own order, or, under ``data.train_subset = n``, its first ``n`` in ``P``'s order.
  With ``val_samples = 0`` and ``val_seed = 0`` this is exactly the old ``train_subset`` (the first
  ``n`` of a seed-0 permutation), so runs without a validation split keep their images.
- Parquet shards: rows were shuffled across classes at import (``cjepa data convert``), so the
  validation split is the split's first ``val_samples`` rows and training reads the rows after it
  (a contiguous range: the shard stream keeps reading whole shards). ``val_seed`` does not apply.

Plain index arithmetic over a length, so config validation can check sizes before any image loads
(and before torch is imported).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cjepa.errors import DataError

if TYPE_CHECKING:  # the config layer imports check_sizes before torch is loaded
    import torch

    from cjepa.config import DataConfig

SPLITS = ("train", "val", "test")


def check_sizes(cfg: DataConfig, train_total: int, where: str) -> None:
    """One line when the validation split or the subset do not fit the ``train_total`` images."""
    v, n = cfg.val_samples, cfg.train_subset
    if v >= train_total:
        raise DataError(f"data.val_samples={v} leaves no training image: {where} has {train_total}; "
                        f"choose data.val_samples < {train_total} (0: no validation split)")
    if n > train_total - v:
        raise DataError(f"data.train_subset={n} exceeds the {train_total - v} training images of {where} "
                        f"({train_total} minus data.val_samples={v})")


def memory_indices(cfg: DataConfig, train_total: int, split: str) -> torch.Tensor:
    """Indices into an in-memory training split of its ``train`` or ``val`` part (module docstring)."""
    import torch

    check_sizes(cfg, train_total, cfg.dataset)
    v, n = cfg.val_samples, cfg.train_subset
    if v == 0 and n == 0:
        return torch.arange(train_total) if split == "train" else torch.zeros(0, dtype=torch.long)
    perm = torch.randperm(train_total, generator=torch.Generator().manual_seed(cfg.val_seed))
    if split == "val":
        return perm[:v]
    pool = perm[v:]
    return pool[:n] if n > 0 else pool.sort().values


def shard_rows(cfg: DataConfig, train_total: int, split: str) -> np.ndarray:
    """Global rows of a Parquet training split that form its ``train`` or ``val`` part."""
    check_sizes(cfg, train_total, cfg.root)
    v, n = cfg.val_samples, cfg.train_subset
    if split == "val":
        return np.arange(v, dtype=np.int64)
    return np.arange(v, v + n if n > 0 else train_total, dtype=np.int64)
