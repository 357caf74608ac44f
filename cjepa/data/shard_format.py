"""The Parquet image-shard format: ``manifest.json`` (:class:`Manifest`), the class list, decoding.

Shared by the writer (convert.py) and the reader (shards.py), so that neither imports the other.

A shard has the columns ``image`` (binary: PNG/JPEG bytes), ``label`` (int32), ``path`` (string,
relative to the split's source) and, when written by ``cjepa data convert`` since the ImageNet
import, ``height``/``width`` (int32, the stored image's size, so a reader can plan crops without
decoding; :data:`SIZE_COLUMNS`). Stored images may be grey ("L") in a 3-channel split: decode with
the manifest's mode (``decode_image`` converts).
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from cjepa.errors import DataError

# What PIL raises on corrupt or truncated data (UnidentifiedImageError is an OSError).
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error, Image.DecompressionBombError)
MANIFEST, CLASSES = "manifest.json", "classes.json"
FORMAT_NAME, FORMAT_VERSION = "cjepa-parquet-images", 1
SIZE_COLUMNS = ("height", "width")  # optional: older shards lack them


@dataclass
class ShardInfo:
    file: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    """``manifest.json``. ``image_size`` is [H, W] when all images share it, else None.

    ``extra`` (written by ``cjepa data convert``; absent from older manifests): ``classes`` (the
    class index, shared by a train/val pair), ``labels_from``, ``resize``, ``stats_from`` (how
    mean/std were measured), ``seed``, ``columns`` and ``skipped`` ([{path, error}] of files left
    out with ``--on-corrupt skip``).
    """

    shards: list[ShardInfo]
    total: int
    num_classes: int
    image_format: str  # png | jpeg | keep
    channels: int  # 1: all sources grey ("L"), else 3 ("RGB")
    image_size: list[int] | None
    min_size: list[int]
    max_size: list[int]
    mean: list[float]  # per channel, of pixels / 255 (computed at conversion)
    std: list[float]
    source: str = ""
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            d = json.loads(text)
            if d.get("format") != FORMAT_NAME or d.get("version") != FORMAT_VERSION:
                raise ValueError(f"not a {FORMAT_NAME} v{FORMAT_VERSION} manifest")
            m = cls(**{**d, "shards": [ShardInfo(**s) for s in d["shards"]]})
        except (ValueError, TypeError, KeyError) as exc:
            raise DataError(f"{where}: unreadable {MANIFEST} ({exc})") from None
        if sum(s.rows for s in m.shards) != m.total:
            raise DataError(f"{where}: {MANIFEST}: shard rows do not add up to the total {m.total}")
        return m


def decode_image(data: bytes, mode: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """Encoded bytes -> (H, W) or (H, W, 3) uint8 in ``mode`` ("L"/"RGB"); ``size=(H, W)``:
    other sizes are resized (shorter side, bilinear) and centre-cropped to it."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert(mode)  # forces the full decode: corrupt data raises here
    if size is not None and im.size != (size[1], size[0]):
        h, w = size
        scale = max(h / im.height, w / im.width)
        im = im.resize((max(w, round(im.width * scale)), max(h, round(im.height * scale))), Image.BILINEAR)
        left, top = (im.width - w) // 2, (im.height - h) // 2
        im = im.crop((left, top, left + w, top + h))
    return np.asarray(im)
