"""A real 2-process gloo run: gathered VICReg statistics and gradients equal the full batch.

Each rank holds half of a fixed batch. The values of the var/cov terms must equal the
single-process values on the full batch; inv is local (its mean over ranks equals the full
batch's). For gradients: every rank backpropagates its own loss through the library
all_gather, whose backward SUMS over ranks; DDP then AVERAGES parameter gradients. So
``local_input_grad / world_size`` and ``mean_r(weight_grad_r)`` must equal the single-process
full-batch gradients. See cjepa/losses/distributed.py.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cjepa.config import LossConfig
from cjepa.losses import gather_with_grad, vicreg_blocks, vicreg_pair, world_size

WORLD = 2
N, DIN, D, M = 8, 5, 4, 3  # global batch 8 -> 4 per rank
T = torch.float64


def _data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed inputs: two views (N, DIN), block inputs (M, N, DIN) and encoder weights (DIN, D)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(N, DIN, generator=g, dtype=T)
    b = torch.randn(N, DIN, generator=g, dtype=T)
    blocks = torch.randn(M, N, DIN, generator=g, dtype=T)
    a[: N // 2] += 0.8  # the two halves differ, so per-rank statistics would be wrong
    blocks[:, N // 2:] *= 1.7
    w = torch.randn(DIN, D, generator=g, dtype=T) * 0.3
    return a, b, blocks, w


def _run(a: torch.Tensor, b: torch.Tensor, blocks: torch.Tensor, w: torch.Tensor,
         cfg: LossConfig) -> dict[str, torch.Tensor]:
    """Loss terms and gradients w.r.t. the (local) inputs and the encoder weights."""
    a, b, blocks, w = (t.clone().requires_grad_() for t in (a, b, blocks, w))
    pair = vicreg_pair(a @ w, b @ w, cfg)
    blk = vicreg_blocks(blocks @ w, cfg)
    loss = pair.weighted(cfg) + blk.weighted(cfg)
    loss.backward()
    out = {f"pair_{k}": v.detach() for k, v in pair.present().items()}
    out |= {f"blocks_{k}": v.detach() for k, v in blk.present().items()}
    out |= {"grad_a": a.grad, "grad_b": b.grad, "grad_blocks": blocks.grad, "grad_w": w.grad}
    return out


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        assert world_size() == WORLD
        g = torch.arange(3, dtype=T).view(1, 3) + 10 * rank
        assert torch.equal(gather_with_grad(g), torch.tensor([[0, 1, 2], [10, 11, 12]], dtype=T))
        a, b, blocks, w = _data()
        sl = slice(rank * N // WORLD, (rank + 1) * N // WORLD)
        out = _run(a[sl], b[sl], blocks[:, sl], w, LossConfig())
        local = _run(a[sl], b[sl], blocks[:, sl], w, LossConfig(gather_distributed=False))
        out |= {f"nogather_{k}": v for k, v in local.items()}
        torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # no rank tears its sockets down while the other still reads from them
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks() -> Iterator[list[dict[str, torch.Tensor]]]:
    with tempfile.TemporaryDirectory(prefix="cjepa-gloo-") as tmp:
        mp.spawn(_worker, args=(os.path.join(tmp, "init"), tmp), nprocs=WORLD, join=True)
        yield [torch.load(Path(tmp) / f"rank{r}.pt") for r in range(WORLD)]


def test_one_process_is_identity() -> None:
    x = torch.randn(3, 2)
    assert world_size() == 1 and gather_with_grad(x) is x


@pytest.mark.integration
def test_values_equal_full_batch(ranks: list[dict[str, torch.Tensor]]) -> None:
    a, b, blocks, w = _data()
    full = _run(a, b, blocks, w, LossConfig(gather_distributed=False))
    for r in ranks:
        for key in ("pair_var", "pair_cov", "blocks_var", "blocks_cov"):
            torch.testing.assert_close(r[key], full[key], rtol=0, atol=1e-6, msg=key)
    for key in ("pair_inv", "blocks_inv"):  # local on each rank; the rank mean is the full batch's
        torch.testing.assert_close(sum(r[key] for r in ranks) / WORLD, full[key], rtol=0, atol=1e-6)
    # the test can fail: without gathering, per-rank statistics differ from the full batch
    assert not torch.allclose(ranks[0]["nogather_pair_var"], full["pair_var"], atol=1e-3)
    assert not torch.allclose(ranks[0]["nogather_blocks_cov"], full["blocks_cov"], atol=1e-3)


@pytest.mark.integration
def test_gradients_equal_full_batch_after_ddp_averaging(ranks: list[dict[str, torch.Tensor]]) -> None:
    a, b, blocks, w = _data()
    full = _run(a, b, blocks, w, LossConfig(gather_distributed=False))
    for rank, r in enumerate(ranks):
        sl = slice(rank * N // WORLD, (rank + 1) * N // WORLD)
        # all_gather's backward sums d(L_r')/dx_r over ranks r'; DDP divides by the world size
        torch.testing.assert_close(r["grad_a"] / WORLD, full["grad_a"][sl], rtol=0, atol=1e-6)
        torch.testing.assert_close(r["grad_b"] / WORLD, full["grad_b"][sl], rtol=0, atol=1e-6)
        torch.testing.assert_close(r["grad_blocks"] / WORLD, full["grad_blocks"][:, sl], rtol=0, atol=1e-6)
    ddp_w = sum(r["grad_w"] for r in ranks) / WORLD  # what DDP's all-reduce average hands the optimiser
    torch.testing.assert_close(ddp_w, full["grad_w"], rtol=0, atol=1e-6)
    ddp_nogather = sum(r["nogather_grad_w"] for r in ranks) / WORLD
    assert not torch.allclose(ddp_nogather, full["grad_w"], atol=1e-4)
