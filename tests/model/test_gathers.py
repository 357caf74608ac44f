"""The copy-free gathers of issue 14 give exactly what the M-fold copies gave.

Why: ``target_blocks`` and ``Predictor.forward`` used to repeat the whole target output (and the
predictor's position table) M times along the batch and gather per copy, as the official
``apply_masks`` does; they now index once. These tests rebuild the old formulas by hand and ask
for bit-identical tensors, forward and (for the predictor) backward, so that the golden losses
are unmoved by construction and not only within their 1e-5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cjepa.method import target_blocks
from cjepa.model import Predictor, gather_tokens


def _indices(m: int, b: int, n: int, k: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.stack([torch.randperm(n, generator=g)[:k] for _ in range(b)]) for _ in range(m)])


def test_target_blocks_equal_the_repeat_then_gather_formula():
    torch.manual_seed(0)
    m, b, n, k, d = 4, 5, 16, 3, 8
    h = torch.randn(b, n, d)
    idx = _indices(m, b, n, k, seed=1)
    h_ln = F.layer_norm(h, (d,))
    old = gather_tokens(h_ln.repeat(m, 1, 1), idx.reshape(m * b, k)).view(m, b, k, d)
    new = target_blocks(h, idx)
    assert new.shape == (m, b, k, d)
    assert torch.equal(new, old)
    assert torch.equal(new[2, 3], h_ln[3, idx[2, 3]])  # block 2 of image 3: that image's own tokens


def _old_predictor_forward(p: Predictor, context, context_idx, target_idx):
    """Predictor.forward as it was before issue 14 (expand + repeat + gather of the positions)."""
    m, b, kt = target_idx.shape
    pos = p.pos_embed.expand(b, -1, -1)
    x = p.embed(context) + gather_tokens(pos, context_idx)
    x = x.repeat(m, 1, 1)
    queries = gather_tokens(pos.repeat(m, 1, 1), target_idx.reshape(m * b, kt)) + p.mask_token
    x = torch.cat([x, queries], dim=1)
    for blk in p.blocks:
        x = blk(x)
    return p.proj(p.norm(x[:, -kt:])).view(m, b, kt, -1)


def test_predictor_equals_its_old_formula_forward_and_backward():
    torch.manual_seed(0)
    p = Predictor((4, 4), embed_dim=16, pred_dim=8, depth=2, num_heads=2)
    b, kc = 3, 6
    context = torch.randn(b, kc, 16, requires_grad=True)
    ctx_idx = _indices(1, b, 16, kc, seed=2)[0]
    tgt_idx = _indices(4, b, 16, 2, seed=3)
    outs, grads = [], []
    for fn in (p.forward, lambda *a: _old_predictor_forward(p, *a)):
        p.zero_grad(set_to_none=True)
        context.grad = None
        out = fn(context, ctx_idx, tgt_idx)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([context.grad.clone(), *(q.grad.clone() for q in p.parameters())])
    assert torch.equal(outs[0], outs[1])
    for new, old in zip(*grads, strict=True):
        assert torch.equal(new, old)
