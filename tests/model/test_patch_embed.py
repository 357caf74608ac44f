"""``model.patch_embed``: every kind keeps the token grid, ``linear`` is timm's PatchEmbed itself,
the receptive fields are the ones documented, and the whole method trains with each kind.

Why: the switch is a lever of the laptop study (issue 26); its default must stay today's model
(the golden losses prove the weights), and the other kinds must change only what a token sees.
"""

from __future__ import annotations

import pytest
import torch
from timm.layers import PatchEmbed
from torch import nn

from cjepa.benchmarking.flops import step_flops
from cjepa.cli import main
from cjepa.config import load_config
from cjepa.config.schema import PATCH_EMBEDS
from cjepa.errors import ConfigError
from cjepa.masks import MultiBlockMaskGenerator
from cjepa.method import CJEPA
from cjepa.model.patch_embed import build_patch_embed
from cjepa.model.vit import ViTEncoder

PRESET = "configs/cjepa_fmnist_cpu.yaml"


@pytest.fixture
def one_thread():
    """Tiny tensors: extra intra-op threads only add contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("kind", PATCH_EMBEDS)
@pytest.mark.parametrize("patch,side", [(4, 7), (2, 14)])
def test_every_kind_keeps_the_token_grid(kind, patch, side):
    torch.manual_seed(0)
    pe = build_patch_embed(kind, 28, patch, 1, 32)
    out = pe(torch.randn(3, 1, 28, 28))
    assert out.shape == (3, side * side, 32)
    assert tuple(pe.grid_size) == (side, side) and pe.num_patches == side * side
    assert ViTEncoder(28, patch, 1, 32, 1, 2, patch_embed=kind).grid == (side, side)


def test_linear_is_timms_patch_embed():
    torch.manual_seed(0)
    ours = build_patch_embed("linear", 28, 4, 1, 32)
    ref = PatchEmbed(28, 4, 1, 32)
    assert type(ours) is PatchEmbed and list(ours.state_dict()) == ["proj.weight", "proj.bias"]
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(ours(x), ref(x))
    enc = ViTEncoder(28, 4, 1, 32, 1, 2)  # the default
    assert type(enc.patch_embed) is PatchEmbed


def _changed_tokens(kind: str, row: int, col: int) -> set[tuple[int, int]]:
    """Grid cells whose token moves when one pixel of a blank 28 px image is set (patch 4)."""
    torch.manual_seed(0)
    pe = build_patch_embed(kind, 28, 4, 1, 32).eval()
    x = torch.zeros(1, 1, 28, 28)
    x2 = x.clone()
    x2[0, 0, row, col] = 1.0
    with torch.no_grad():
        moved = (pe(x2) - pe(x)).abs().sum(-1)[0].view(7, 7) > 0
    return {(int(i), int(j)) for i, j in moved.nonzero()}


def test_overlap_tokens_see_their_upper_left_neighbours():
    """Pixel (1, 3) is in patch (0, 0), within p-1 columns of patch (0, 1) and rows of patch (1, 0):
    the overlap's windows [4i-3, 4i+3] of tokens (0, 1), (1, 0), (1, 1) reach it, the linear
    patch's do not. The window is centred on the patch's top-left pixel (PVTv2), so a pixel of
    patch (0, 1) (column 4) does not reach token (0, 0)."""
    assert _changed_tokens("linear", 1, 3) == {(0, 0)}
    assert _changed_tokens("overlap", 1, 3) == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert _changed_tokens("linear", 1, 4) == {(0, 1)}
    assert _changed_tokens("overlap", 1, 4) == {(0, 1), (1, 1)}
    assert (0, 0) not in _changed_tokens("overlap", 0, 4)


@pytest.mark.parametrize("patch,stride2,widths", [(4, 2, [16, 32]), (8, 3, [8, 16, 32]), (2, 1, [32])])
def test_conv_stem_layout(patch, stride2, widths):
    pe = build_patch_embed("conv_stem", 32, patch, 1, 32)
    convs = [m for m in pe.modules() if isinstance(m, nn.Conv2d)]
    threes = [c for c in convs if c.kernel_size == (3, 3)]
    assert len(threes) == stride2 and all(c.stride == (2, 2) and c.padding == (1, 1) for c in threes)
    assert [c.out_channels for c in threes] == widths
    last = convs[-1]
    assert len(convs) == stride2 + 1 and last.kernel_size == (1, 1) and last.stride == (1, 1)
    assert (last.in_channels, last.out_channels) == (widths[-1], 32)
    norms = [m for m in pe.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == stride2 and all(n.num_groups == 1 for n in norms)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in pe.modules())


@pytest.mark.parametrize("kind", PATCH_EMBEDS)
def test_no_running_statistics_and_a_sane_init(kind):
    """The EMA target copies parameters only, so no kind may carry buffers (running statistics);
    at init every kind's tokens are on the linear patch's scale (the same default conv rule)."""
    torch.manual_seed(0)
    pe = build_patch_embed(kind, 28, 4, 1, 32)
    assert dict(pe.named_buffers()) == {}
    enc = ViTEncoder(28, 4, 1, 32, 1, 2, patch_embed=kind)
    std = enc.patch_embed(torch.randn(16, 1, 28, 28)).std().item()
    assert 0.2 < std < 2.0, std


def _batch(cfg, n: int = 8) -> dict:
    m = cfg.model
    gen = MultiBlockMaskGenerator(m.img_size // m.patch_size, cfg.mask, 0)
    torch.manual_seed(1)
    return {"step": 0, "images": torch.randn(n, m.in_chans, m.img_size, m.img_size), "masks": gen(n, 0)}


@pytest.mark.parametrize("kind", PATCH_EMBEDS)
def test_the_method_trains_with_every_kind(kind, one_thread):
    """The laptop preset with each kind: finite loss, gradients reach the embedding, and the EMA
    target follows the encoder's patch embedding (target = m * target + (1 - m) * online)."""
    cfg = load_config(PRESET, [f"model.patch_embed={kind}"])
    torch.manual_seed(0)
    net = CJEPA(cfg)
    loss, logs = net(_batch(cfg))
    assert torch.isfinite(loss) and all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    loss.backward()
    grads = [p.grad for p in net.encoder.patch_embed.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads) and any(g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        for p in net.encoder.patch_embed.parameters():
            p.add_(1.0)
    before = [t.clone() for t in net.target.patch_embed.parameters()]
    net.update_target(0.75)
    for t, old, o in zip(net.target.patch_embed.parameters(), before, net.encoder.patch_embed.parameters()):
        assert torch.allclose(t, 0.75 * old + 0.25 * o, atol=1e-6)


@pytest.mark.parametrize("kind,patch,img", [("overlap", 4, 32), ("conv_stem", 4, 32), ("conv_stem", 8, 64)])
def test_flop_formula_counts_every_kind(kind, patch, img, one_thread):
    """analytic_flops (the MFU numerator) equals torch's FlopCounterMode with each kind's convs."""
    from cjepa.benchmarking.gpu_stages import CONFIGS, TINY

    cfg = load_config(CONFIGS["cjepa"], [*TINY, f"model.patch_embed={kind}", f"model.patch_size={patch}",
                                         f"model.img_size={img}"])
    got = step_flops(cfg, _batch(cfg, 4), count_batch=2)
    assert got["counted"] > 0 and got["counted"] == pytest.approx(got["analytic"], rel=1e-12)


@pytest.mark.parametrize("overrides,words", [
    (["model.patch_embed=conv"], ["model.patch_embed", "linear, overlap, conv_stem", "'conv'"]),
    (["model.patch_embed=conv_stem", "model.patch_size=7"], ["model.patch_embed=conv_stem", "power of two", "7"]),
    (["model.patch_embed=conv_stem", "model.patch_size=1", "model.img_size=8"], ["power of two >= 2", "got 1"]),
    (["model.patch_embed=overlap", "model.patch_size=1", "model.img_size=8"], ["model.patch_embed=overlap", ">= 2"]),
])
def test_validation_names_the_key(overrides, words, capsys):
    with pytest.raises(ConfigError) as err:
        load_config(PRESET, overrides)
    assert all(w in str(err.value) for w in words), str(err.value)
    assert main(["config", *overrides]) == 2
    out = capsys.readouterr().err.strip()
    assert len(out.splitlines()) == 1 and "model.patch_embed" in out


def test_valid_kinds_load():
    assert load_config(PRESET).model.patch_embed == "linear"
    assert load_config(PRESET, ["model.patch_embed=conv_stem", "model.patch_size=2"]).model.patch_embed == "conv_stem"
