"""Several context views per image (``mask.context_views = K``) in the method: the JEPA loss and
every reading's terms are means over the views, and each view's gradient reaches the encoder."""

from __future__ import annotations

import pytest
import torch

from cjepa.config.regularizer_specs import SPECS
from cjepa.data import StepBatchDataset, dataset_stats, load_split
from cjepa.errors import ConfigError
from cjepa.masks import Masks, MultiBlockMaskGenerator
from cjepa.method import CJEPA, needs_second_view

#: every regulariser, as a config selects it (tests/method/test_cjepa.py's SELECT), and plain I-JEPA
SELECT = {**{name: (f"loss.vicreg_mode={name}",) for name, spec in SPECS.items() if spec.is_vicreg},
          "sigreg": ("sigreg.weight=0.05", "loss.beta_vicreg=0"), "ijepa": ("loss.beta_vicreg=0",)}


def _batch(cfg, n: int = 16) -> dict:
    data = load_split(cfg.data, "train")
    gen = MultiBlockMaskGenerator(cfg.model.img_size // cfg.model.patch_size, cfg.mask, 0)
    mean, std = dataset_stats(cfg.data.dataset)
    ds = StepBatchDataset(data, cfg.model.img_size, cfg.data.crop_scale, mean, std, 1, 0, gen,
                          two_views=needs_second_view(cfg))
    return ds[(0, torch.arange(n))]


def _model(cfg) -> CJEPA:
    torch.manual_seed(0)  # the weights do not depend on mask.context_views
    return CJEPA(cfg)


def _close(a: dict[str, float], b: dict[str, float]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), key


def test_the_default_is_one_view(tiny_cfg):
    cfg = tiny_cfg()
    assert cfg.mask.context_views == 1 and _batch(cfg)["masks"].num_views == 1


@pytest.mark.parametrize("name", list(SELECT))
def test_two_identical_views_give_the_one_view_loss(tiny_cfg, name):
    """Averaging two identical views changes nothing: the JEPA loss and every logged term."""
    one, two = tiny_cfg(*SELECT[name]), tiny_cfg(*SELECT[name], "mask.context_views=2")
    batch = _batch(one)
    m = batch["masks"]
    doubled = {**batch, "masks": Masks(m.context, m.targets, extra_context=m.context[None])}
    _, logs_one = _model(one)(batch)
    _, logs_two = _model(two)(doubled)
    _close(logs_two, logs_one)
    assert logs_two["loss_jepa"] == pytest.approx(logs_one["loss_jepa"], rel=1e-6)


@pytest.mark.parametrize("name", list(SELECT))
def test_two_views_average_the_two_one_view_steps(tiny_cfg, name):
    """K = 2: the JEPA loss and each term are the means of the two views' own one-view values
    (per-view statistics; the same targets, crops and SIGReg directions)."""
    one, two = tiny_cfg(*SELECT[name]), tiny_cfg(*SELECT[name], "mask.context_views=2")
    batch = _batch(two)
    m = batch["masks"]
    assert m.num_views == 2 and not torch.equal(m.context, m.extra_context[0])
    per_view = [_model(one)({**batch, "masks": Masks(c, m.targets)})[1] for c in (m.context, m.extra_context[0])]
    _, logs = _model(two)(batch)
    _close(logs, {k: (per_view[0][k] + per_view[1][k]) / 2 for k in logs})


@pytest.mark.parametrize("name", [n for n in SELECT if n != "ijepa"])
def test_each_views_regulariser_gradient_reaches_the_encoder(tiny_cfg, name, monkeypatch):
    """With the JEPA loss zeroed, the regulariser alone sends a finite, non-zero gradient to the
    encoder's output rows of every view (a wrongly wired view would look like a no-op)."""
    import cjepa.method.cjepa as method

    monkeypatch.setattr(method, "jepa_loss", lambda pred, tgt, kind: (pred * 0).sum())
    cfg = tiny_cfg(*SELECT[name], "mask.context_views=2")
    model = _model(cfg)
    outputs: list[torch.Tensor] = []

    def keep(module, args, out):
        out.retain_grad()
        outputs.append(out)

    model.encoder.register_forward_hook(keep)
    batch = _batch(cfg)
    loss, logs = model(batch)
    assert torch.isfinite(loss) and all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    loss.backward()
    ctx, n = outputs[0], len(batch["images"])
    assert ctx.shape[0] == 2 * n  # the context views stacked along the batch
    for view in range(2):
        grad = ctx.grad[view * n:(view + 1) * n]
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0, view
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("name", list(SELECT))
def test_two_views_train_every_reading(tiny_cfg, name):
    """The whole objective at K = 2: finite, and its gradient reaches the encoder."""
    cfg = tiny_cfg(*SELECT[name], "mask.context_views=2")
    model = _model(cfg)
    loss, _ = model(_batch(cfg))
    loss.backward()
    assert torch.isfinite(loss)
    assert sum(float(p.grad.abs().sum()) for p in model.encoder.parameters() if p.grad is not None) > 0


def test_refused_values(tiny_cfg):
    with pytest.raises(ConfigError, match=r"^mask.context_views: expected >= 1"):
        tiny_cfg("mask.context_views=0")
    model = _model(tiny_cfg("mask.context_views=2"))
    with pytest.raises(ValueError, match="mask.context_views is 2"):
        model(_batch(tiny_cfg()))  # one view in the batch, two in the config
