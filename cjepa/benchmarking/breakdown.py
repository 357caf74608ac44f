"""Where a training step's time goes: the VICReg parts in isolation, and profiler op tables.

Why: a ratio says *that* two steps differ; these say *where* (the parts ``pred_blocks`` adds, the
optimizer and clipping costs, the target-token gathers, and torch.profiler op tables).
Used by ``bench/step_throughput.py --breakdown / --profile``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from cjepa.benchmarking.steps import OURS, Batch, Variant
from cjepa.benchmarking.timing import median_ms


def _gathers(online: Any, b: Batch, dim: int, reps: int) -> dict[str, float]:
    """The M-fold copies our step made until issue 14 to gather target tokens / target positions
    (repeat the (B, N, D) tensor M times, then gather), next to the copy-free indexed gather that
    cjepa/method/cjepa.py:target_blocks and cjepa/model/vit.py:Predictor.forward now use."""
    from cjepa.model import gather_tokens

    with torch.no_grad():
        h = F.layer_norm(online.encoder(b.images), (dim,))
    pos = online.predictor.pos_embed
    tm, tb, tk = b.targets.shape
    rows = torch.arange(tb)[None, :, None]
    flat = b.targets.reshape(tm * tb, tk)
    assert torch.equal(gather_tokens(h.repeat(tm, 1, 1), flat).view(tm, tb, tk, -1), h[rows, b.targets])
    assert torch.equal(gather_tokens(pos.expand(tb, -1, -1).repeat(tm, 1, 1), flat), pos[0][flat])
    return {"target_gather_repeat_ms": median_ms(lambda: gather_tokens(h.repeat(tm, 1, 1), flat), reps),
            "target_gather_indexed_ms": median_ms(lambda: h[rows, b.targets], reps),
            "pred_pos_gather_repeat_ms": median_ms(
                lambda: gather_tokens(pos.expand(tb, -1, -1).repeat(tm, 1, 1), flat), reps),
            "pred_pos_gather_indexed_ms": median_ms(lambda: pos[0][flat], reps)}


def vicreg_breakdown(args: argparse.Namespace, batches: list[Batch], reps: int) -> dict[str, float]:
    """Median milliseconds of the parts that pred_blocks adds to an I-JEPA step.

    Timed in isolation on the real shapes: the projector forward on the pooled predictions,
    ``vicreg_blocks``, the weighting, and their backward (from a leaf standing in for the
    predictor output, so no encoder/predictor work is included); plus the AdamW step over the
    projector's parameters alone (the EMA does not touch the projector). For context, also two
    costs of every step of ours: ``clip_grad_norm_`` and AdamW over all parameters (torch's CPU
    default, a per-tensor loop, and ``foreach=True``), and the target-token gathers (``_gathers``).
    """
    from cjepa.config import load_config
    from cjepa.losses import vicreg_blocks
    from cjepa.method import CJEPA

    cfg = load_config(args.config, [*args.override, *OURS["cjepa"], f"optim.batch_size={args.batch_size}"])
    torch.manual_seed(args.seed)
    online = CJEPA(cfg).train()
    projector = online.regularizer.projector  # pred_blocks
    b = batches[0]
    with torch.no_grad():
        pred = online.predictor(online.encoder(b.images, b.context), b.context, b.targets)
    m_, bs = pred.shape[:2]
    leaf = pred.detach().requires_grad_(True)

    def proj_fwd() -> Tensor:
        return projector(leaf.mean(dim=2).reshape(m_ * bs, -1)).view(m_, bs, -1)

    def terms_fwd(z: Tensor) -> Tensor:
        return vicreg_blocks(z, cfg.loss).weighted(cfg.loss)

    z0 = proj_fwd().detach().requires_grad_(True)

    def full() -> None:
        (cfg.loss.beta_vicreg * terms_fwd(proj_fwd())).backward()
        leaf.grad = None
        projector.zero_grad(set_to_none=True)

    out = {"projector_fwd_ms": median_ms(proj_fwd, reps),
           "vicreg_terms_fwd_ms": median_ms(lambda: terms_fwd(z0), reps),
           "vicreg_terms_fwd_bwd_ms": median_ms(lambda: terms_fwd(z0).backward(), reps),
           "projector_plus_terms_fwd_bwd_ms": median_ms(full, reps)}
    params = [p for p in online.parameters() if p.requires_grad]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    out["adamw_projector_params_ms"] = median_ms(torch.optim.AdamW(projector.parameters(), lr=cfg.optim.lr).step, reps)
    # train_step always calls clip_grad_norm_ (max_norm=inf when optim.grad_clip=0, for the log)
    out["clip_grad_norm_inf_all_params_ms"] = median_ms(
        lambda: torch.nn.utils.clip_grad_norm_(params, float("inf")), reps)
    for foreach in (False, True):
        opt = torch.optim.AdamW(params, lr=cfg.optim.lr, foreach=foreach)
        out[f"adamw_all_params_foreach_{foreach}_ms".lower()] = median_ms(opt.step, reps)
    return {**out, **_gathers(online, b, cfg.model.embed_dim, reps)}


def report(args: argparse.Namespace, batches: list[Batch], summary: dict[str, Any]) -> dict[str, Any]:
    """``--breakdown``: time and print the parts; the figures for the benchmark's JSON."""
    bd = vicreg_breakdown(args, batches, reps=max(5, args.repeats))
    print("\nVICReg (pred_blocks) parts in isolation, median ms:")
    for k, v in bd.items():
        print(f"  {k:34s} {v:8.2f}")
    out: dict[str, Any] = {"vicreg_breakdown_ms": bd}
    if "ijepa" in summary:
        out["ijepa_step_ms"] = 1000 * args.batch_size / summary["ijepa"]["median"]
        print(f"  (our I-JEPA step: {out['ijepa_step_ms']:.1f} ms)")
    return out


def profile_variants(variants: list[Variant], batches: list[Batch], steps: int, out_dir: Path,
                     top: int = 12) -> None:
    """torch.profiler tables (self CPU time per op) of ``steps`` steps of each variant.

    Why: when two steps that do the same maths differ in speed, the op table shows where
    (copies, gathers, optimizer kernels, ...). Profiling inflates small ops, so the tables are
    for attribution only; the throughput numbers come from the unprofiled rounds.
    """
    from torch.profiler import ProfilerActivity, profile

    out_dir.mkdir(parents=True, exist_ok=True)
    for v in variants:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(steps):
                v.step(batches[i % len(batches)])
        text = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=60)
        (out_dir / f"{v.name}.txt").write_text(text)
        print(f"\n== {v.name}: top {top} ops by self CPU time over {steps} steps ({out_dir / v.name}.txt)")
        print("\n".join(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top).splitlines()[:top + 4]))
