"""The console lines of `cjepa train`: the epoch's and the run's ETA, and the run dir it prints."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cjepa.config import Config
from cjepa.engine.reporting import ConsoleReporter, clock, eta_seconds


def test_clock():
    assert [clock(s) for s in (0, 59.4, 61, 3599, 3600, 3723, -5)] == \
        ["0:00", "0:59", "1:01", "59:59", "1:00:00", "1:02:03", "0:00"]


def test_eta_arithmetic():
    # 25 steps per epoch (step 10 at epoch 0.4), 3 epochs; 64 images per step at 32 img/s = 2 s a step:
    # 15 steps left in the epoch = 30 s, 65 left in the run = 130 s, plus 3 evaluations of 5 s.
    assert eta_seconds(10, 0.4, 32.0, 64, 3) == (30.0, 130.0)
    assert eta_seconds(10, 0.4, 32.0, 64, 3, eval_s=5.0, eval_every=1) == (30.0, 145.0)
    assert eta_seconds(10, 0.4, 32.0, 64, 3, eval_s=5.0, eval_every=2) == (30.0, 140.0)  # epochs 2 and 3 (the last)
    assert eta_seconds(25, 1.0, 64.0, 64, 3) == (0.0, 50.0)  # the epoch's last step: the next epochs remain
    assert eta_seconds(10, 0.4, 32.0, 64, 3, max_steps=30) == (30.0, 40.0)  # run.max_steps ends the run earlier
    assert eta_seconds(10, 0.4, 0.0, 64, 3) is None and eta_seconds(0, 0.0, 32.0, 64, 3) is None


def _run_dir(tmp_path: Path, **run: int) -> Path:
    cfg = Config()
    cfg.run.epochs, cfg.optim.batch_size = 3, 64
    for key, value in run.items():
        setattr(cfg.run, key, value)
    (tmp_path / "config.yaml").write_text(cfg.to_yaml())  # what the trainer writes before on_start
    return tmp_path


def test_step_lines_carry_the_epoch_and_run_eta(tmp_path):
    out = io.StringIO()
    reporter = ConsoleReporter(stream=out)
    reporter.on_start(_run_dir(tmp_path), 0, {})
    reporter.on_step(10, {"epoch": 0.4, "loss": 0.5, "img_per_s": 32.0})
    reporter.on_epoch(1, {"loss": 0.4, "eval_time_s": 5.0})
    reporter.on_step(30, {"epoch": 1.2, "loss": 0.3, "img_per_s": 64.0})
    lines = out.getvalue().splitlines()
    assert lines[0] == f"[cjepa] starting; run dir {tmp_path}"
    assert lines[1] == "  ep 0.40 step 10  loss=0.5000  img_per_s=32.0000  eta epoch 0:30 run 2:10"
    # 1 s a step: 20 steps left in epoch 2, 45 in the run, plus evaluations after epochs 2 and 3 (5 s each)
    assert lines[3] == "  ep 1.20 step 30  loss=0.3000  img_per_s=64.0000  eta epoch 0:20 run 0:55"


def test_no_config_no_eta_and_the_destination_is_what_is_printed(tmp_path):
    out = io.StringIO()
    reporter = ConsoleReporter(stream=out, destination="/data/runs/trial-a")
    reporter.on_start(tmp_path / "scratch", 2, {})  # no config.yaml there: no ETA, no error
    reporter.on_step(10, {"epoch": 2.4, "img_per_s": 32.0})
    assert out.getvalue().splitlines() == [
        "[cjepa] resuming after epoch 2; run dir /data/runs/trial-a (files copied there when training ends)",
        "  ep 2.40 step 10  img_per_s=32.0000"]


@pytest.mark.parametrize("text", ["run: [1, 2]", "{", ""])
def test_an_unreadable_config_only_drops_the_eta(tmp_path, text):
    (tmp_path / "config.yaml").write_text(text)
    out = io.StringIO()
    reporter = ConsoleReporter(stream=out)
    reporter.on_start(tmp_path, 0, {})
    reporter.on_step(10, {"epoch": 0.4, "img_per_s": 32.0})
    assert "eta" not in out.getvalue()
