"""What ``cjepa data convert SRC`` finds in SRC: one image folder (one sub-folder per class), or a
train/val (or train/test) pair in ImageNet's layout, whose val/ may be flat with a label file.

Layouts understood:

* ``SRC/<class>/**.jpg``: one split.
* ``SRC/train/<wnid>/*.JPEG`` plus ``SRC/val/`` and/or ``SRC/test/``, each either class folders or
  flat files labelled by ``LOC_val_solution.csv`` (Kaggle: ``ImageId,PredictionString``, the first
  token of PredictionString is the wnid) or by the ILSVRC2012 devkit
  (``ILSVRC2012_validation_ground_truth.txt``: one ILSVRC2012_ID per line for the val files in
  sorted name order, and ``meta.mat``: ILSVRC2012_ID -> WNID). Both splits share train's class
  index (its sorted class folders), so label i means the same class in each.

Label files are checked in full before anything is converted (a file listed but missing, a file
without a label, a wnid that is not a train class, counts that differ): a half-labelled val split
would quietly bias every evaluation, so the first mismatch stops the run with the file named.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from cjepa.errors import DataError

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
EVAL_SPLITS = ("val", "test")
LOC_CSV = "LOC_val_solution.csv"
DEVKIT_TXT, DEVKIT_META = "ILSVRC2012_validation_ground_truth.txt", "meta.mat"


@dataclass
class SplitSource:
    """One split to convert: ``files`` are (path relative to ``root``, label), sorted by path."""

    name: str  # "" for a single folder, else train / val / test
    root: Path
    files: list[tuple[str, int]]
    classes: list[str]
    labels_from: str  # "class folders", or the label file


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()


def class_dirs(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_class_folders(src: Path, classes: list[str] | None = None, name: str = "") -> SplitSource:
    """Class names (sorted sub-folders, or the given list) and (file, label) pairs, sorted."""
    if not src.is_dir():
        raise DataError(f"{src}: not a folder (expected one sub-folder per class)")
    found = class_dirs(src)
    if not found:
        flat = sum(1 for p in src.iterdir() if _is_image(p))
        raise DataError(f"{src}: no class sub-folders ({flat} image files directly in it); expected one "
                        "sub-folder per class, or train/ and val/ with a label file for a flat val/")
    classes = classes or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise DataError(f"{src}: classes {', '.join(unknown[:5])} are not among the training classes")
    files = [(p.relative_to(src).as_posix(), label) for label, c in enumerate(classes) if (src / c).is_dir()
             for p in sorted((src / c).rglob("*")) if _is_image(p)]
    if not files:
        raise DataError(f"{src}: no {'/'.join(IMAGE_SUFFIXES)} files in class sub-folders")
    return SplitSource(name, src, files, list(classes), "class folders")


def find_label_file(root: Path, given: Path | None) -> Path | None:
    """--val-labels, else LOC_val_solution.csv in SRC or up to three folders above it (Kaggle keeps
    it at the top, SRC is often ILSVRC/Data/CLS-LOC), else an unpacked devkit in SRC."""
    if given is not None:
        if not given.exists():
            raise DataError(f"--val-labels {given}: not found")
        return given
    for d in [root, *list(root.resolve().parents)[:3]]:
        if (d / LOC_CSV).is_file():
            return d / LOC_CSV
    for d in (root / "ILSVRC2012_devkit_t12" / "data", root / "devkit" / "data", root):
        if (d / DEVKIT_TXT).is_file():
            return d / DEVKIT_TXT
    return None


def read_loc_csv(path: Path) -> dict[str, str]:
    """``LOC_val_solution.csv`` -> {image id (file stem): wnid}."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    if not rows or [c.strip() for c in rows[0][:2]] != ["ImageId", "PredictionString"]:
        got = ",".join(rows[0]) if rows else ""
        raise DataError(f"{path}: expected a header ImageId,PredictionString, got {got!r}")
    labels: dict[str, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        if len(row) < 2 or not row[1].split():
            raise DataError(f"{path} line {line}: expected ImageId,PredictionString (wnid first), got {row}")
        labels[row[0].strip()] = row[1].split()[0]
    return labels


def read_devkit(path: Path) -> tuple[Path, list[str]]:
    """The devkit's ground truth (a folder holding it, or the txt) -> (txt, wnid per line)."""
    txt = path / DEVKIT_TXT if path.is_dir() else path
    if path.is_dir() and not txt.is_file() and (path / "data" / DEVKIT_TXT).is_file():
        txt = path / "data" / DEVKIT_TXT
    meta = txt.with_name(DEVKIT_META)
    for f in (txt, meta):
        if not f.is_file():
            raise DataError(f"{f}: not found (the ILSVRC2012 devkit's data/ folder holds {DEVKIT_TXT} and "
                            f"{DEVKIT_META})")
    from scipy.io import loadmat  # only here: scipy loads slowly

    try:
        synsets = loadmat(str(meta), squeeze_me=True)["synsets"].ravel()
        wnid_of = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets}
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise DataError(f"{meta}: not the devkit's meta.mat (a 'synsets' struct with ILSVRC2012_ID and WNID): "
                        f"{exc}") from None
    wnids = []
    for line, text in enumerate(txt.read_text().split(), start=1):
        if not text.isdigit() or int(text) not in wnid_of:
            raise DataError(f"{txt} line {line}: ILSVRC2012_ID {text!r} is not in {meta.name}")
        wnids.append(wnid_of[int(text)])
    return txt, wnids


def label_flat_split(d: Path, classes: list[str], label_file: Path) -> SplitSource:
    """Flat image files in ``d`` labelled by a LOC csv or the devkit; any mismatch names the file."""
    files = sorted(p.name for p in d.iterdir() if _is_image(p))
    index = {c: i for i, c in enumerate(classes)}
    if label_file.suffix.lower() == ".csv":
        by_id = read_loc_csv(label_file)
        stems = {Path(f).stem: f for f in files}
        missing = next((i for i in by_id if i not in stems), None)
        if missing is not None:
            raise DataError(f"{label_file}: lists {missing}, which has no file in {d} ({len(by_id)} rows, "
                            f"{len(files)} files)")
        unlabelled = next((f for f in files if Path(f).stem not in by_id), None)
        if unlabelled is not None:
            raise DataError(f"{label_file}: has no row for {d / unlabelled} ({len(by_id)} rows, {len(files)} files)")
        wnids = [by_id[Path(f).stem] for f in files]
    else:
        label_file, wnids = read_devkit(label_file)
        if len(wnids) != len(files):
            raise DataError(f"{label_file}: {len(wnids)} labels for {len(files)} image files in {d} (one line per "
                            "file in sorted name order); the counts must agree")
    bad = next((k for k, w in enumerate(wnids) if w not in index), None)
    if bad is not None:
        raise DataError(f"{label_file}: {files[bad]} is labelled {wnids[bad]}, which is not among the "
                        f"{len(classes)} train classes")
    return SplitSource(d.name, d, [(f, index[w]) for f, w in zip(files, wnids)], classes, str(label_file))


def find_splits(root: Path, val_labels: Path | None = None) -> list[SplitSource]:
    """The splits in ``root``: [train, val and/or test] for a train/ + val/ or test/ layout, else
    one split (``name=""``) for a plain image folder."""
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (expected one sub-folder per class)")
    evals = [s for s in EVAL_SPLITS if (root / s).is_dir()]
    if not ((root / "train").is_dir() and evals):
        if val_labels is not None:
            raise DataError(f"--val-labels {val_labels}: {root} has no train/ and val/ folders to label")
        return [scan_class_folders(root)]
    train = scan_class_folders(root / "train", name="train")
    splits = [train]
    for name in evals:
        d = root / name
        if class_dirs(d):
            splits.append(scan_class_folders(d, train.classes, name))
            continue
        label_file = find_label_file(root, val_labels) if name == "val" else None
        if label_file is not None:
            splits.append(label_flat_split(d, train.classes, label_file))
        elif name == "test" and "val" in evals:  # Kaggle/ILSVRC test/: flat and unlabelled by design
            log.warning("%s: flat image files without labels (ImageNet's test set has none); not converted", d)
        else:
            raise DataError(f"{d}: no class sub-folders and no label file; expected {name}/<class>/ folders, "
                            f"{LOC_CSV} in {root}, or --val-labels (the devkit's data/ folder or {DEVKIT_TXT})")
    return splits
