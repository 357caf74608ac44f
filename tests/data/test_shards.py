"""Parquet image shards: conversion, manifest checks, exact (rank, epoch, resume) reading, corrupt data,
and the trainer on ``data.dataset=parquet``."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from cjepa.cli import main
from cjepa.config import DataConfig, load_config
from cjepa.data import LabeledImages, StepBatchDataset, StepBatchSampler, build_loader, load_split
from cjepa.data.convert import MANIFEST, convert_image_folder, write_shard
from cjepa.data.datasets import load_raw_split
from cjepa.data.shards import ParquetImages
from cjepa.errors import DataError
from tests.conftest import tiny_overrides

CLASSES = ("ant", "bee", "cat", "dog")
H, W = 24, 32


def _make_folder(root: Path, per_class: int = 25, sizes: tuple[tuple[int, int], ...] = ((H, W),)) -> Path:
    """per_class images per class, random textures, PNG and JPEG alternating, one grey PNG."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            arr = (rng.random((h, w, 3)) * 64 + 48 * c).astype(np.uint8)
            im = Image.fromarray(arr).convert("L") if (c, i) == (0, 0) else Image.fromarray(arr)
            im.save(root / name / f"{i:03d}.{'png' if i % 2 == 0 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return _make_folder(tmp_path_factory.mktemp("src") / "images")


@pytest.fixture(scope="module")
def shards(folder: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards") / "png"
    convert_image_folder(folder, out, shard_size=16, image_format="png")
    return out


def _paths(out: Path) -> list[str]:
    files = [s["file"] for s in json.loads((out / MANIFEST).read_text())["shards"]]
    return [p for f in files for p in pq.read_table(out / f, columns=["path"]).column("path").to_pylist()]


def _source_pixels(folder: Path, rel: str) -> np.ndarray:
    with Image.open(folder / rel) as im:
        return np.asarray(im.convert("RGB"))


def _loader_batches(data, rank: int, world: int, start_step: int = 0, workers: int = 0):
    ds = StepBatchDataset(data, 16, (0.3, 1.0), (0.449,), (0.226,), 3, seed=5, mask_fn=None, rank=rank,
                          world_size=world)
    sampler = StepBatchSampler(len(data), 20, seed=5, start_step=start_step, epochs=2, rank=rank, world_size=world)
    return [(step, idx, batch) for (step, idx), batch in zip(sampler, build_loader(ds, sampler, workers, False))]


def test_manifest_classes_and_checksums(shards: Path) -> None:
    m = json.loads((shards / MANIFEST).read_text())
    assert m["total"] == 100 and [s["rows"] for s in m["shards"]] == [16] * 6 + [4]
    assert m["image_size"] == [H, W] and m["channels"] == 3 and m["num_classes"] == 4
    assert json.loads((shards / "classes.json").read_text()) == {c: i for i, c in enumerate(CLASSES)}
    for s in m["shards"]:
        assert hashlib.sha256((shards / s["file"]).read_bytes()).hexdigest() == s["sha256"]
    assert not list(shards.glob(".*"))  # no temporary files left behind
    assert all(0 < v < 1 for v in m["mean"] + m["std"])


def test_bytes_round_trip(folder: Path, shards: Path, tmp_path: Path) -> None:
    data = ParquetImages(shards)
    paths = _paths(shards)
    assert sorted(paths) == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.*"))
    images = data.images[:]
    for i, rel in enumerate(paths):  # PNG re-encoding is lossless: pixels equal the decoded source
        assert np.array_equal(images[i].permute(1, 2, 0).numpy(), _source_pixels(folder, rel)), rel
        assert int(data.labels[i]) == CLASSES.index(rel.split("/")[0])
    kept = tmp_path / "keep"
    convert_image_folder(folder, kept, shard_size=40, image_format="keep")
    kdata = ParquetImages(f"file://{kept}")  # a pyarrow URI, as for s3:// or gs://
    for i, rel in enumerate(_paths(kept)):
        assert kdata.read_bytes(i) == (folder / rel).read_bytes()  # keep: the source bytes exactly


def test_two_ranks_two_epochs_cover_every_image_once(shards: Path, folder: Path) -> None:
    data = ParquetImages(shards)
    ranks = [_loader_batches(data, 0, 2), _loader_batches(data, 1, 2, workers=1)]  # rank 1 decodes in a worker
    assert [s for s, _, _ in ranks[0]] == list(range(10))  # 100 images / batch 20 = 5 steps per epoch
    for epoch in range(2):
        seen = torch.cat([idx for r in ranks for s, idx, _ in r if s // 5 == epoch])
        assert seen.numel() == 100 and seen.unique().numel() == 100  # none lost, none duplicated
    mem = LabeledImages(data.images[:], data.labels, 4, "mem")  # the in-memory path on the same pixels
    for rank in range(2):
        for (_, idx, batch), (_, _, ref) in zip(ranks[rank], _loader_batches(mem, rank, 2)):
            assert torch.equal(batch["labels"], data.labels[idx]) and torch.equal(batch["images"], ref["images"])
    paths = _paths(shards)
    assert all(int(data.labels[i]) == CLASSES.index(paths[i].split("/")[0]) for i in range(100))


def test_resume_mid_epoch_yields_exactly_the_rest(shards: Path) -> None:
    data = ParquetImages(shards)
    full = _loader_batches(data, 1, 2)
    tail = _loader_batches(data, 1, 2, start_step=7)
    assert [s for s, _, _ in tail] == list(range(7, 10))
    for (s, idx, b), (s2, idx2, b2) in zip(full[7:], tail):
        assert s == s2 and torch.equal(idx, idx2) and torch.equal(b["images"], b2["images"])


def test_corrupt_or_missing_shard_is_named(shards: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(shards, bad)
    raw = bytearray((bad / "shard-00002.parquet").read_bytes())
    raw[len(raw) // 3: len(raw) // 3 + 8] = bytes(b ^ 0xFF for b in raw[len(raw) // 3: len(raw) // 3 + 8])
    (bad / "shard-00002.parquet").write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"shard shard-00002\.parquet is corrupt"):
        ParquetImages(bad)  # small: read and verified at open
    lazy = ParquetImages(bad, preload=False)  # labels come from the footer; the checksum fails on first read
    lazy.images[:32]  # shards 0 and 1 are fine
    with pytest.raises(DataError, match=r"shard-00002\.parquet is corrupt"):
        lazy.images[32:40]
    (bad / "shard-00004.parquet").unlink()
    with pytest.raises(DataError, match=r"shard shard-00004\.parquet .*missing"):
        ParquetImages(bad)
    with pytest.raises(DataError, match="not written by `cjepa data convert`"):
        ParquetImages(tmp_path)


def _corrupt_row(src: Path, dst: Path, shard: int, row: int) -> None:
    """Copy of src with one image's bytes replaced by garbage, manifest updated (the shard is 'valid')."""
    shutil.copytree(src, dst)
    m = json.loads((dst / MANIFEST).read_text())
    name = m["shards"][shard]["file"]
    t = pq.read_table(dst / name)
    images = t.column("image").to_pylist()
    images[row] = images[row][:40] + b"\x00garbage" * 8  # a PNG header, then nonsense
    info = write_shard(dst / name, images, t.column("label").to_pylist(), t.column("path").to_pylist())
    m["shards"][shard].update(bytes=info.bytes, sha256=info.sha256)
    (dst / MANIFEST).write_text(json.dumps(m))


def test_corrupt_image_row(shards: Path, tmp_path: Path, caplog) -> None:
    _corrupt_row(shards, tmp_path / "bad", shard=3, row=5)
    bad_index = 3 * 16 + 5
    with pytest.raises(DataError, match=r"shard shard-00003\.parquet row 5: cannot decode"):
        ParquetImages(tmp_path / "bad").images[:]
    data = ParquetImages(tmp_path / "bad", skip_corrupt=True)
    with caplog.at_level(logging.WARNING, logger="cjepa.data.shards"):
        images = data.images[:]
        data.images[:]  # a second epoch: the same replacement, counted once
    assert data.corrupt_count == 1 and "shard-00003.parquet row 5" in caplog.text
    good = ParquetImages(shards)
    label = good.labels[bad_index]
    nxt = next(j for j in range(bad_index + 1, 100) if good.labels[j] == label)  # next row of the same class
    assert torch.equal(images[bad_index], good.images[nxt]) and data.labels[bad_index] == label
    others = [i for i in range(100) if i != bad_index]
    assert torch.equal(images[others], good.images[others])


def test_sizes_that_differ_need_resize(tmp_path: Path) -> None:
    src = _make_folder(tmp_path / "mixed", per_class=2, sizes=((20, 30), (28, 18)))
    convert_image_folder(src, tmp_path / "raw", image_format="keep")
    with pytest.raises(DataError, match="--resize"):
        ParquetImages(tmp_path / "raw")
    assert ParquetImages(tmp_path / "raw", size=(16, 16)).images[:].shape == (8, 3, 16, 16)
    m = convert_image_folder(src, tmp_path / "kept", image_format="jpeg", resize=16)  # aspect kept: sizes differ
    assert m.image_size is None and (m.min_size, m.max_size) == ([16, 16], [25, 24])  # 20x30->16x24, 28x18->25x16
    m = convert_image_folder(src, tmp_path / "sq", image_format="jpeg", resize=16, center_crop=True)
    assert m.image_size == [16, 16] and ParquetImages(tmp_path / "sq").images[:].shape == (8, 3, 16, 16)


def test_cli_convert_builtin_then_train_a_few_steps(tmp_path: Path, capsys) -> None:
    root = tmp_path / "digits"
    assert main(["data", "convert", "builtin:digits", str(root), "--shard-size", "700"]) == 0
    assert "data.dataset=parquet" in capsys.readouterr().out
    assert main(["data", "convert", "builtin:digits", str(root)]) == 2  # refuses to overwrite silently
    assert "--overwrite" in capsys.readouterr().err
    ref = DataConfig(dataset="digits", val_samples=0)
    assert torch.equal(load_split(ref, "test").images, load_split(DataConfig(dataset="parquet", root=str(root)),
                                                                      "test").images[:])  # same order, lossless
    # Parquet's validation split is the train split's first rows, training reads the rows after it
    whole = load_raw_split(ref, "train").images
    pq_cfg = DataConfig(dataset="parquet", root=str(root), val_samples=200, train_subset=300)
    assert torch.equal(load_split(pq_cfg, "val").images[:], whole[:200])
    assert torch.equal(load_split(pq_cfg, "train").images[:], whole[200:500])

    from cjepa.engine import train

    cfg = load_config(None, tiny_overrides(tmp_path / "run", "data.dataset=parquet", f"data.root={root}",
                                           "run.max_steps=3", "data.num_workers=1"))
    result = train(cfg)
    assert result.step == 3 and not result.completed


def test_rgb_folder_trains_and_evaluates(folder: Path, tmp_path: Path) -> None:
    """An RGB image folder end to end: train/ and test/ shards, in_chans=3, per-epoch kNN + probe."""
    from cjepa.engine import train

    root = tmp_path / "rgb"
    convert_image_folder(folder, root / "train", shard_size=32, image_format="png")
    convert_image_folder(folder, root / "test", shard_size=32, image_format="jpeg")
    cfg = load_config(None, tiny_overrides(tmp_path / "run", "data.dataset=parquet", f"data.root={root}",
                                           "model.in_chans=3", "optim.batch_size=32", "run.epochs=1",
                                           "eval.every=1", "eval.train_samples=60", "eval.test_samples=40",
                                           "eval.linear_epochs=5", "eval.raw_baseline=false"))
    result = train(cfg)
    metrics = result.history[-1]
    assert result.completed and 0.0 <= metrics["knn_target"] <= 1.0 and 0.0 <= metrics["linear_target"] <= 1.0
    assert metrics["knn_target"] > 0.25  # 4 classes differ in brightness: chance is 0.25


def test_image_is_png_readable_by_pil(shards: Path) -> None:
    with Image.open(io.BytesIO(ParquetImages(shards).read_bytes(0))) as im:
        assert im.format == "PNG" and im.size == (W, H)
