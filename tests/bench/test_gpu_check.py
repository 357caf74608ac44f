"""bench/gpu_check.py works before any GPU sees it: its dry run, its MFU/FLOP arithmetic, its limits
(the stages: ``cjepa.benchmarking.gpu_stages``; the FLOPs: ``cjepa.benchmarking.flops``).

Why: GPU time is lent rarely and briefly, so the script must be right the first time. The dry
run executes every stage on the CPU at tiny sizes (Ray is never started: stage (d) is validated
and planned) and must give the JSON keys the GPU run gives; the FLOP count behind the MFU figure
is checked against torch's FlopCounterMode; the runners must turn a hang into a recorded timeout.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
import torch

from cjepa.benchmarking.flops import analytic_flops, mfu, peak_tflops, step_flops, vit_block_flops
from cjepa.benchmarking.gpu_stages import CONFIGS, LIMITS, RESULT_KEYS, STAGES, TINY, VARIANT_KEYS
from cjepa.benchmarking.processes import TimeLimit, run_command, time_limit
from cjepa.config import load_config
from cjepa.masks import MultiBlockMaskGenerator
from tests.bench.scripts import load_script

gpu_check = load_script("gpu_check")


@pytest.fixture
def one_thread():
    """Tiny tensors: extra intra-op threads only add contention on a shared 2-core CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_mfu_arithmetic_on_known_numbers():
    assert mfu(1e12, 0.5, 4.0) == pytest.approx(0.5)  # 1e12 FLOP per 0.5 s step on a 4 TFLOP/s chip
    assert mfu(989.4e12 * 0.4, 1.0, 989.4) == pytest.approx(0.4)
    assert mfu(1e12, 0.5, None) is None and mfu(1e12, 0.0, 4.0) is None


def test_peak_lookup_by_device_name():
    assert peak_tflops("NVIDIA H200")[0] == 989.4
    assert peak_tflops("NVIDIA H100 80GB HBM3")[0] == 989.4
    assert peak_tflops("NVIDIA H100 PCIe")[0] == 756.0  # the more specific name wins
    assert peak_tflops("NVIDIA A100-SXM4-80GB")[0] == 312.0
    assert peak_tflops("Some Future Chip")[0] is None
    assert peak_tflops("NVIDIA H200", 500.0) == (500.0, "--peak-tflops")


def test_vit_block_formula_by_hand():
    n, d = 10, 64  # qkv 3d^2 + proj d^2 + MLP 8d^2 = 12 d^2 MACs per token; attention 2 n^2 d MACs
    assert vit_block_flops(n, d, 4.0) == 2 * (12 * n * d * d + 2 * n * n * d)


@pytest.mark.parametrize("beta", [0.001, 0.0])  # C-JEPA (pred_blocks) and I-JEPA
def test_analytic_flops_equal_flop_counter(beta, one_thread):
    """The closed form and FlopCounterMode on the real step agree exactly on a tiny ViT."""
    cfg = load_config(CONFIGS["cjepa"], [*TINY, f"loss.beta_vicreg={beta}"])
    m = cfg.model
    masks = MultiBlockMaskGenerator(m.img_size // m.patch_size, cfg.mask, seed=0)(8, 3)
    torch.manual_seed(0)
    batch = {"step": 0, "images": torch.randn(8, m.in_chans, m.img_size, m.img_size), "masks": masks}
    got = step_flops(cfg, batch, count_batch=4)
    assert got["counted"] > 0 and got["counted"] == pytest.approx(got["analytic"], rel=1e-12)
    parts = analytic_flops(cfg, got["context_tokens"], got["target_tokens"])
    assert (parts["vicreg_fwd"] > 0) == (beta > 0)


@pytest.mark.integration
def test_time_limit_and_subprocess_timeout(tmp_path):
    with pytest.raises(TimeLimit), time_limit(0.2):
        time.sleep(5)
    t0 = time.monotonic()
    run = run_command([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
                      tmp_path / "log", 8.0)  # Python start-up alone can take seconds on a loaded box
    assert run["timed_out"] and run["returncode"] is None and time.monotonic() - t0 < 40
    assert "started" in run["log_tail"]
    ok = run_command([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "log2", 30)
    assert ok == {**ok, "returncode": 3, "timed_out": False}


def test_a_failing_stage_is_recorded_with_its_keys(tmp_path):
    args = gpu_check.parse_args(["--dry-run", "--workdir", str(tmp_path)])
    args.shards, args.peak = str(tmp_path / "no-such-shards"), None
    rec = gpu_check.run_stage("data_pipeline", args, [], 30)
    assert rec["status"] == "failed" and "no-such-shards" in rec["error"]
    assert set(rec["results"]) == set(RESULT_KEYS["data_pipeline"])


def test_dry_run_gives_every_key(tmp_path):
    """The full dry run (the CUDA tests stage skipped here: a pytest in a pytest costs ~20 s on 2 cores)."""
    out = tmp_path / "gpu_check.json"
    t0 = time.monotonic()
    report = gpu_check.main(["--dry-run", "--peak-tflops", "0.05", "--skip", "gpu_tests", "--workdir",
                             str(tmp_path), "--out", str(out)])
    assert time.monotonic() - t0 < 120
    assert json.loads(out.read_text()) == json.loads(json.dumps(report, default=str))
    assert report["dry_run"] is True and report["schema"] == gpu_check.SCHEMA
    assert list(report["stages"]) == list(STAGES) == list(LIMITS)
    status = {k: v["status"] for k, v in report["stages"].items()}
    assert status == {"gpu_tests": "skipped", "step_eager": "ok", "step_compiled": "skipped", "shards": "ok",
                      "data_pipeline": "ok", "ray_train": "planned"}, report["stages"]
    for name, rec in report["stages"].items():
        assert set(rec) == {"status", "limit_s", "isolated", "error", "seconds", "results"}, name
        want = {"cjepa", "ijepa"} if name.startswith("step_") else set(RESULT_KEYS[name])
        assert set(rec["results"]) == want, name
    for mode in ("step_eager", "step_compiled"):
        for v in ("cjepa", "ijepa"):
            assert set(report["stages"][mode]["results"][v]) == {*VARIANT_KEYS, "error"}

    peak = report["meta"]["peak_tflops"]
    assert peak == 0.05
    for v in ("cjepa", "ijepa"):
        r = report["stages"]["step_eager"]["results"][v]
        assert r["error"] is None and r["flops_check_rel_diff"] == 0.0 and r["steps"] == 3
        seconds_per_step = r["batch_size"] / r["img_per_s"]
        assert r["flops_per_step"] == pytest.approx(r["flops_per_image"] * r["batch_size"])
        assert r["mfu"] == pytest.approx(r["flops_per_step"] / seconds_per_step / (peak * 1e12))
        assert report["summary"][f"{v}_mfu_eager"] == r["mfu"]
    assert report["stages"]["step_eager"]["results"]["cjepa"]["flops_per_image"] > \
        report["stages"]["step_eager"]["results"]["ijepa"]["flops_per_image"]  # the projector costs FLOPs

    data = report["stages"]["data_pipeline"]["results"]
    assert data["device_vs_workers_mean_abs_diff"] < 6.0 and data["loader_workers_decode_img_per_s"] > 0
    assert data["loader_device_decode_img_per_s"] > 0 and data["device_decode_img_per_s"] > 0
    ray = report["stages"]["ray_train"]["results"]
    assert ray["planned"] is True and ray["returncode"] is None  # validated, never started
    assert ray["validated"]["workers"] == 1 and ray["validated"]["train"] == 64
    assert "--use-gpu" in ray["command"] and "run.epochs=2" in ray["command"]
    assert set(report["goals"]) == {"cjepa_mfu_ge_40pct", "vicreg_overhead_le_3pct", "data_faster_than_step"}
    assert report["summary"]["stage_status"] == status
    assert "ray" not in sys.modules or not sys.modules["ray"].is_initialized()  # Ray was never started



def test_step_benchmarks_refuse_several_context_views_in_one_line():
    """The step benchmarks time the official collator's shape (one context per image): a K > 1
    config is refused by name instead of failing deep in the model with a shape error."""
    from cjepa.benchmarking.steps import make_batches

    cfg = load_config(CONFIGS["cjepa"], [*TINY, "mask.context_views=2"])
    with pytest.raises(SystemExit, match="mask.context_views=2"):
        make_batches(cfg, 4, 1, "random", seed=0)
    assert len(make_batches(load_config(CONFIGS["cjepa"], TINY), 4, 2, "random", seed=0)) == 2
