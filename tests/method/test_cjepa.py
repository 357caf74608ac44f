"""The method object: its registry of readings, its checkpoint state and its extension point."""

from __future__ import annotations

import pytest
import torch

from cjepa.config import VICREG_MODES
from cjepa.config.regularizer_specs import SPECS
from cjepa.data import StepBatchDataset, dataset_stats, load_split
from cjepa.losses import VICRegTerms
from cjepa.masks import MultiBlockMaskGenerator
from cjepa.method import CJEPA, REGULARIZERS, Regularizer, StepTensors, needs_second_view, register


def _batch(cfg, n: int = 16) -> dict:
    data = load_split(cfg.data, "train")
    gen = MultiBlockMaskGenerator(cfg.model.img_size // cfg.model.patch_size, cfg.mask, 0)
    mean, std = dataset_stats(cfg.data.dataset)
    ds = StepBatchDataset(data, cfg.model.img_size, cfg.data.crop_scale, mean, std, 1, 0, gen,
                          two_views=needs_second_view(cfg))
    return ds[(0, torch.arange(n))]


#: each regulariser of the table, as a config selects it: a VICReg reading by loss.vicreg_mode, SIGReg by its weight
SELECT = {**{mode: (f"loss.vicreg_mode={mode}",) for mode in VICREG_MODES},
          "sigreg": ("sigreg.weight=0.05", "loss.beta_vicreg=0")}


def test_every_configurable_reading_is_registered():
    assert set(REGULARIZERS) == set(SPECS) == set(SELECT)  # the table and the registry name the same ones
    assert [name for name in REGULARIZERS if SPECS[name].second_view] == ["two_views"]
    assert [n for n, spec in SPECS.items() if spec.is_vicreg] == list(VICREG_MODES)  # the config's readings
    assert [spec.weight for spec in SPECS.values() if not spec.is_vicreg] == ["sigreg.weight"]


@pytest.mark.parametrize("name", list(SELECT))
def test_online_state_round_trip(tiny_cfg, name):
    """A model rebuilt from online_state_dict + the target's state computes the same loss."""
    cfg = tiny_cfg(*SELECT[name])
    assert cfg.regularizer is SPECS[name]
    torch.manual_seed(0)
    a = CJEPA(cfg)
    torch.manual_seed(1)
    b = CJEPA(cfg)
    b.load_online_state_dict(a.online_state_dict())
    b.target.load_state_dict(a.target.state_dict())
    batch = _batch(cfg)
    a.eval(), b.eval()  # BatchNorm running statistics would move in train mode
    assert a(batch)[1] == b(batch)[1]
    keys = set(a.online_state_dict())
    assert {k.split(".")[0] for k in keys} <= {"encoder", "predictor", "projector"}
    with pytest.raises(RuntimeError):
        b.load_online_state_dict({**a.online_state_dict(), "stray.weight": torch.zeros(1)})


def test_a_new_regulariser_is_one_registered_class(tiny_cfg):
    """The extension point: one spec row, one registered class, selected by name; the method, the
    metric names and vicreg_on follow. A class without a row is refused."""
    from cjepa.config.regularizer_specs import RegularizerSpec, add_spec
    from cjepa.metrics import reported_metrics

    class MeanNorm(Regularizer):
        name = "test_mean_norm"

        def embed(self, t: StepTensors, encoder: torch.nn.Module) -> torch.Tensor:
            return t.context.mean(dim=1)

        def terms(self, z: torch.Tensor) -> VICRegTerms:
            return VICRegTerms(inv=None, var=z.float().pow(2).mean(), cov=None)

    with pytest.raises(ValueError, match="no row in cjepa/config/regularizer_specs.py"):
        register(MeanNorm)
    add_spec(RegularizerSpec("test_mean_norm", ("var",)))
    register(MeanNorm)
    try:
        cfg = tiny_cfg("loss.beta_vicreg=0.5")
        cfg.loss.vicreg_mode = "test_mean_norm"  # past the config's list: what a new reading would add there
        torch.manual_seed(0)
        model = CJEPA(cfg)
        batch = _batch(cfg)
        loss, logs = model(batch)
        with torch.no_grad():
            z = model.encoder(batch["images"], batch["masks"].context).mean(dim=1)
        assert logs["vicreg_var"] == pytest.approx(float(z.pow(2).mean()), rel=1e-5)
        assert logs["loss"] == pytest.approx(logs["loss_jepa"] + 0.5 * cfg.loss.beta_std * logs["vicreg_var"],
                                             rel=1e-5)
        assert cfg.loss.vicreg_on and {"vicreg_var", "loss_vicreg"} <= reported_metrics(cfg)
        assert "vicreg_inv" not in reported_metrics(cfg)
        with pytest.raises(ValueError, match="registered twice"):
            register(MeanNorm)
    finally:
        REGULARIZERS.pop("test_mean_norm", None)
        SPECS.pop("test_mean_norm", None)


@pytest.mark.parametrize("mode", ["two_views", "pred_blocks"])
def test_each_branch_gets_its_own_projector_batch_norm(tiny_cfg, mode):
    """loss.projector_per_branch (default): each view / target block goes through the projector alone,
    with its own batch-norm statistics, as VICReg's expander; false: one call over all branches."""
    from cjepa.method.regularizers import StepTensors

    torch.manual_seed(0)
    reg = CJEPA(tiny_cfg(f"loss.vicreg_mode={mode}")).regularizer
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(8, 5, 32, generator=g), torch.randn(8, 5, 32, generator=g) * 3 + 1  # unlike branches
    t = StepTensors(step=0, images=torch.zeros(8, 1, 16, 16), images2=torch.zeros(8, 1, 16, 16),
                    context_idx=torch.zeros(8, 5, dtype=torch.long), context=a, pred=torch.stack([a, b]),
                    target_out=a)

    def encoder(x, idx):
        return b

    out = reg.embed(t, encoder)
    first, second = (out[0], out[1])
    assert torch.allclose(first, reg.projector(a.mean(dim=1))) and torch.allclose(second, reg.projector(b.mean(dim=1)))
    reg.loss_cfg.projector_per_branch = False
    joint = reg.projector(torch.cat([a.mean(dim=1), b.mean(dim=1)]))
    out = reg.embed(t, encoder)
    assert torch.allclose(torch.cat([out[0], out[1]]), joint) and not torch.allclose(out[0], first)
