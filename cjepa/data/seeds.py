"""Seeds derived from integers, shared by the loaders (torch-free)."""

from __future__ import annotations

import hashlib


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers; hashing keeps (seed, step) streams uncorrelated.

    ``manual_seed(seed + step)`` would make run (seed=1, step=0) replay run (seed=0, step=1).
    """
    h = hashlib.blake2b(b"".join(int(p).to_bytes(16, "little", signed=True) for p in parts), digest_size=8)
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)
