"""Per-epoch evaluation: baselines beside the encoders, spatial read-outs, the CPU-minute budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from cjepa.config import load_config
from cjepa.engine.trainer import train
from tests.conftest import tiny_overrides

EVAL = ["eval.every=1", "eval.train_samples=400", "eval.test_samples=200", "eval.linear_epochs=5",
        "eval.poolings=[mean,grid2]", "run.epochs=1"]


def test_random_init_baseline_is_the_untrained_target(tmp_path: Path) -> None:
    """With momentum 1 the target never leaves its initialisation, so its scores must equal the
    random-initialised baseline exactly: the baseline rebuilds the very weights the run started from."""
    cfg = load_config(None, tiny_overrides(tmp_path / "run", *EVAL, "ema.start=1.0", "ema.end=1.0"))
    final = train(cfg).history[-1]
    for suffix in ("", "_grid2"):
        assert final[f"knn_target{suffix}"] == final[f"rand_knn_acc{suffix}"]
        assert final[f"linear_target{suffix}"] == final[f"rand_linear_acc{suffix}"]
    assert final["knn_context"] != final["rand_knn_acc"]  # the online encoder did train
    assert final["train_cpu_min"] > 0


@pytest.mark.integration
def test_random_init_baseline_is_cached_per_seed(tmp_path: Path) -> None:
    import json

    a = train(load_config(None, tiny_overrides(tmp_path / "a", *EVAL))).history[-1]
    b = train(load_config(None, tiny_overrides(tmp_path / "b", *EVAL))).history[-1]
    c = train(load_config(None, tiny_overrides(tmp_path / "c", *EVAL, "run.seed=1"))).history[-1]
    assert a["rand_knn_acc"] == b["rand_knn_acc"] and a["rand_knn_acc_grid2"] == b["rand_knn_acc_grid2"]
    cache = json.loads((tmp_path / "cache" / "raw_baselines.json").read_text())
    assert sum(key.startswith("init:") for key in cache) == 2  # seeds 0 and 1: other weights, other entry
    assert sum(key.startswith("raw:") for key in cache) == 2  # the pixels' probe runs under the run's seed too
    assert c["rand_linear_acc"] != a["rand_linear_acc"] or c["rand_knn_acc"] != a["rand_knn_acc"]


@pytest.mark.parametrize("bad,words", [("eval.poolings=[grid2]", "must include 'mean'"),
                                       ("eval.poolings=[mean,grid9]", "1 <= K <= 8"),
                                       ("eval.poolings=[mean,spatial]", "'spatial'"),
                                       ("data.hflip=1.5", "data.hflip")])
def test_bad_readouts_are_refused(tmp_path: Path, bad: str, words: str) -> None:
    from cjepa.errors import ConfigError

    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        load_config(None, tiny_overrides(tmp_path, bad))
