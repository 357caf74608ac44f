"""The evaluation's speed settings (eval.batch_size, eval.precision) leave its results in place.

fp32 features must not depend on the extraction batch (to 1e-5), so every metric of an fp32
evaluation is the same at batch 7 and 512. bf16 extraction (the default on CPUs with native
bf16) rounds each matmul's inputs to 8 mantissa bits: features move by ~1e-3 relative (measured
7e-4 on the quick preset's ViT), which can flip only the few test images that lie on a decision
boundary. On digits (297 test images, one image = 0.34 points) we allow 2 points of kNN and
linear-probe accuracy and 5 % on the encoders' collapse figures (the predictor-spread figures stay
fp32, hence equal); docs/benchmarks.md ("Evaluation cost") has the differences measured on the
quick study's Fashion-MNIST sets.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cjepa.config import load_config
from cjepa.engine import precision
from cjepa.engine.evaluation import Evaluator
from cjepa.engine.precision import eval_autocast
from cjepa.engine.trained import load_method
from cjepa.engine.trainer import train
from cjepa.errors import ConfigError
from cjepa.method import CJEPA
from tests.conftest import tiny_overrides

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
EVAL = ["eval.linear_epochs=20", "eval.poolings=[mean,grid2]", "eval.raw_baseline=false"]


def test_eval_precision_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert eval_autocast("fp32", CUDA, torch.bfloat16) is None  # the fp32 switch wins over training's
    assert eval_autocast("bf16", CPU, None) is torch.bfloat16
    assert eval_autocast("auto", CUDA, torch.bfloat16) is torch.bfloat16  # follows training
    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: True)
    assert eval_autocast("auto", CPU, None) is torch.bfloat16
    monkeypatch.setattr(precision, "native_cpu_bf16", lambda: False)
    assert eval_autocast("auto", CPU, None) is None  # emulated bf16 would be slower than fp32


@pytest.mark.parametrize("bad", ["eval.precision=fp16", "eval.batch_size=0"])
def test_bad_eval_speed_settings_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ConfigError, match=bad.split("=")[0].replace(".", r"\.")):
        load_config(None, tiny_overrides(tmp_path, bad))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CJEPA]:
    """A tiny model after one epoch on digits (features of a trained net, not of its init)."""
    run = tmp_path_factory.mktemp("evalprec") / "run"
    cfg = load_config(None, tiny_overrides(run, "run.epochs=1"))
    train(cfg)
    return run, load_method(run)[1]


def _evaluator(run: Path, *extra: str) -> Evaluator:
    return Evaluator(load_config(None, tiny_overrides(run, *EVAL, *extra)), CPU)


def test_fp32_evaluation_does_not_depend_on_the_batch(trained: tuple[Path, CJEPA]) -> None:
    run, model = trained
    small, big = (_evaluator(run, "eval.precision=fp32", f"eval.batch_size={b}") for b in (7, 512))
    assert small.autocast_dtype is None and big.autocast_dtype is None
    for encoder in (model.target, model.encoder):
        a, b = small._features(encoder, small.test_x), big._features(encoder, big.test_x)
        for pooling in ("mean", "grid2"):
            torch.testing.assert_close(a[pooling], b[pooling], rtol=0, atol=1e-5)
    m_small, m_big = small.evaluate(model), big.evaluate(model)
    assert m_small.keys() == m_big.keys()
    for key in m_small:
        if key.startswith(("knn_", "linear_", "rand_")):
            assert m_small[key] == m_big[key], key
        else:  # collapse figures from features equal to 1e-5
            assert m_small[key] == pytest.approx(m_big[key], rel=1e-4, abs=1e-6), key


@pytest.mark.integration
def test_bf16_evaluation_tracks_fp32(trained: tuple[Path, CJEPA]) -> None:
    run, model = trained
    fp32, bf16 = _evaluator(run, "eval.precision=fp32"), _evaluator(run, "eval.precision=bf16")
    assert bf16.autocast_dtype is torch.bfloat16
    ref, low = fp32._features(model.target, fp32.test_x)["mean"], bf16._features(model.target, bf16.test_x)["mean"]
    rel = float((low - ref).norm() / ref.norm())
    assert 0 < rel < 1e-2, rel  # autocast ran, and moved the features by rounding only
    a, b = fp32.evaluate(model), bf16.evaluate(model)
    assert a.keys() == b.keys()
    for key in a:
        if key.startswith(("knn_", "linear_", "rand_")):
            assert abs(a[key] - b[key]) <= 0.02, (key, a[key], b[key])
        elif key.startswith("pred_"):  # the predictor spread stays in fp32 whatever eval.precision
            assert a[key] == b[key], key
        elif not key.endswith("offdiag_corr"):  # |corr| near 0 has no relative scale
            assert b[key] == pytest.approx(a[key], rel=0.05), key
        else:
            assert abs(a[key] - b[key]) <= 0.01, key


def test_bf16_random_baseline_has_its_own_cache_entry(trained: tuple[Path, CJEPA]) -> None:
    import json

    run, _ = trained
    _evaluator(run, "eval.precision=fp32")
    _evaluator(run, "eval.precision=bf16")
    keys = json.loads((run.parent / "cache" / "raw_baselines.json").read_text())
    init = [k for k in keys if k.startswith("init:")]
    assert len(init) == 2 and not [k for k in keys if k.startswith("raw:")]  # this run has no raw baseline
    assert init[0].rsplit(":", 1)[0] == init[1].rsplit(":", 1)[0]  # the same images, another hash
