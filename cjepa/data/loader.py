"""A step-keyed batch loader: every batch is a pure function of (seed, global step).

Why: resume must be exact and DataLoader workers must agree with the main process. The
sampler yields ``(global_step, indices)`` keys; the dataset turns one key into a whole batch
(gather, batched augmentation, masks), seeding its augmentation generator from
``(seed, step)``. Nothing depends on iteration history, worker count or worker id, so resuming at
step k reproduces exactly the batches an uninterrupted run would have seen from step k on.

Under data parallelism the *global* batch for a step is the same as in one process; each rank
gets a contiguous slice of it (indices *and* crop boxes), so the union over ranks is the
single-process batch, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cjepa.data import photometric
from cjepa.data.datasets import LabeledImages
from cjepa.data.seeds import derive_seed
from cjepa.data.transforms import Stat, _check, crop_params, normalize, resized_crops
from cjepa.errors import DataError

if TYPE_CHECKING:
    from cjepa.data.shards import ParquetImages

Key = tuple[int, torch.Tensor]

_EPOCH_TAG = 0x5EED_E90C  # streams: epoch orders and augmentations never share a seed
_AUG_TAG = 0x5EED_A096


class StepBatchSampler(Sampler[Key]):
    """Yields ``(global_step, index_tensor)`` for steps ``[begin, end)``.

    Epoch e's order is ``randperm(num_samples)`` seeded from (seed, e); step s uses batch
    ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch`` (the last partial batch of each
    epoch is dropped). ``epochs=N`` runs from ``start_step`` to ``N * steps_per_epoch``;
    ``epochs=None`` stops at the end of the epoch containing ``start_step``. With a persistent
    DataLoader call :meth:`set_epoch` before each epoch, as with ``DistributedSampler``.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, start_step: int = 0,
                 epochs: int | None = None, rank: int = 0, world_size: int = 1) -> None:
        if batch_size <= 0 or num_samples // batch_size == 0:
            raise DataError(f"optim.batch_size={batch_size} must be between 1 and the {num_samples} "
                            "training images (data.train_subset), or an epoch has no full batch")
        if world_size < 1 or not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is not in a world of size {world_size}")
        if batch_size % world_size:
            raise DataError(f"optim.batch_size={batch_size} (the global batch) must be divisible by "
                            f"the {world_size} workers")
        if start_step < 0:
            raise DataError(f"start_step must be >= 0, got {start_step}")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.local_batch = batch_size // world_size
        self.steps_per_epoch = num_samples // batch_size
        self.start_step = start_step
        self.begin = start_step
        self.end = (epochs * self.steps_per_epoch if epochs is not None
                    else (start_step // self.steps_per_epoch + 1) * self.steps_per_epoch)
        self._perm_epoch, self._perm = -1, torch.empty(0, dtype=torch.int64)

    def set_epoch(self, epoch: int) -> None:
        """Iterate over epoch ``epoch`` only (skipping steps before ``start_step``)."""
        self.begin = max(self.start_step, epoch * self.steps_per_epoch)
        self.end = (epoch + 1) * self.steps_per_epoch

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The full index permutation of an epoch (the same on every rank)."""
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(derive_seed(self.seed, _EPOCH_TAG, epoch))
            self._perm, self._perm_epoch = torch.randperm(self.num_samples, generator=g), epoch
        return self._perm

    def indices(self, step: int) -> torch.Tensor:
        """This rank's indices at a global step."""
        epoch, k = divmod(step, self.steps_per_epoch)
        lo = k * self.batch_size + self.rank * self.local_batch
        return self.epoch_order(epoch)[lo: lo + self.local_batch].clone()

    def __iter__(self) -> Iterator[Key]:
        for step in range(self.begin, self.end):
            yield step, self.indices(step)

    def __len__(self) -> int:
        return max(0, self.end - self.begin)


class StepBatchDataset(Dataset):
    """Map-style dataset whose items are whole batches, keyed by ``(global_step, indices)``.

    ``mask_fn(batch_size, step)`` (e.g. the multi-block mask generator; it owns its own seed
    stream) is called with the *global* batch size and this rank keeps its rows, like the crop
    boxes: augmentation uses a generator seeded from (seed, step), boxes are drawn for the global
    batch (``len(indices) * world_size``). So a batch does not depend on how many ranks share it,
    and 2 ranks see exactly the images and masks one process would.
    """

    def __init__(self, data: LabeledImages | ParquetImages, img_size: int, crop_scale: tuple[float, float],
                 mean: Stat, std: Stat, in_chans: int, seed: int, mask_fn: Callable[[int, int], Any] | None,
                 two_views: bool = False, rank: int = 0, world_size: int = 1, hflip: float = 0.0,
                 blur: tuple[float, float] = (0.0, 0.0), solarize: tuple[float, float] = (0.0, 0.0)) -> None:
        chans = int(data.images.shape[1])  # ParquetImages decodes in __getitem__: in the DataLoader workers
        if chans not in (1, in_chans):
            raise DataError(f"the images have {chans} channels but model.in_chans={in_chans}")
        self.data, self.img_size, self.crop_scale = data, img_size, tuple(crop_scale)
        self.mean, self.std, self.in_chans = mean, std, in_chans
        self.seed, self.mask_fn, self.two_views = seed, mask_fn, two_views
        self.rank, self.world_size = rank, world_size
        self.hflip, self.blur, self.solarize = hflip, tuple(blur), tuple(solarize)

    def __len__(self) -> int:
        return len(self.data)

    def sampler(self, batch_size: int, seed: int, start_step: int, epochs: int, lanes: int = 1) -> StepBatchSampler:
        """This rank's sampler over the whole split (``lanes`` matters only to the shard stream)."""
        return StepBatchSampler(len(self.data), batch_size, seed, start_step, epochs, self.rank, self.world_size)

    def _view(self, images: torch.Tensor, g: torch.Generator, which: int = 0) -> torch.Tensor:
        """View ``which`` (0, 1) of a batch: crop, flip, VICReg's blur / solarisation, normalise; every
        draw made for the global batch (then this rank's rows), each only when its option is on."""
        n, _, height, width = images.shape
        boxes = crop_params(n * self.world_size, height, width, self.crop_scale, (3 / 4, 4 / 3), g)
        rows = slice(self.rank * n, (self.rank + 1) * n)
        _check(images)
        x = resized_crops(images.to(torch.float32).div_(255.0), boxes[rows], self.img_size)
        if self.hflip > 0:  # drawn only when on: with flips off the stream (and old runs) is unchanged
            flip = (torch.rand(n * self.world_size, generator=g) < self.hflip)[rows]
            x[flip] = x[flip].flip(-1)
        blur, solar = self.blur[which], self.solarize[which]
        if blur > 0 or solar > 0:
            x = photometric.apply(x, photometric.draw(n * self.world_size, blur, solar, self.img_size, g)[rows])
        return normalize(x, self.mean, self.std, self.in_chans)

    def __getitem__(self, key: Key) -> dict[str, Any]:
        step, idx = key
        step = int(step)
        images = self.data.images[idx]
        g = torch.Generator().manual_seed(derive_seed(self.seed, _AUG_TAG, step))
        out: dict[str, Any] = {"step": step, "images": self._view(images, g)}
        if self.two_views:
            out["images2"] = self._view(images, g, 1)  # the generator moved on: an independent crop
        out["labels"] = self.data.labels[idx]
        if self.mask_fn is not None:
            out["masks"] = rank_masks(self.mask_fn, int(idx.shape[0]), step, self.rank, self.world_size)
        return out


def rank_masks(mask_fn: Callable[[int, int], Any], n: int, step: int, rank: int, world_size: int) -> Any:
    """Masks drawn for the global batch of ``n * world_size`` at ``step``, this rank's ``n`` rows: a
    batch's masks do not depend on how many ranks share it; with ``mask.context_views > 1`` also
    the further context views (``extra_context``, (K - 1, B, Kc))."""
    masks = mask_fn(n * world_size, step)
    if world_size > 1:
        rows = slice(rank * n, (rank + 1) * n)
        cut = {"context": masks.context[rows], "targets": masks.targets[:, rows]}
        extra = getattr(masks, "extra_context", None)
        if extra is not None:
            cut["extra_context"] = extra[:, rows]
        masks = type(masks)(**cut)
    return masks


def build_loader(dataset: StepBatchDataset, sampler: StepBatchSampler, num_workers: int,
                 pin_memory: bool | None = None) -> DataLoader:
    """A DataLoader over whole-batch items (``batch_size=None``: no collation, no re-batching).

    ``pin_memory=None`` pins only when CUDA is available. Dataclass items (e.g. masks) pass
    through unchanged, but pinning skips them (torch pins only tensors, mappings and sequences).
    """
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    # Every batch is seeded from (seed, step); the loader's own generator only stops it from
    # drawing its worker base seed from the global RNG, which would make a resumed run's RNG
    # stream (drop-path) differ from an uninterrupted one.
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers,
                      persistent_workers=num_workers > 0, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(0))
