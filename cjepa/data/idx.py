"""A small, strict reader for the idx format used by (Fashion-)MNIST.

Why our own and not torchvision's: torchvision's reader wants its own folder layout and turns a
corrupt file into a numpy/struct traceback. Here every problem with a file (unreadable gzip,
wrong magic number, truncated payload) becomes a :class:`~cjepa.errors.DataError` that names the
file and says what is wrong, so the CLI can print one line.

Format: 4-byte magic ``0x00 0x00 <dtype code> <ndim>`` then ``ndim`` big-endian uint32 sizes, then
the payload, big-endian, C order. MNIST images have magic 2051 (ubyte, 3 dims), labels 2049
(ubyte, 1 dim).
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

from cjepa.errors import DataError

IMAGES_MAGIC = 2051  # 0x0803: unsigned bytes, 3 dims (N, rows, cols)
LABELS_MAGIC = 2049  # 0x0801: unsigned bytes, 1 dim (N,)

_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: corrupt or truncated gzip data ({exc}); delete it and fetch it again") \
            from None


def parse_idx(buf: bytes, name: str, expected_magic: int | None = None) -> np.ndarray:
    """Decode an idx payload held in memory; ``name`` is used in error messages."""
    if len(buf) < 4:
        raise DataError(f"{name}: only {len(buf)} bytes, too short for an idx header")
    magic = int.from_bytes(buf[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        raise DataError(f"{name}: wrong magic number {magic} (expected {expected_magic}); "
                        "not an idx file of the expected kind")
    zero, code, ndim = int.from_bytes(buf[:2], "big"), buf[2], buf[3]
    if zero != 0 or code not in _DTYPES or ndim == 0:
        raise DataError(f"{name}: bad idx magic number {magic} (bytes {buf[:4].hex()}); not an idx file")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(f"{name}: truncated header ({len(buf)} bytes, {ndim} dims need {header})")
    shape = tuple(int.from_bytes(buf[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    dtype = _DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(buf) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataError(f"{name}: {what}: header says shape {shape} ({expected} bytes of data), "
                        f"file has {found}")
    arr = np.frombuffer(buf, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="), copy=False)


@functools.lru_cache(maxsize=8)
def _read_cached(path: str, mtime_ns: int, size: int, expected_magic: int | None) -> np.ndarray:
    del mtime_ns, size  # only part of the cache key: a replaced file is read again
    arr = parse_idx(_read_bytes(Path(path)), path, expected_magic)
    arr.setflags(write=False)  # shared by every caller in this process
    return arr


def read_idx(path: str | os.PathLike, expected_magic: int | None = None) -> np.ndarray:
    """Read an idx file (optionally gzipped), cached per process on (path, mtime, size).

    Decoding the 60k Fashion-MNIST images takes ~0.3 s; the cache makes later calls (eval sets,
    several runs in one process) free. The returned array is read-only because it is shared;
    copy it before changing it.
    """
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise DataError(f"{p}: cannot read ({exc.strerror or exc})") from None
    return _read_cached(str(p.resolve()), st.st_mtime_ns, st.st_size, expected_magic)


def write_idx(path: str | os.PathLike, arr: np.ndarray) -> None:
    """Write ``arr`` as idx (gzipped when the name ends in .gz); used by tests and tools."""
    codes = {v.newbyteorder("="): k for k, v in _DTYPES.items()}
    dtype = arr.dtype.newbyteorder("=")
    if dtype not in codes:
        raise DataError(f"{path}: dtype {arr.dtype} has no idx code")
    be = arr.astype(_DTYPES[codes[dtype]], copy=False)
    head = bytes([0, 0, codes[dtype], arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    data = head + np.ascontiguousarray(be).tobytes()
    p = Path(path)
    p.write_bytes(gzip.compress(data) if p.suffix == ".gz" else data)
