"""Checkpoint round trip from CUDA: save CUDA state, load it (CPU, weights_only), resume on CUDA.

``load_checkpoint`` maps everything to the CPU with ``weights_only=True``; the trainer then loads
it into modules and an optimizer that live on the GPU. The test checks that nothing is lost or
left on the wrong device on the way (optimizer moments included) and that the resumed step
computes what the uninterrupted one does.
"""

import pytest
import torch

from cjepa.engine.checkpoint import load_checkpoint, save_checkpoint
from tests.gpu.helpers import DEVICE, batches, build, requires_cuda, run_steps

pytestmark = [pytest.mark.gpu, requires_cuda]


def _tensors(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _tensors(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _tensors(v, f"{path}[{i}]")
    elif torch.is_tensor(obj):
        yield path, obj


def test_checkpoint_round_trip_on_cuda(tiny_cfg, tmp_path):
    cfg = tiny_cfg("loss.beta_vicreg=0.01")
    data = batches(cfg, 3, DEVICE)
    online, optimizer = build(cfg, DEVICE)
    run_steps(cfg, (online, optimizer), data[:2], torch.bfloat16)
    state = {"config": cfg.to_dict(), "step": 2, "epoch": 0, "online": online.online_state_dict(),
             "target": online.target.state_dict(), "optimizer": optimizer.state_dict(),
             "rng": {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state()}}
    saved = dict(_tensors(state))
    assert any(t.is_cuda for t in saved.values())
    save_checkpoint(tmp_path / "checkpoint.pt", state)

    loaded = load_checkpoint(tmp_path / "checkpoint.pt")
    got = dict(_tensors({k: loaded[k] for k in state}))
    assert got.keys() == saved.keys()
    for path, t in got.items():
        assert t.device.type == "cpu", path
        assert t.dtype == saved[path].dtype and torch.equal(t, saved[path].cpu()), path

    online2, optimizer2 = build(cfg, DEVICE)
    online2.load_online_state_dict(loaded["online"])
    online2.target.load_state_dict(loaded["target"])
    optimizer2.load_state_dict(loaded["optimizer"])
    for group in optimizer2.state.values():
        for key, value in group.items():
            if torch.is_tensor(value) and key != "step":
                assert value.is_cuda, key
    a = run_steps(cfg, (online, optimizer), data[2:], torch.bfloat16)[0]
    b = run_steps(cfg, (online2, optimizer2), data[2:], torch.bfloat16)[0]
    for key in ("loss", "grad_norm"):
        assert b[key] == pytest.approx(a[key], rel=1e-4), key
    ref = online.state_dict()
    for name, value in online2.state_dict().items():
        torch.testing.assert_close(value, ref[name], rtol=1e-4, atol=1e-5, msg=name)
