"""idx parsing, Fashion-MNIST lookup/download and the digits split."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from cjepa.config import DataConfig
from cjepa.data import dataset_stats, datasets, load_split, read_idx
from cjepa.data.datasets import load_raw_split
from cjepa.data.idx import IMAGES_MAGIC, LABELS_MAGIC, write_idx
from cjepa.errors import DataError


def test_idx_round_trip(tmp_path: Path) -> None:
    imgs = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    labs = np.array([7, 0, 255], dtype=np.uint8)
    ints = np.array([-5, 70000, 3], dtype=np.int32)
    write_idx(tmp_path / "i.gz", imgs)
    write_idx(tmp_path / "l", labs)
    write_idx(tmp_path / "n", ints)
    assert (tmp_path / "i.gz").read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(tmp_path / "i.gz", IMAGES_MAGIC), imgs)
    np.testing.assert_array_equal(read_idx(tmp_path / "l", LABELS_MAGIC), labs)
    np.testing.assert_array_equal(read_idx(tmp_path / "n"), ints)
    # the header is big-endian: 2051, then 3, 4, 5
    raw = gzip.decompress((tmp_path / "i.gz").read_bytes())
    assert raw[:16] == bytes.fromhex("00000803 00000003 00000004 00000005")


def test_idx_truncated_raw_and_gzip(tmp_path: Path) -> None:
    write_idx(tmp_path / "a.idx", np.zeros((2, 3, 3), np.uint8))
    buf = (tmp_path / "a.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(buf[:-4])
    with pytest.raises(DataError, match=r"short\.idx: truncated.*\(2, 3, 3\)"):
        read_idx(tmp_path / "short.idx", IMAGES_MAGIC)
    (tmp_path / "hdr.idx").write_bytes(buf[:10])
    with pytest.raises(DataError, match=r"hdr\.idx: truncated header"):
        read_idx(tmp_path / "hdr.idx")
    gz = gzip.compress(buf)
    (tmp_path / "cut.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError, match=r"cut\.gz: corrupt or truncated gzip"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "long.idx").write_bytes(buf + b"\0")
    with pytest.raises(DataError, match=r"long\.idx: has trailing bytes"):
        read_idx(tmp_path / "long.idx")


def test_idx_wrong_magic(tmp_path: Path) -> None:
    write_idx(tmp_path / "labels.gz", np.zeros(4, np.uint8))
    with pytest.raises(DataError, match=r"labels\.gz: wrong magic number 2049 \(expected 2051\)"):
        read_idx(tmp_path / "labels.gz", IMAGES_MAGIC)
    (tmp_path / "junk").write_bytes(b"GIF89a" + bytes(20))
    with pytest.raises(DataError, match=r"junk: bad idx magic"):
        read_idx(tmp_path / "junk")
    with pytest.raises(DataError, match=r"nothere: cannot read"):
        read_idx(tmp_path / "nothere")


def test_missing_dataset_says_how_to_get_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "DEBIAN_DIR", str(tmp_path / "no-debian"))
    cfg = DataConfig(cache_dir=str(tmp_path / "cache"), download=False)
    with pytest.raises(DataError) as info:
        load_split(cfg, "train")
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg
    assert "data.root" in msg and "data.download=true" in msg
    with pytest.raises(DataError, match=r"data.root=.*missing Fashion-MNIST files"):
        load_split(DataConfig(root=str(tmp_path)), "test")


def _fake_source(tmp_path: Path, n: int = 5) -> tuple[Path, dict[str, str]]:
    src = tmp_path / "mirror"
    src.mkdir()
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(src / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(src / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8))
    md5 = {f.name: hashlib.md5(f.read_bytes()).hexdigest() for f in src.iterdir()}
    return src, md5


def test_download_verifies_and_renames(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, md5 = _fake_source(tmp_path)
    monkeypatch.setattr(datasets, "DEBIAN_DIR", str(tmp_path / "no-debian"))
    monkeypatch.setattr(datasets, "FASHION_MD5", md5)
    # the first mirror is dead: the second one must be used
    monkeypatch.setattr(datasets, "FASHION_URLS", ((tmp_path / "dead").as_uri() + "/", src.as_uri() + "/"))
    cfg = DataConfig(cache_dir=str(tmp_path / "cache"), download=True, val_samples=0)
    data = load_split(cfg, "train")
    assert data.images.shape == (5, 1, 28, 28) and data.labels.tolist() == [0, 1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "cache" / "fashion-mnist").iterdir()) == sorted(md5)


def test_download_rejects_bad_checksum(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src, md5 = _fake_source(tmp_path)
    md5["t10k-labels-idx1-ubyte.gz"] = "0" * 32
    monkeypatch.setattr(datasets, "DEBIAN_DIR", str(tmp_path / "no-debian"))
    monkeypatch.setattr(datasets, "FASHION_MD5", md5)
    monkeypatch.setattr(datasets, "FASHION_URLS", (src.as_uri() + "/",))
    cfg = DataConfig(cache_dir=str(tmp_path / "cache"), download=True)
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz.*checksum mismatch"):
        load_split(cfg, "test")
    left = {p.name for p in (tmp_path / "cache" / "fashion-mnist").iterdir()}
    assert "t10k-labels-idx1-ubyte.gz" not in left
    assert not [n for n in left if n.startswith(".")]  # no temporary files left behind


def test_real_fashion_mnist() -> None:
    cfg = DataConfig()
    train, test = load_raw_split(cfg, "train"), load_split(cfg, "test")
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.num_classes == 10 and train.name == "fashion_mnist"
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.labels[0] == 9 and test.labels[0] == 9  # both start with an ankle boot
    hist = torch.bincount(train.images.flatten(), minlength=256).double()  # cheap exact moments
    v = torch.arange(256, dtype=torch.float64) / 255
    m = (hist * v).sum() / hist.sum()
    sd = ((hist * (v - m) ** 2).sum() / hist.sum()).sqrt()
    mean, std = dataset_stats("fashion_mnist")
    assert abs(m.item() - mean[0]) < 1e-4 and abs(sd.item() - std[0]) < 1e-4


def test_digits_split_and_stats() -> None:
    cfg = DataConfig(dataset="digits", val_samples=0)
    train, test = load_split(cfg, "train"), load_split(cfg, "test")
    assert train.images.shape == (1500, 1, 8, 8) and test.images.shape == (297, 1, 8, 8)
    assert train.images.dtype == torch.uint8 and int(train.images.max()) == 255
    assert set(train.labels.tolist()) == set(range(10))
    again = load_split(cfg, "train")
    assert torch.equal(again.images, train.images) and torch.equal(again.labels, train.labels)
    # a permutation was applied: sklearn's order is 0, 1, 2, ... for the first ten labels
    assert train.labels[:10].tolist() != list(range(10))
    x = train.images.double() / 255
    mean, std = dataset_stats("digits")
    assert abs(x.mean().item() - mean[0]) < 1e-4 and abs(x.std(unbiased=False).item() - std[0]) < 1e-4


def test_train_subset() -> None:
    """Without a validation split, the subset is the first n of a seed-0 permutation (as it always was)."""
    full = load_split(DataConfig(dataset="digits", val_samples=0), "train")
    sub = load_split(DataConfig(dataset="digits", train_subset=100, val_samples=0), "train")
    keep = torch.randperm(1500, generator=torch.Generator().manual_seed(0))[:100]
    assert torch.equal(sub.images, full.images[keep]) and torch.equal(sub.labels, full.labels[keep])
    assert len(load_split(DataConfig(dataset="digits", train_subset=100, val_samples=0), "test")) == 297
    with pytest.raises(DataError, match="data.train_subset=2000"):
        load_split(DataConfig(dataset="digits", train_subset=2000, val_samples=0), "train")


def test_validation_split_is_held_out_of_training_and_apart_from_test() -> None:
    """val = the first 300 of a data.val_seed permutation of the stored train split; train = the rest
    (in the split's order), never overlapping; test untouched; the same images on every call."""
    whole = load_raw_split(DataConfig(dataset="digits"), "train")
    cfg = DataConfig(dataset="digits", val_samples=300)
    train, val, test = (load_split(cfg, s) for s in ("train", "val", "test"))
    perm = torch.randperm(1500, generator=torch.Generator().manual_seed(0))
    assert (len(train), len(val), len(test)) == (1200, 300, 297)
    assert torch.equal(val.images, whole.images[perm[:300]]) and torch.equal(val.labels, whole.labels[perm[:300]])
    assert torch.equal(train.images, whole.images[perm[300:].sort().values])
    val_rows = {bytes(r) for r in val.images.flatten(1).numpy()}
    assert len(val_rows & {bytes(r) for r in train.images.flatten(1).numpy()}) <= 3  # digits repeats a few
    other = load_split(DataConfig(dataset="digits", val_samples=300, val_seed=1), "val")
    assert not torch.equal(other.labels, val.labels)
    # a subset is drawn from the rest, never from val
    sub = load_split(DataConfig(dataset="digits", val_samples=300, train_subset=1200), "train")
    assert sorted(sub.labels.tolist()) == sorted(train.labels.tolist())
    with pytest.raises(DataError, match=r"data.train_subset=1201 exceeds the 1200 training images"):
        load_split(DataConfig(dataset="digits", val_samples=300, train_subset=1201), "train")
    with pytest.raises(DataError, match=r"data.val_samples=1500 leaves no training image"):
        load_split(DataConfig(dataset="digits", val_samples=1500), "val")


def test_unknown_split_and_stats() -> None:
    with pytest.raises(DataError, match="unknown split 'valid'"):
        load_split(DataConfig(dataset="digits"), "valid")
    with pytest.raises(DataError, match="imagenet"):
        dataset_stats("imagenet")
