import pytest
import torch

from cjepa.config import load_config
from cjepa.method import CJEPA, target_blocks
from cjepa.model import Predictor, ViTEncoder, make_target


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return ViTEncoder(img_size=16, patch_size=4, in_chans=1, embed_dim=32, depth=2, num_heads=2).eval()


def test_keep_all_tokens_equals_full_image(encoder):
    x = torch.randn(3, 1, 16, 16)
    keep = torch.arange(16).repeat(3, 1)
    torch.testing.assert_close(encoder(x, keep), encoder(x), rtol=0, atol=0)


def test_context_encoder_never_sees_dropped_patches(encoder):
    x = torch.randn(2, 1, 16, 16)
    keep = torch.tensor([[0, 1, 4, 5], [10, 11, 14, 15]])
    out = encoder(x, keep)
    x2 = x.clone()
    x2[0, :, 8:, 8:] = 100.0  # patches 10, 11, 14, 15 of image 0: not kept for image 0
    x2[1, :, :8, :8] = -100.0  # patches 0, 1, 4, 5 of image 1
    torch.testing.assert_close(encoder(x2, keep), out)
    x2[0, :, :4, :4] = 5.0  # patch 0 of image 0 is kept: the output must move
    assert not torch.allclose(encoder(x2, keep)[0], out[0])


def test_predictor_blocks_are_independent():
    torch.manual_seed(0)
    pred = Predictor((4, 4), embed_dim=32, pred_dim=16, depth=2, num_heads=2).eval()
    ctx = torch.randn(2, 5, 32)
    ctx_idx = torch.tensor([[0, 1, 2, 3, 4], [3, 4, 5, 6, 7]])
    tgt = torch.tensor([[[8, 9], [10, 11]], [[12, 13], [14, 15]], [[8, 12], [9, 13]]])  # (M=3, B=2, Kt=2)
    out = pred(ctx, ctx_idx, tgt)
    assert out.shape == (3, 2, 2, 32)
    tgt2 = tgt.clone()
    tgt2[1] = torch.tensor([[0, 5], [6, 7]])
    out2 = pred(ctx, ctx_idx, tgt2)
    torch.testing.assert_close(out2[0], out[0])
    torch.testing.assert_close(out2[2], out[2])
    assert not torch.allclose(out2[1], out[1])


def test_target_tokens_are_layer_normed_output_blocks(encoder):
    target = make_target(encoder)
    x = torch.randn(2, 1, 16, 16)
    tgt_idx = torch.tensor([[[0, 1], [2, 3]], [[5, 6], [9, 10]]])
    blocks = target_blocks(target(x), tgt_idx)
    full = torch.nn.functional.layer_norm(target(x), (32,))
    torch.testing.assert_close(blocks[1, 0], full[0, [5, 6]])
    torch.testing.assert_close(blocks[0, 1], full[1, [2, 3]])
    assert blocks.mean(-1).abs().max() < 1e-5  # parameter-free LN: zero mean per token


@pytest.mark.parametrize("mode,projector", [("pred_blocks", True), ("context_target", False),
                                            ("two_views", True)])
def test_projector_built_only_when_a_mode_needs_it(mode, projector):
    cfg = load_config(None, ["model.img_size=16", "model.patch_size=4", "model.in_chans=1",
                             "model.embed_dim=32", "model.depth=1", "model.num_heads=2",
                             "model.pred_embed_dim=16", "model.pred_depth=1", "mask.min_keep=2",
                             "mask.num_targets=2", "mask.target_scale=[0.1,0.15]",
                             f"loss.vicreg_mode={mode}", "loss.projector_dim=24"])
    net = CJEPA(cfg)
    assert hasattr(net.regularizer, "projector") == projector and net.regularizer.name == mode
    assert any(k.startswith("projector.") for k in net.online_state_dict()) == projector
    cfg.loss.beta_vicreg = 0.0
    assert CJEPA(cfg).regularizer is None
