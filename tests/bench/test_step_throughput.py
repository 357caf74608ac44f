"""bench/step_throughput.py: its reference loader (``cjepa.benchmarking.official_ijepa``), the official
I-JEPA step's equivalence, a dry run.

Why: a speed ratio against the official I-JEPA code means something only if the reference step
computes what ours computes. With a clone of facebookresearch/ijepa (``$CJEPA_IJEPA_SRC``; the
repository never vendors it) the official modules, given our weights, masks and batch, must give
our losses and our EMA target step after step; the dry run must time both variants and report
their ratio. Without a clone those tests skip, and the loader's plumbing (refusals, where modules
come from, no foreign ``src``) is checked on a stand-in tree, which proves nothing about speed.
No speed is asserted anywhere.
"""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest
import torch

from cjepa.benchmarking import official_ijepa
from cjepa.benchmarking.steps import make_batches
from cjepa.engine.step import build_optimizer, train_step
from cjepa.masks import Masks
from cjepa.method import CJEPA
from tests.bench.scripts import load_script

step_throughput = load_script("step_throughput")
CLONE = os.environ.get(step_throughput.IJEPA_ENV, "")
needs_clone = pytest.mark.skipif(
    not (CLONE and Path(CLONE, "src/models/vision_transformer.py").is_file()),
    reason=f"no I-JEPA clone: set ${step_throughput.IJEPA_ENV} to a clone of facebookresearch/ijepa "
           "(git clone https://github.com/facebookresearch/ijepa) to compare the official step with ours")


@pytest.fixture
def fresh_src():
    """The loader imports the clone as ``src.*``: drop those modules before and after each test."""
    def drop() -> None:
        for name in [n for n in sys.modules if n == "src" or n.startswith("src.")]:
            del sys.modules[name]

    drop()
    yield
    drop()


def _stand_in_tree(root: Path) -> Path:
    """Files with the clone's layout and names; plumbing only (nothing here is the official code)."""
    body = {"src/models/vision_transformer.py": "VisionTransformer = VisionTransformerPredictor = object\n",
            "src/masks/utils.py": "def apply_masks(x, masks):\n    return x\n",
            "src/utils/tensors.py": "def repeat_interleave_batch(x, B, repeat):\n    return x\n"}
    for rel, text in body.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_loader_refuses_a_directory_that_is_not_a_clone(tmp_path, fresh_src):
    (tmp_path / "src/masks").mkdir(parents=True)
    (tmp_path / "src/masks/utils.py").write_text("def apply_masks(x, masks):\n    return x\n")
    with pytest.raises(SystemExit, match="not an I-JEPA clone, missing src/models/vision_transformer.py"):
        official_ijepa.load_official(tmp_path)


def test_loader_imports_from_the_given_tree_only(tmp_path, fresh_src):
    root = _stand_in_tree(tmp_path / "a")
    path_before = list(sys.path)
    off = official_ijepa.load_official(root)
    assert off.root == root.resolve()
    assert Path(off.vit.__file__).resolve() == (root / "src/models/vision_transformer.py").resolve()
    assert off.apply_masks.__module__ == "src.masks.utils"
    assert sys.path == path_before  # the clone never goes on sys.path
    other = _stand_in_tree(tmp_path / "b")
    with pytest.raises(SystemExit, match="a different 'src' package is already imported"):
        official_ijepa.load_official(other)


def test_loader_names_a_missing_function(tmp_path, fresh_src):
    root = _stand_in_tree(tmp_path)
    (root / "src/masks/utils.py").write_text("x = 1\n")
    with pytest.raises(SystemExit, match="src/masks/utils.py lacks apply_masks"):
        official_ijepa.load_official(root)


def test_official_variant_is_skipped_with_a_note_without_a_clone(monkeypatch):
    monkeypatch.delenv(step_throughput.IJEPA_ENV, raising=False)
    args = step_throughput.parse_args(["--dry-run", "--variants", "ijepa,official_ijepa"])
    names, notes = step_throughput.choose_variants(args, [])
    assert names == ("ijepa",)
    assert len(notes) == 1 and "--ijepa-src" in notes[0] and "facebookresearch/ijepa" in notes[0]


def _official_from_ours(off, model: CJEPA, cfg):
    """The official encoder, target and predictor holding our weights (and our position tables)."""
    enc, pred = official_ijepa.build_modules(off, cfg.model)
    enc.load_state_dict({**model.encoder.state_dict(), "pos_embed": model.encoder.pos_embed})
    names = {"embed.": "predictor_embed.", "blocks.": "predictor_blocks.", "norm.": "predictor_norm.",
             "proj.": "predictor_proj."}
    state = {"predictor_pos_embed": model.predictor.pos_embed}
    for key, value in model.predictor.state_dict().items():
        prefix = next((p for p in names if key.startswith(p)), "")
        state[names.get(prefix, "") + key[len(prefix):]] = value
    pred.load_state_dict(state)
    target = copy.deepcopy(enc)
    for p in target.parameters():
        p.requires_grad = False
    return enc.train(), target, pred.train()


@needs_clone
def test_official_step_computes_our_i_jepa_step(tiny_cfg, fresh_src):
    """Same weights, masks and batches: the official step's losses and EMA target equal ours."""
    cfg = tiny_cfg("loss.beta_vicreg=0")
    off = official_ijepa.load_official(CLONE)
    batches = make_batches(cfg, 8, 3, "random", seed=0)
    torch.manual_seed(0)
    model = CJEPA(cfg).train()
    enc, target, pred = _official_from_ours(off, model, cfg)
    o = cfg.optim
    opt = official_ijepa.official_optimizer(enc, pred, o.lr, o.betas, o.weight_decay)
    official = official_ijepa.official_step(off, enc, target, pred, opt, cfg.ema.start)
    ours_opt = build_optimizer(model, o)
    for b in batches:
        batch = {"step": 0, "images": b.images, "masks": Masks(b.context, b.targets)}
        ours = train_step(model, ours_opt, batch, o.lr, o.weight_decay, cfg.ema.start, None, 0.0)["loss"]
        assert official(b) == pytest.approx(ours, rel=1e-5)
    # by name: the official encoder also lists its frozen pos_embed among its parameters
    theirs = dict(target.named_parameters())
    for name, mine in model.target.named_parameters():  # EMA: mul_/add_ there, lerp here (rounding only)
        torch.testing.assert_close(theirs[name], mine, rtol=1e-5, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


@needs_clone
def test_dry_run_times_ours_and_the_official_step(tmp_path, fresh_src):
    out = tmp_path / "step.json"
    threads = torch.get_num_threads()
    try:
        rc = step_throughput.main(["--dry-run", "--threads", "1", "--variants", "ijepa,cjepa,official_ijepa",
                                   "--ijepa-src", CLONE, "--json", str(out)])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    saved = json.loads(out.read_text())
    assert set(saved["summary"]) == {"ijepa", "cjepa", "official_ijepa"}
    assert saved["variants"]["official_ijepa"]["impl"] == "official"
    assert saved["variants"]["official_ijepa"]["trainable_params"] == saved["variants"]["ijepa"]["trainable_params"]
    assert len(saved["summary"]["ijepa"]["vs_official"]["ci95"]) == 2
    assert any(line.startswith("our I-JEPA / official_ijepa") for line in saved["verdict"])
