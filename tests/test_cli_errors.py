"""Bad input: every case gives one clear line naming the key or file, exit status 2, no traceback."""

import subprocess
import sys

import pytest
import torch

from cjepa.cli import main
from tests.conftest import tiny_overrides

CASES = [
    # (overrides, words the message must contain)
    (["loss.beta_vicregg=0.1"], ["unknown key", "loss.beta_vicregg"]),
    (["optimizer.lr=0.1"], ["unknown section", "optimizer"]),
    (["optim.batch_size=abc"], ["optim.batch_size", "integer"]),
    (["ema.enabled=maybe"], ["ema.enabled", "true or false"]),
    (["model.patch_size=5"], ["model.patch_size=5", "divide", "model.img_size"]),
    (["mask.target_scale=[0.1,1.5]"], ["mask.target_scale", "<= 1"]),
    (["mask.context_scale=[0,1]"], ["mask.context_scale", "0 <"]),
    (["mask.target_scale=[0.1]"], ["mask.target_scale", "2 values"]),
    (["mask.num_targets=30"], ["mask.num_targets=30", "no context"]),
    (["loss.vicreg_mode=pred_blocks", "mask.num_targets=1"], ["pred_blocks", "mask.num_targets >= 2"]),
    (["mask.min_keep=500"], ["mask.min_keep=500", "patches"]),
    (["loss.beta_sim=-1"], ["loss.beta_sim", ">= 0"]),
    (["loss.vicreg_mode=both"], ["loss.vicreg_mode", "pred_blocks"]),
    (["loss.jepa=l1"], ["loss.jepa", "smooth_l1"]),
    (["ema.start=1.5"], ["ema.start", "[0.0, 1.0]"]),
    (["model.num_heads=5"], ["model.num_heads=5", "model.embed_dim"]),
    (["run.device=tpu"], ["run.device", "cpu"]),
    (["loss.beta_vicreg"], ["key=value"]),
    (["data.dataset=imagenet"], ["data.dataset", "fashion_mnist"]),
]


@pytest.mark.parametrize("overrides,words", CASES, ids=[c[0][0] for c in CASES])
def test_bad_config_values(overrides, words, capsys):
    assert main(["config", *overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cjepa: error:") and len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, (word, err)


def test_missing_config_file(capsys, tmp_path):
    assert main(["config", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_invalid_yaml(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("loss: {beta_sim: [1,\n")
    assert main(["config", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "not valid YAML" in err


def test_missing_dataset(tmp_path, capsys):
    args = tiny_overrides(tmp_path / "run", "data.dataset=fashion_mnist", f"data.root={tmp_path / 'none'}")
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err
    assert "fashion" in err.lower() and str(tmp_path / "none") in err


def test_batch_larger_than_dataset(tmp_path, capsys):
    assert main(["train", *tiny_overrides(tmp_path / "run", "optim.batch_size=4096")]) == 2
    assert "optim.batch_size" in capsys.readouterr().err


def test_corrupt_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    assert main(["train", *tiny_overrides(run)]) == 2
    err = capsys.readouterr().err
    assert "checkpoint.pt" in err and "cannot be read" in err


def test_checkpoint_of_another_config(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *tiny_overrides(run, "run.max_steps=2")]) == 0
    capsys.readouterr()
    assert main(["train", *tiny_overrides(run, "loss.beta_sim=3")]) == 2
    err = capsys.readouterr().err
    assert "loss.beta_sim: 25.0 -> 3.0" in err


def test_checkpoint_is_not_unpickled_blindly(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format_version": 1, "payload": object()}, run / "checkpoint.pt")  # needs full pickle
    assert main(["train", *tiny_overrides(run)]) == 2
    assert "cannot be read" in capsys.readouterr().err


@pytest.mark.integration
def test_no_traceback_from_the_real_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cjepa", "train", "model.patch_size=3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "model.patch_size=3" in proc.stderr
