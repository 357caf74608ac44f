"""Feature extraction for ``cjepa eval`` spread over Ray workers (a GPU each when asked).

Each task reads its own slice ``[lo, hi)`` of a set (Parquet rows or in-memory images: nothing
but the checkpoint path and the config travel), loads the run from the checkpoint path (shared
storage, as Ray Train's checkpoints), encodes the slice on its device and returns the pooled
features; the driver concatenates the slices in order, so the result equals one process's
(:func:`cjepa.engine.offline_eval.encode_set`, checked by tests/distributed/test_eval_ray.py).
Ray Data's ``map_batches`` would do the same with more moving parts (a Dataset over our own shard
reader and a model actor pool); slices of a known length need only tasks.
"""

from __future__ import annotations

from typing import Any

import torch

from cjepa.engine.eval_sets import set_size
from cjepa.engine.offline_eval import Extract, encode_set
from cjepa.engine.trained import Trained


def _encode_slice(path: str, cfg_dict: dict[str, Any], encoder: str, which: str, lo: int,
                  hi: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    from cjepa.config import from_dict
    from cjepa.engine.trained import load_trained

    run = load_trained(path)
    run.cfg = from_dict(cfg_dict)  # the driver's evaluation settings
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return encode_set(run, encoder, which, lo, hi, device=device)


def ray_extractor(workers: int, use_gpu: bool = False) -> Extract:
    """An :data:`~cjepa.engine.offline_eval.Extract` that encodes each set in ``workers`` Ray tasks."""
    import ray

    task = ray.remote(num_cpus=1, num_gpus=1 if use_gpu else 0)(_encode_slice)

    def extract(run: Trained, encoder: str, which: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        n = set_size(run.cfg, which)
        bounds = [round(i * n / workers) for i in range(workers + 1)]
        parts = ray.get([task.remote(str(run.path), run.cfg.to_dict(), encoder, which, lo, hi)
                         for lo, hi in zip(bounds, bounds[1:]) if hi > lo])
        feats = {p: torch.cat([f[p] for f, _ in parts]) for p in parts[0][0]}
        return feats, torch.cat([labels for _, labels in parts])

    return extract
