"""Shard-aware epoch orders: which rows a rank's DataLoader worker reads at each step.

Why not the global permutation of ``StepBatchSampler``: over Parquet shards it makes every batch
touch ~min(B, shards) shards, so a process reads each shard again and again (measured at small
scale: 31x the bytes used). Streaming libraries avoid this the same way (MosaicML Streaming's
``py1b`` shuffle, LitData's chunk shuffle, WebDataset's shard shuffle + buffer); this module is
that algorithm as a pure function of ``(seed, epoch, world size, lanes)``, which none of them
offers, so the step-keyed loader keeps an exact mid-epoch resume (docs/architecture.md, "Data at
scale", has the measurements behind the choice):

1. The epoch's shard order is a seeded permutation; the rows of the shards, in that order, form
   one stream of ``N`` rows.
2. The stream is cut into ``world_size * lanes`` contiguous *lanes* of ``N // (world_size * lanes)``
   rows (the remainder is dropped this epoch, a different one next epoch). Rank ``r`` owns lanes
   ``r * lanes .. r * lanes + lanes - 1``: ranks read disjoint rows and, but for the shards cut by a
   lane boundary, disjoint shards.
3. Within a lane, rows are shuffled inside windows of ``window`` shards' worth of rows (rows were
   shuffled across classes at import, so a window of a few shards is a class-mixed sample).
4. Step ``k`` of the epoch takes lane ``k % lanes`` of each rank, at position ``(k // lanes) * b``
   (``b`` = the per-rank batch). A DataLoader hands steps to its workers round-robin, so with
   ``lanes = num_workers`` each worker reads one lane: a shard is read by one process, once per
   epoch, while its window is current (``ShardWindowCache`` holds ``window + 1`` shards).

Resume: a step's rows are a pure function of (seed, epoch, step, world size, lanes), so a resumed
run with the same world size and ``data.num_workers`` sees exactly the batches it would have
seen; with other values it restarts the order of the current epoch from the new partition
(images of that epoch may then repeat or be missed; later epochs are whole).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cjepa.data.seeds import derive_seed

_SHARDS_TAG = 0x5EED_5A4D
_WINDOW_TAG = 0x5EED_3190


def lane_length(total_rows: int, world_size: int, lanes: int) -> int:
    """Rows in each lane of an epoch (the same for every epoch)."""
    return total_rows // (world_size * lanes)


def steps_per_epoch(total_rows: int, batch_size: int, world_size: int, lanes: int) -> int:
    """Optimizer steps per epoch: every lane gives ``lane_length // (batch_size // world_size)`` batches."""
    return lanes * (lane_length(total_rows, world_size, lanes) // (batch_size // world_size))


def shard_stream(shard_ranges: Sequence[tuple[int, int]], seed: int, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """The epoch's row stream (global row numbers) and the shard (position in ``shard_ranges``) each
    entry comes from; ``shard_ranges``: each shard's ``[first, end)`` global rows that are read."""
    order = np.random.default_rng(derive_seed(seed, _SHARDS_TAG, epoch)).permutation(len(shard_ranges))
    rows = [np.arange(*shard_ranges[s]) for s in order]
    shards = [np.full(len(r), s) for s, r in zip(order, rows)]
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(shards)


def lane_rows(shard_ranges: Sequence[tuple[int, int]], seed: int, epoch: int, world_size: int, lanes: int,
              window: int) -> list[np.ndarray]:
    """Every lane's rows in reading order for one epoch (lane ``r * lanes + j``: rank r, worker j)."""
    stream, _ = shard_stream(shard_ranges, seed, epoch)
    length = lane_length(len(stream), world_size, lanes)
    window_rows = max(1, window * int(np.ceil(len(stream) / max(len(shard_ranges), 1))))
    out = []
    for lane in range(world_size * lanes):
        part = stream[lane * length:(lane + 1) * length].copy()
        rng = np.random.default_rng(derive_seed(seed, _WINDOW_TAG, epoch, lane))
        for lo in range(0, len(part), window_rows):
            part[lo:lo + window_rows] = rng.permutation(part[lo:lo + window_rows])
        out.append(part)
    return out
