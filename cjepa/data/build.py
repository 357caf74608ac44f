"""The training data set a config asks for: in-memory step-keyed batches or the shard stream.

One place decides, so the trainer, the benchmarks and the tests build batches the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cjepa.config import DataConfig
from cjepa.data.datasets import dataset_stats, load_split
from cjepa.data.loader import StepBatchDataset
from cjepa.data.transforms import Stat


def normalization(cfg: DataConfig) -> tuple[Stat, Stat]:
    """Per-channel (mean, std) of pixels / 255: the training split's own, recorded at import, for
    Parquet shards; the built-in sets' constants otherwise. Evaluation uses the same values."""
    if cfg.dataset != "parquet":
        return dataset_stats(cfg.dataset)
    from cjepa.data.shards import split_root
    from cjepa.data.stream import ShardSplit

    return tuple(ShardSplit(split_root(cfg.root, "train")).stats())  # type: ignore[return-value]


def train_dataset(cfg: Any, rank: int, world: int, mask_fn: Callable[[int, int], Any] | None,
                  two_views: bool) -> Any:
    """``StepBatchDataset`` (in memory) or ``ShardStream`` (``data.dataset=parquet``); both have
    ``sampler(batch_size, seed, start_step, epochs, lanes)``."""
    d, m = cfg.data, cfg.model
    mean, std = normalization(d)
    if d.dataset == "parquet":
        from cjepa.data.shards import split_root
        from cjepa.data.stream import ShardSplit, ShardStream

        split = ShardSplit(split_root(d.root, "train"), limit=d.train_subset, first=d.val_samples)  # data/holdout.py
        return ShardStream(split, m.img_size, d.crop_scale, mean, std, m.in_chans, cfg.run.seed, mask_fn,
                           two_views=two_views, rank=rank, world_size=world, hflip=d.hflip, blur=d.blur,
                           solarize=d.solarize,
                           window=d.shuffle_window, skip_corrupt=d.skip_corrupt, decode=d.decode)
    return StepBatchDataset(load_split(d, "train"), m.img_size, d.crop_scale, mean, std, m.in_chans, cfg.run.seed,
                            mask_fn, two_views=two_views, rank=rank, world_size=world, hflip=d.hflip, blur=d.blur,
                            solarize=d.solarize)
