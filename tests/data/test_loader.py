"""Step-keyed sampler/dataset: epochs, exact resume, rank shares, worker agreement."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from cjepa.data import LabeledImages, StepBatchDataset, StepBatchSampler, build_loader
from cjepa.errors import DataError


@dataclass(frozen=True)
class FakeMasks:
    """Shaped like cjepa.masks.Masks: context (B, K), targets (M, B, K)."""

    context: torch.Tensor
    targets: torch.Tensor


def fake_mask_fn(batch_size: int, step: int) -> FakeMasks:
    g = torch.Generator().manual_seed(1000 + step)
    return FakeMasks(torch.randint(0, 49, (batch_size, 7), generator=g),
                     torch.arange(batch_size).repeat(2, 1))


def _data(n: int = 103) -> LabeledImages:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    return LabeledImages(images, torch.arange(n) % 10, 10, "synthetic")


def _dataset(two_views: bool = False, rank: int = 0, world_size: int = 1) -> StepBatchDataset:
    return StepBatchDataset(_data(), 16, (0.3, 1.0), (0.5,), (0.25,), 1, seed=7, mask_fn=fake_mask_fn,
                            two_views=two_views, rank=rank, world_size=world_size)


def test_each_index_once_per_epoch() -> None:
    s = StepBatchSampler(103, 10, seed=3, epochs=2)
    assert s.steps_per_epoch == 10 and len(s) == 20
    items = list(s)
    assert [k for k, _ in items] == list(range(20))
    for e in range(2):
        idx = torch.cat([i for _, i in items[10 * e: 10 * e + 10]])
        assert idx.numel() == 100 and idx.unique().numel() == 100
        assert idx.min() >= 0 and idx.max() < 103
    e0 = torch.cat([i for _, i in items[:10]])
    e1 = torch.cat([i for _, i in items[10:]])
    assert not torch.equal(e0, e1)  # reshuffled every epoch
    other = torch.cat([i for _, i in list(StepBatchSampler(103, 10, seed=4, epochs=1))])
    assert not torch.equal(e0, other)


def test_resume_is_the_exact_tail() -> None:
    full = list(StepBatchSampler(103, 10, seed=3, epochs=3))
    for k in (0, 7, 10, 13, 29):
        tail = list(StepBatchSampler(103, 10, seed=3, start_step=k, epochs=3))
        assert len(tail) == 30 - k
        assert [s for s, _ in tail] == list(range(k, 30))
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(tail, full[k:], strict=True))


def test_epochs_none_and_set_epoch() -> None:
    s = StepBatchSampler(103, 10, seed=3, start_step=13)
    assert [k for k, _ in s] == list(range(13, 20)) and len(s) == 7
    s.set_epoch(2)
    assert [k for k, _ in s] == list(range(20, 30))
    s.set_epoch(1)  # steps before start_step are skipped
    assert [k for k, _ in s] == list(range(13, 20))


def test_rank_shares_partition_the_global_batch() -> None:
    one = list(StepBatchSampler(103, 10, seed=3, epochs=2))
    r0 = list(StepBatchSampler(103, 10, seed=3, epochs=2, rank=0, world_size=2))
    r1 = list(StepBatchSampler(103, 10, seed=3, epochs=2, rank=1, world_size=2))
    for (s, g), (s0, a), (s1, b) in zip(one, r0, r1, strict=True):
        assert s == s0 == s1 and a.numel() == b.numel() == 5
        assert not set(a.tolist()) & set(b.tolist())
        assert torch.equal(torch.cat([a, b]), g)


def test_sampler_errors() -> None:
    with pytest.raises(DataError, match="optim.batch_size=200"):
        StepBatchSampler(103, 200, seed=0)
    with pytest.raises(DataError, match="divisible"):
        StepBatchSampler(103, 10, seed=0, world_size=3)


def test_dataset_is_a_function_of_the_key() -> None:
    ds = _dataset(two_views=True)
    s = StepBatchSampler(103, 8, seed=7, epochs=1)
    key = next(iter(s))
    a, b = ds[key], ds[(key[0], key[1].clone())]
    assert a["step"] == 0 and a["images"].shape == (8, 1, 16, 16) and a["images2"].shape == (8, 1, 16, 16)
    for name in ("images", "images2", "labels"):
        assert torch.equal(a[name], b[name])
    assert torch.equal(a["masks"].context, b["masks"].context) and isinstance(a["masks"], FakeMasks)
    assert torch.equal(a["labels"], key[1] % 10)
    assert not torch.allclose(a["images"], a["images2"])  # two independent crops
    c = ds[(1, key[1])]  # same images, other step: other crops
    assert not torch.allclose(a["images"], c["images"])
    assert "images2" not in _dataset()[key]


def test_ranks_see_slices_of_the_single_process_batch() -> None:
    sampler = StepBatchSampler(103, 8, seed=7, epochs=1)
    full = _dataset(two_views=True)[next(iter(sampler))]
    parts = []
    for r in range(2):
        rs = StepBatchSampler(103, 8, seed=7, epochs=1, rank=r, world_size=2)
        parts.append(_dataset(two_views=True, rank=r, world_size=2)[next(iter(rs))])
    for name in ("images", "images2", "labels"):
        assert torch.equal(torch.cat([p[name] for p in parts]), full[name]), name
    # masks too: each rank gets its rows of the global batch's masks
    assert torch.equal(torch.cat([p["masks"].context for p in parts]), full["masks"].context)
    assert torch.equal(torch.cat([p["masks"].targets for p in parts], dim=1), full["masks"].targets)


def test_workers_agree_with_main_process() -> None:
    def run(workers: int) -> list[dict]:
        sampler = StepBatchSampler(103, 16, seed=7, start_step=2, epochs=1)
        return list(build_loader(_dataset(two_views=True), sampler, workers, pin_memory=False))

    main, worker = run(0), run(1)
    assert [b["step"] for b in main] == [b["step"] for b in worker] == [2, 3, 4, 5]
    for a, b in zip(main, worker, strict=True):
        for name in ("images", "images2", "labels"):
            assert torch.equal(a[name], b[name])
        assert isinstance(b["masks"], FakeMasks) and torch.equal(a["masks"].context, b["masks"].context)


def _flip_dataset(hflip: float, rank: int = 0, world_size: int = 1) -> StepBatchDataset:
    return StepBatchDataset(_data(), 16, (0.3, 1.0), (0.5,), (0.25,), 1, seed=7, mask_fn=None,
                            rank=rank, world_size=world_size, hflip=hflip)


def test_hflip_mirrors_the_same_crops() -> None:
    key = next(iter(StepBatchSampler(103, 8, seed=7, epochs=1)))
    plain, always, half = _flip_dataset(0.0)[key], _flip_dataset(1.0)[key], _flip_dataset(0.5)[key]
    assert torch.equal(always["images"], plain["images"].flip(-1))  # flips drawn after the crops
    flipped = [not torch.equal(h, p) for h, p in zip(half["images"], plain["images"], strict=True)]
    for h, p, f in zip(half["images"], plain["images"], flipped, strict=True):
        assert torch.equal(h, p.flip(-1) if f else p)
    assert 0 < sum(flipped) < 8  # p = 0.5 on 8 images: some of each (fixed seed)


def test_hflip_rank_slices_match_one_process() -> None:
    full = _flip_dataset(0.5)[next(iter(StepBatchSampler(103, 8, seed=7, epochs=1)))]
    parts = [_flip_dataset(0.5, r, 2)[next(iter(StepBatchSampler(103, 8, seed=7, epochs=1, rank=r, world_size=2)))]
             for r in range(2)]
    assert torch.equal(torch.cat([p["images"] for p in parts]), full["images"])
