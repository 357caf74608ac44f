"""Raw-pixel baseline: kNN and linear probe on flattened, normalised pixels.

Why: an SSL encoder is only useful if its frozen features beat the pixels it was fed. Using the
very same :func:`knn_accuracy` and :func:`linear_probe_accuracy` as for the encoders keeps the
numbers comparable. The baseline depends only on the data split, not on the run, so it is computed
once per dataset and cached in a small JSON file shared by every trial of a sweep.

Cache format: ``{cache_key: {"raw_knn_acc", "raw_linear_acc", "k", "temperature",
"linear_epochs"}}``. An entry is reused only when its k / temperature / epochs match the call;
the caller's ``cache_key`` must identify the data: the evaluator's keys hash the images' ids and
every setting (:func:`cjepa.engine.eval_sets.cache_key`). Writes go to a
temporary file then ``os.replace``, so a reader never sees half a file even when parallel trials
write at once (the last writer wins; a lost entry is merely recomputed). A corrupt or foreign file
is ignored and rewritten instead of crashing an evaluation. :func:`cached_scores` is the same
cache for any other per-dataset score (the random-initialised encoder's, keyed by its config).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from cjepa.atomic import atomic_write
from cjepa.eval.knn import knn_accuracy
from cjepa.eval.linear_probe import linear_probe_accuracy


def raw_pixel_baseline(
    train_x: Tensor,
    train_y: Tensor,
    test_x: Tensor,
    test_y: Tensor,
    k: int = 20,
    temperature: float = 0.07,
    linear_epochs: int = 100,
    lr: float = 1e-2,
    seed: int = 0,
    cache_file: str | Path | None = None,
    cache_key: str = "",
) -> dict[str, float]:
    """``{"raw_knn_acc", "raw_linear_acc"}`` of (N, ...) images flattened to (N, C*H*W).

    ``linear_epochs = 0`` skips the probe (``raw_linear_acc`` is NaN), matching
    ``eval.linear_epochs = 0`` meaning "no probe". ``lr`` and ``seed`` are the probe's, the same
    as the encoders' (``eval.linear_lr``, ``run.seed``), so the two read-outs differ only in input.
    """
    params = {"k": k, "temperature": temperature, "linear_epochs": linear_epochs, "lr": lr, "seed": seed}

    def compute() -> dict[str, float]:
        tr = train_x.reshape(train_x.shape[0], -1).float()
        te = test_x.reshape(test_x.shape[0], -1).float()
        result = {"raw_knn_acc": knn_accuracy(tr, train_y, te, test_y, k=k, temperature=temperature)}
        if linear_epochs > 0:
            result["raw_linear_acc"] = linear_probe_accuracy(tr, train_y, te, test_y, epochs=linear_epochs, lr=lr,
                                                             seed=seed)["acc"]
        else:
            result["raw_linear_acc"] = math.nan
        return result

    return cached_scores(cache_file, cache_key, params, ("raw_knn_acc", "raw_linear_acc"), compute)


def cached_scores(cache_file: str | Path | None, cache_key: str, params: dict[str, Any], names: tuple[str, ...],
                  compute: Callable[[], dict[str, float]]) -> dict[str, float]:
    """``compute()``, or its cached result when ``cache_key`` holds every name with the same params.

    Shared by the raw-pixel and the random-initialised-encoder baselines (module docstring).
    """
    path = Path(cache_file).expanduser() if cache_file is not None else None
    hit = (_read_cache(path) if path is not None else {}).get(cache_key)
    if _valid_entry(hit, params, names):
        return {name: float(hit[name]) for name in hit if name not in params}
    result = compute()
    if path is not None:
        cache = _read_cache(path)  # re-read: another trial may have added keys meanwhile
        cache[cache_key] = {**result, **params}
        _write_atomic(path, cache)
    return result


def _valid_entry(entry: Any, params: dict[str, Any], names: tuple[str, ...]) -> bool:
    if not isinstance(entry, dict):
        return False
    if any(entry.get(name) != value for name, value in params.items()):
        return False
    return all(isinstance(entry.get(name), (int, float)) for name in names)


def _read_cache(path: Path) -> dict[str, Any]:
    """The cache dict, or {} when the file is missing, unreadable, not JSON or not a JSON object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda fh: json.dump(data, fh, indent=2, sort_keys=True), binary=False)
