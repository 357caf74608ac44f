"""NCCL process group of one on CUDA, with the trainer's SyncBatchNorm conversion and DDP wrapper.

Why a group of one: one GPU cannot host two NCCL ranks, but a group of one still runs everything
the multi-GPU path sets up (NCCL init over TCP, ``cjepa.model.global_batchnorm`` turning the projector's
BatchNorm1d into SyncBatchNorm on CUDA, DDP with ``device_ids``, all-reduce). With one rank the
result must equal a plain single-process run of the same seed, step by step.
"""

import socket

import pytest
import torch
import torch.distributed as dist
from torch import nn

from cjepa.losses.distributed import gather_with_grad
from cjepa.model import global_batchnorm
from tests.gpu.helpers import DEVICE, batches, build, requires_cuda, run_steps

pytestmark = [pytest.mark.gpu, pytest.mark.integration, requires_cuda,
              pytest.mark.skipif(not dist.is_nccl_available(), reason="this torch build has no NCCL")]
KEYS = ("loss", "loss_jepa", "vicreg_inv", "vicreg_var", "vicreg_cov", "grad_norm")
# Zero-gradient-in-exact-arithmetic parameters (see tests/distributed/test_ddp_equivalence.py): AdamW turns
# their rounding noise into lr-sized steps of random sign, so they are not compared.
NOISE_ONLY = {f"regularizer.{k}" for k in ("projector.0.bias", "projector.4.bias", "projector.8.bias",
                                           "projector.1.running_mean", "projector.5.running_mean")}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nccl_group():
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_nccl_group_of_one_matches_one_process(tiny_cfg, nccl_group):
    assert dist.get_backend() == "nccl" and dist.get_world_size() == 1
    t = torch.arange(4.0, device=DEVICE)
    dist.all_reduce(t)
    assert torch.equal(t, torch.arange(4.0, device=DEVICE))
    x = torch.randn(3, 2, device=DEVICE)
    assert gather_with_grad(x) is x

    cfg = tiny_cfg("loss.beta_vicreg=0.01")  # pred_blocks: a projector with BatchNorm1d layers
    data = batches(cfg, 4, DEVICE)
    plain = build(cfg, DEVICE)
    expected = run_steps(cfg, plain, data, torch.bfloat16)

    online, optimizer = build(cfg, DEVICE)
    bn_weight = online.regularizer.projector[1].weight
    online = global_batchnorm(online, DEVICE)
    kinds = {type(m) for m in online.modules()}
    assert nn.SyncBatchNorm in kinds and nn.BatchNorm1d not in kinds
    assert online.regularizer.projector[1].weight is bn_weight  # the optimizer, built before, still updates it
    before = bn_weight.detach().clone()
    ddp = nn.parallel.DistributedDataParallel(online, device_ids=[DEVICE.index])
    got = run_steps(cfg, (ddp, optimizer), data, torch.bfloat16)
    assert not torch.equal(bn_weight.detach(), before)

    for step, (a, b) in enumerate(zip(expected, got)):
        for key in KEYS:
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), (step, key)
    ref = plain[0].state_dict()
    for name, value in online.state_dict().items():
        if name not in NOISE_ONLY and value.is_floating_point():
            torch.testing.assert_close(value, ref[name], rtol=1e-3, atol=1e-4, msg=name)
