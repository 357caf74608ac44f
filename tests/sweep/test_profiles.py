"""Scale profiles: --quick and --full defined once; a study script holds only its design."""

from __future__ import annotations

import pytest

from cjepa.sweep.profiles import FULL, QUICK, study_at


def test_a_study_at_a_scale_takes_the_profile_and_adds_its_design() -> None:
    quick = study_at(False, "s", overrides=("loss.vicreg_mode=sigreg",), factors={"loss.beta_vicreg": [0.0, 0.1]},
                     baseline="beta_vicreg=0.0")
    full = study_at(True, "s", overrides=("loss.vicreg_mode=sigreg",), factors={"loss.beta_vicreg": [0.0, 0.1]},
                    baseline="beta_vicreg=0.0")
    assert (quick.name, quick.base, quick.overrides, quick.seeds) == ("s", QUICK.base, ("loss.vicreg_mode=sigreg",),
                                                                     (0, 1, 2))
    assert (quick.max_concurrent, quick.workers_per_trial, quick.use_gpu) == (2, 1, False)
    assert (full.name, full.base) == ("s_full", FULL.base)
    assert full.overrides == ("run.epochs=100", "loss.vicreg_mode=sigreg")
    assert (full.max_concurrent, full.workers_per_trial, full.use_gpu) == (4, 8, True)
    assert study_at(FULL, "s", seeds=(0,), base="cjepa_vit_b16").base == "cjepa_vit_b16"  # where a budget differs
    with pytest.raises(TypeError, match="not a Study field: sedes"):
        study_at(False, "s", sedes=(0,))


def test_no_study_script_repeats_a_profile() -> None:
    """A script passes a profile's field only to change it (tests/sweep/test_study.py checks each is valid)."""
    import importlib.util
    from pathlib import Path

    for script in sorted((Path(__file__).resolve().parents[2] / "sweeps").glob("*.py")):
        text = script.read_text()
        assert "workers_per_trial=8" not in text and "use_gpu=True" not in text, script.name
        assert "study_at(" in text, script.name
        spec = importlib.util.spec_from_file_location(script.stem, script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert module.make_study(True).name.endswith("_full") and not module.make_study(False).name.endswith("_full")
