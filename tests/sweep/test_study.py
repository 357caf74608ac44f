"""Bad study definitions fail before Ray starts, naming the problem."""

import importlib.util
from pathlib import Path

import pytest

from cjepa.config import load_config
from cjepa.errors import ConfigError
from cjepa.sweep import Space, Study, validate_study
from cjepa.sweep.study import arm_name, resolve_base, trial_config

SWEEPS = sorted((Path(__file__).resolve().parents[2] / "sweeps").glob("*.py"))


def _study(**kw) -> Study:
    base = dict(name="t", base="cjepa_fmnist_quick", factors={"loss.beta_vicreg": [0.0, 0.001]}, seeds=(0,))
    return Study(**{**base, **kw})


def test_grid_arms_and_trial_config():
    arms = validate_study(_study(factors={"loss.beta_vicreg": [0.0, 0.01], "ema.enabled": [True, False]}))
    assert list(arms) == ["beta_vicreg=0.0,enabled=True", "beta_vicreg=0.0,enabled=False",
                          "beta_vicreg=0.01,enabled=True", "beta_vicreg=0.01,enabled=False"]
    cfg = trial_config(_study(), {"loss.beta_vicreg": 0.01, "mask.target_scale": [0.1, 0.12]}, seed=3)
    assert cfg.loss.beta_vicreg == 0.01 and cfg.run.seed == 3 and cfg.mask.target_scale == (0.1, 0.12)
    tiny = trial_config(_study(), {"loss.beta_vicreg": 1e-05}, seed=0)  # str(1e-05) would need YAML's help
    assert tiny.loss.beta_vicreg == 1e-05 and type(tiny.loss.beta_vicreg) is float
    assert arm_name({}) == "base"


@pytest.mark.parametrize("kw,words", [
    ({"factors": {"loss.beta_vicregg": [0.1]}}, ["unknown key", "loss.beta_vicregg"]),
    ({"factors": {"loss.beta_vicreg": []}}, ["loss.beta_vicreg", "no levels"]),
    ({"factors": {"loss.beta_vicreg": ["big"]}}, ["loss.beta_vicreg", "number"]),
    ({"factors": {"ema.enabled": [1]}}, ["ema.enabled", "true or false"]),
    ({"factors": {"loss.beta_vicreg": [-1.0]}}, ["loss.beta_vicreg", ">= 0"]),
    ({"seeds": ()}, ["seeds"]),
    ({"baseline": "nope"}, ["baseline 'nope'", "beta_vicreg=0.0"]),
    ({"scheduler": "asha", "metric": "knn_targett"}, ["knn_targett", "never reported"]),
    ({"scheduler": "asha", "overrides": ("eval.every=0",)}, ["knn_target", "never reported", "eval.every=0"]),
    ({"scheduler": "asha", "metric": "test_knn_target"}, ["test split's", "scored once", "use 'knn_target'"]),
    ({"scheduler": "asha", "overrides": ("data.val_samples=0",)}, ["test split", "data.val_samples > 0"]),
    ({"collapse_std": 0.1, "overrides": ("data.val_samples=0",)}, ["test split", "the collapse stopper"]),
    ({"search": "optuna", "factors": {}, "space": {"loss.beta_vicreg": Space("loguniform", 1e-4, 1e-2)},
      "overrides": ("data.val_samples=0",)}, ["'knn_target' would be read from the test split"]),
    ({"scheduler": "hyperband"}, ["scheduler"]),
    ({"search": "optuna", "factors": {}}, ["optuna needs a space"]),
    ({"search": "optuna", "factors": {}, "space": {"loss.beta_vicreg": Space("loguniform", 0.0, 1.0)}},
     ["0 < low < high"]),
    ({"arms": {"a": {"loss.beta_sim": 1.0}}}, ["factors", "named arms", "not both"]),
    ({"search": "optuna", "factors": {}, "space": {"loss.beta_vicreg": Space("loguniform", 1e-4, 1e-2)},
      "initial_points": ({"loss.beta_sim": 1.0},)}, ["initial_points[0]", "exactly the space's keys"]),
    ({"search": "optuna", "factors": {}, "space": {"loss.beta_vicreg": Space("loguniform", 1e-4, 1e-2)},
      "initial_points": ({"loss.beta_vicreg": 0.5},)}, ["initial_points[0]", "outside"]),
    ({"search": "optuna", "factors": {}, "space": {"data.hflip": Space("choice", choices=(0.0, 0.5))},
      "initial_points": ({"data.hflip": 0.7},)}, ["initial_points[0]", "not one of"]),
])
def test_bad_studies(kw, words):
    with pytest.raises(ConfigError) as err:
        validate_study(_study(**kw))
    for word in words:
        assert word in str(err.value), (word, str(err.value))


@pytest.fixture(scope="module")
def shards_root(tmp_path_factory):
    """Converted shards for the --full studies (their 224 px presets train only on shards)."""
    from cjepa.data.convert import convert

    root = tmp_path_factory.mktemp("shards") / "digits"
    convert("builtin:digits", root)
    return root


@pytest.mark.parametrize("script", SWEEPS, ids=[s.stem for s in SWEEPS])
@pytest.mark.parametrize("full", [False, True])
def test_every_study_script_is_valid(script, full, shards_root):
    spec = importlib.util.spec_from_file_location(script.stem, script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    study = module.make_study(full)
    base = load_config(resolve_base(study.base))
    extra = [f"data.root={shards_root}", "data.val_samples=200"] if full and base.data.dataset == "parquet" else []
    if extra:  # without shards, the paper-scale study is refused in one line before Ray starts
        with pytest.raises(ConfigError, match="data.dataset=parquet needs data.root"):
            validate_study(study)
    arms = validate_study(study, extra)
    assert arms and study.name.endswith("_full") == full
    if study.search == "grid":
        assert study.baseline in arms


def test_every_selecting_study_script_selects_on_the_validation_split():
    """What Optuna, ASHA and the stopper read in each script is a validation-split metric."""
    from cjepa.metrics import split_of

    for script in SWEEPS:
        spec = importlib.util.spec_from_file_location(script.stem, script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        study = module.make_study(False)
        if study.scheduler == "asha" or study.search == "optuna" or study.collapse_std > 0:
            cfg = trial_config(study, {}, study.seeds[0])
            assert split_of(cfg, study.metric) == "val" and cfg.data.val_samples > 0, script.stem


def test_list_valued_choices_travel_as_indices():
    """Optuna's categorical values must be scalars: a list-valued choice is searched by index and
    reaches the trial's config as the list itself."""
    from cjepa.sweep.naming import trial_arm
    from cjepa.sweep.runner import _optuna_points

    space = {"data.crop_scale": Space("choice", choices=((0.3, 1.0), (0.8, 1.0))),
             "data.hflip": Space("choice", choices=(0.0, 0.5))}
    study = _study(search="optuna", factors={}, space=space,
                   initial_points=({"data.crop_scale": (0.8, 1.0), "data.hflip": 0.5},))
    validate_study(study)
    assert _optuna_points(study) == [{"data.crop_scale": 1, "data.hflip": 0.5}]
    _, settings = trial_arm({"data.crop_scale": 1, "data.hflip": 0.5, "seed": 0}, study, {})
    assert settings == {"data.crop_scale": (0.8, 1.0), "data.hflip": 0.5}
    assert trial_config(study, settings, seed=0).data.crop_scale == (0.8, 1.0)


def test_grid_trials_get_their_validated_config_once():
    """plan_study builds every (arm, seed) Config at the driver, typed, for the trials to run as is."""
    from cjepa.sweep.study import plan_study

    study = _study(factors={"loss.beta_vicreg": [0.0, 1e-05]}, seeds=(0, 3))
    plan = plan_study(study)
    arms, configs = plan.arms, plan.configs
    assert sorted(configs) == [(a, s) for a in sorted(arms) for s in (0, 3)]
    for (arm, seed), cfg in configs.items():
        assert cfg.run.seed == seed and cfg.loss.beta_vicreg == arms[arm]["loss.beta_vicreg"]
    assert plan_study(_study(search="optuna", factors={},
                             space={"loss.beta_vicreg": Space("loguniform", 1e-4, 1e-2)})).configs == {}
