"""`cjepa data convert` on real photos (crops of scikit-learn's china.jpg and flower.jpg): ImageNet's
layouts and label files, aspect-kept resizing, statistics, workers, resume, corrupt files."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from scipy.io import savemat
from sklearn.datasets import load_sample_images

from cjepa.cli import main
from cjepa.data import convert_shards
from cjepa.data.convert import MANIFEST, convert, convert_image_folder
from cjepa.errors import DataError

WNIDS = [f"n{1440764 + 7 * i:08d}" for i in range(20)]


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return list(load_sample_images().images)  # two 427x640 RGB photos


def _crop(photos: list[np.ndarray], rng: np.random.Generator, grey: bool = False) -> bytes:
    """A JPEG (q90) crop of a real photo, 40-90 px per side (mixed sizes and aspect ratios)."""
    img = photos[rng.integers(2)]
    h, w = rng.integers(40, 91, size=2)
    top, left = rng.integers(0, img.shape[0] - h), rng.integers(0, img.shape[1] - w)
    im = Image.fromarray(img[top:top + h, left:left + w])
    buf = io.BytesIO()
    (im.convert("L") if grey else im).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _class_tree(root: Path, photos: list[np.ndarray], classes: list[str], per_class: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            (root / c / f"{c}_{i}.JPEG").write_bytes(_crop(photos, rng, grey=(c, i) == (classes[0], 0)))
    return root


def _imagenet(root: Path, photos: list[np.ndarray], labels: str = "csv") -> tuple[Path, dict[str, str]]:
    """train/<wnid>/ (2 each) and a flat val/ (1-2 per class) labelled by LOC csv or the devkit."""
    _class_tree(root / "train", photos, WNIDS, 2)
    (root / "val").mkdir()
    rng = np.random.default_rng(1)
    truth = {f"ILSVRC2012_val_{i + 1:08d}": WNIDS[(i * 7) % 20] for i in range(30)}
    for name in truth:
        (root / "val" / f"{name}.JPEG").write_bytes(_crop(photos, rng))
    if labels == "csv":
        rows = [f"{k},{w} 10 20 30 40 {w} 1 2 3 4" for k, w in truth.items()]
        (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")
    else:  # the devkit: synsets (ids 1..20 in a shuffled order), ground truth per sorted file name
        data = root / "devkit" / "data"
        data.mkdir(parents=True)
        ids = {w: i + 1 for i, w in enumerate(np.random.default_rng(2).permutation(WNIDS))}
        synsets = np.array([(ids[w], w, "words", 0) for w in WNIDS],
                           dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("words", "O"), ("num_children", "O")])
        savemat(data / "meta.mat", {"synsets": synsets.reshape(-1, 1)})
        (data / "ILSVRC2012_validation_ground_truth.txt").write_text("".join(f"{ids[truth[k]]}\n" for k in truth))
    return root, truth


def _rows(out: Path, columns: tuple[str, ...] = ("path", "label", "height", "width")) -> dict[str, list]:
    files = [s["file"] for s in json.loads((out / MANIFEST).read_text())["shards"]]
    tables = [pq.read_table(out / f, columns=list(columns)) for f in files]
    return {c: [v for t in tables for v in t.column(c).to_pylist()] for c in columns}


def _one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cjepa: error: "), err
    return err[0]


@pytest.mark.parametrize("labels", ["csv", "devkit"])
def test_imagenet_layout_one_class_index_and_val_labels(photos, tmp_path: Path, labels: str, capsys) -> None:
    root, truth = _imagenet(tmp_path / "imagenet", photos, labels)
    out = tmp_path / "out"
    extra = ["--val-labels", str(root / "devkit" / "data")] if labels == "devkit" else []
    assert main(["data", "convert", str(root), str(out), "--format", "keep", "--shard-size", "16", "--workers", "1",
                 *extra]) == 0
    printed = capsys.readouterr().out
    assert f"data.dataset=parquet data.root={out}" in printed and "mean " in printed
    index = {w: i for i, w in enumerate(WNIDS)}  # train's sorted class folders
    for split in ("train", "val"):
        assert json.loads((out / split / "classes.json").read_text()) == index
        assert json.loads((out / split / MANIFEST).read_text())["extra"]["classes"] == WNIDS
    val = _rows(out / "val")
    assert sorted(val["path"]) == sorted(f"{k}.JPEG" for k in truth)
    assert all(lab == index[truth[p.split(".")[0]]] for p, lab in zip(val["path"], val["label"]))
    train = _rows(out / "train")
    assert all(lab == index[p.split("/")[0]] for p, lab in zip(train["path"], train["label"]))
    for p, h, w in zip(val["path"], val["height"], val["width"]):
        with Image.open(root / "val" / p) as im:
            assert im.size == (w, h)


def test_label_file_that_does_not_match_is_one_line(photos, tmp_path: Path, capsys) -> None:
    root, truth = _imagenet(tmp_path / "imagenet", photos)
    csv_file, out = root / "LOC_val_solution.csv", tmp_path / "out"
    lines = csv_file.read_text().splitlines()
    csv_file.write_text("\n".join(lines[:-1]) + "\n")  # the last val file has no row
    err = _one_line_error(["data", "convert", str(root), str(out)], capsys)
    assert "LOC_val_solution.csv: has no row for" in err and "ILSVRC2012_val_00000030.JPEG" in err
    csv_file.write_text("\n".join([*lines, "ILSVRC2012_val_00000099,n01440764 1 2 3 4"]) + "\n")
    assert "lists ILSVRC2012_val_00000099, which has no file" in _one_line_error(
        ["data", "convert", str(root), str(out)], capsys)
    csv_file.write_text("\n".join([*lines[:-1], lines[-1].replace(truth["ILSVRC2012_val_00000030"], "n99999999")]))
    assert "labelled n99999999, which is not among the 20 train classes" in _one_line_error(
        ["data", "convert", str(root), str(out)], capsys)
    assert not out.exists() or not list(out.rglob("shard-*"))  # checked before any shard is written
    csv_file.unlink()
    assert "no class sub-folders and no label file" in _one_line_error(["data", "convert", str(root), str(out)],
                                                                      capsys)
    root, _ = _imagenet(tmp_path / "devkit", photos, "devkit")
    (root / "val" / "ILSVRC2012_val_00000005.JPEG").unlink()
    err = _one_line_error(["data", "convert", str(root), str(out), "--val-labels", str(root / "devkit")], capsys)
    assert "ILSVRC2012_validation_ground_truth.txt: 30 labels for 29 image files" in err


def test_flat_folder_without_classes_is_one_line(photos, tmp_path: Path, capsys) -> None:
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.jpg").write_bytes(_crop(photos, np.random.default_rng(0)))
    err = _one_line_error(["data", "convert", str(tmp_path / "flat"), str(tmp_path / "o")], capsys)
    assert "flat: no class sub-folders (1 image files directly in it)" in err
    err = _one_line_error(["data", "convert", str(tmp_path / "flat"), "s3://bucket/shards"], capsys)
    assert "OUT s3://bucket/shards: conversion reads and writes local or mounted folders" in err


def test_resize_keeps_aspect_and_never_upscales(photos, tmp_path: Path) -> None:
    src = _class_tree(tmp_path / "src", photos, WNIDS[:4], 6)
    m = convert_image_folder(src, tmp_path / "out", 8, "png", resize=60, workers=1)
    rows = _rows(tmp_path / "out")
    assert m.image_size is None and m.extra["resize"] == {"shorter_side": 60, "center_crop": False}
    for p, h, w in zip(rows["path"], rows["height"], rows["width"]):
        with Image.open(src / p) as im:
            sw, sh = im.size
        if min(sw, sh) <= 60:
            assert (h, w) == (sh, sw), p  # already small enough: untouched
        else:
            assert min(h, w) == 60 and abs(max(h, w) - max(sh, sw) * 60 / min(sh, sw)) <= 1, p
    sq = convert_image_folder(src, tmp_path / "sq", 8, "png", resize=60, center_crop=True, workers=1)
    assert sq.image_size == [60, 60]  # smaller sources are scaled up here


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_mean_std_equal_numpy_over_the_stored_images(photos, tmp_path: Path, fmt: str) -> None:
    src = _class_tree(tmp_path / "src", photos, WNIDS[:3], 5)  # one grey image among colour ones
    m = convert_image_folder(src, tmp_path / "out", 6, fmt, resize=50, workers=1)
    images = _rows(tmp_path / "out", ("image",))["image"]
    px = np.concatenate([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")).reshape(-1, 3) for b in images]) / 255
    tol = 1e-5 if fmt == "png" else 2e-3  # jpeg: statistics of the pixels before encoding
    assert m.channels == 3 and np.allclose(m.mean, px.mean(0), atol=tol) and np.allclose(m.std, px.std(0), atol=tol)


def test_keep_verifies_at_one_eighth_scale(photos, tmp_path: Path) -> None:
    src = _class_tree(tmp_path / "src", photos, WNIDS[:3], 5)
    m = convert_image_folder(src, tmp_path / "out", 6, "keep", workers=1)
    assert m.extra["stats_from"] == "1/8-scale decode"
    rows = _rows(tmp_path / "out", ("path", "image"))
    assert all(b == (src / p).read_bytes() for p, b in zip(rows["path"], rows["image"]))
    px = np.concatenate([np.asarray(Image.open(src / p).convert("RGB")).reshape(-1, 3) for p in rows["path"]]) / 255
    assert np.allclose(m.mean, px.mean(0), atol=0.01) and np.allclose(m.std, px.std(0), atol=0.02)


def test_workers_do_not_change_the_shards(photos, tmp_path: Path) -> None:
    src = _class_tree(tmp_path / "src", photos, WNIDS[:5], 8)
    one = convert_image_folder(src, tmp_path / "w1", 7, "jpeg", resize=48, workers=1)
    two = convert_image_folder(src, tmp_path / "w2", 7, "jpeg", resize=48, workers=2)
    assert one == two and len(one.shards) == 6
    for s in one.shards:
        assert (tmp_path / "w1" / s.file).read_bytes() == (tmp_path / "w2" / s.file).read_bytes()


def _shards(out: Path) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(out.glob("shard-*.parquet"))}


def test_rerun_after_a_kill_writes_only_the_missing_shard(photos, tmp_path: Path, monkeypatch) -> None:
    src = _class_tree(tmp_path / "src", photos, WNIDS[:4], 5)
    convert_image_folder(src, tmp_path / "ref", 4, "png", workers=1)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if killed after the shards, before manifest.json

    with monkeypatch.context() as mp:
        mp.setattr(convert_shards, "merge_split", killed)
        with pytest.raises(KeyboardInterrupt):
            convert_image_folder(src, tmp_path / "out", 4, "png", workers=1)
    out = tmp_path / "out"
    assert not (out / MANIFEST).exists() and (out / ".convert" / "plan.json").exists()
    (out / "shard-00002.parquet").unlink()
    before = _shards(out)
    with pytest.raises(DataError, match=r"unfinished conversion with other settings \(seed: 0, now 1\)"):
        convert_image_folder(src, out, 4, "png", seed=1, workers=1)
    convert_image_folder(src, out, 4, "png", workers=2)  # the same command (any worker count) finishes it
    after = _shards(out)
    assert [n for n in after if before.get(n, (0,))[0] != after[n][0]] == ["shard-00002.parquet"]
    assert {n: b for n, (_, b) in after.items()} == {n: b for n, (_, b) in _shards(tmp_path / "ref").items()}
    assert (out / MANIFEST).read_bytes() == (tmp_path / "ref" / MANIFEST).read_bytes()
    assert not list(out.glob(".*"))  # plan and markers gone once manifest.json is written


def test_corrupt_file_refused_then_skipped_and_listed(photos, tmp_path: Path, capsys, caplog) -> None:
    src = _class_tree(tmp_path / "src", photos, WNIDS[:4], 5)
    good = (src / WNIDS[1] / f"{WNIDS[1]}_2.JPEG").read_bytes()
    (src / WNIDS[1] / f"{WNIDS[1]}_2.JPEG").write_bytes(good[: len(good) // 2])  # truncated
    (src / WNIDS[3] / "notes.jpg").write_bytes(b"not an image")
    out = tmp_path / "out"
    argv = ["data", "convert", str(src), str(out), "--format", "keep", "--shard-size", "4", "--workers", "1"]
    err = _one_line_error(argv, capsys)
    assert "not a readable image" in err and ("notes.jpg" in err or f"{WNIDS[1]}_2.JPEG" in err)
    kept = _shards(out)
    with caplog.at_level(logging.WARNING):
        assert main([*argv, "--on-corrupt", "skip"]) == 0
    printed = capsys.readouterr().out
    assert "2 files skipped as unreadable, listed in" in printed
    assert "notes.jpg: skipped" in caplog.text and f"{WNIDS[1]}_2.JPEG: skipped" in caplog.text
    m = json.loads((out / MANIFEST).read_text())
    assert sorted(s["path"] for s in m["extra"]["skipped"]) == [f"{WNIDS[1]}/{WNIDS[1]}_2.JPEG",
                                                                 f"{WNIDS[3]}/notes.jpg"]
    assert m["total"] == 19 and all(_shards(out)[n][0] == t for n, (t, _) in kept.items())  # earlier shards kept


def test_class_folder_pairs_and_an_unlabelled_test_folder(photos, tmp_path: Path, caplog) -> None:
    root = tmp_path / "pairs"
    _class_tree(root / "train", photos, WNIDS[:3], 3)
    _class_tree(root / "val", photos, WNIDS[1:3], 2, seed=1)  # a subset of train's classes
    (root / "test").mkdir()
    (root / "test" / "x.JPEG").write_bytes(_crop(photos, np.random.default_rng(5)))  # Kaggle: flat, unlabelled
    with caplog.at_level(logging.WARNING):
        ms = convert(str(root), tmp_path / "out", 4, "keep", workers=1)
    assert set(ms) == {"train", "val"} and "test: flat image files without labels" in caplog.text
    assert json.loads((tmp_path / "out" / "val" / "classes.json").read_text()) == {w: i for i, w in
                                                                                  enumerate(WNIDS[:3])}
    assert sorted(_rows(tmp_path / "out" / "val")["label"]) == [1, 1, 2, 2]
    assert ms["train"].extra["skipped"] == [] and ms["val"].num_classes == 3
