"""Collapse check on digits (method.md: EMA and VICReg are the two guards against collapse).

Observed (6 epochs, tiny ViT, lr 2e-3; pooled target-encoder features on 297 test digits):

| arm                                   | std_mean | std_normalized | RankMe |
| I-JEPA (EMA on, VICReg off)           | 0.043    | 0.051          | 1.50   |
| EMA off, VICReg off                   | 0.014    | 0.013          | 1.13   |
| EMA off, var+cov, context_target mode | 0.388    | 0.564          | 4.54   |
| EMA off, var+cov, pred_blocks mode    | 0.010    | 0.009          | 1.10   |

With EMA off and no VICReg, the features fall to a near-constant vector (RankMe -> 1). Variance +
covariance on the pooled context features keep them spread. In the default ``pred_blocks`` mode
the terms act on *projected predictor* outputs: the projector's BatchNorm can meet the variance
hinge by rescaling, so on its own it does not stop the encoder from collapsing here (reported in
the issue's closing note; not asserted).
"""

import pytest

from cjepa.engine import train

pytestmark = pytest.mark.integration  # trains two arms for 4 epochs

COMMON = ["run.epochs=4", "eval.every=1", "eval.train_samples=500", "eval.test_samples=297",
          "eval.linear_epochs=0", "eval.encoders=[target]", "optim.lr=2e-3", "ema.enabled=false",
          "eval.raw_baseline=false"]


@pytest.fixture(scope="module")
def histories(tmp_path_factory):
    from cjepa.config import load_config
    from tests.conftest import tiny_overrides

    root = tmp_path_factory.mktemp("collapse")
    arms = {
        "no_guard": ["loss.beta_vicreg=0"],
        "var_cov": ["loss.vicreg_mode=context_target", "loss.invariance=false", "loss.beta_vicreg=0.04"],
    }
    return {name: train(load_config(None, tiny_overrides(root / name, *COMMON, *extra))).history
            for name, extra in arms.items()}


def test_without_ema_and_vicreg_the_features_collapse(histories):
    h = histories["no_guard"]
    assert h[-1]["target_std_mean_normalized"] < 0.03
    assert h[-1]["target_eff_rank"] < 1.3  # RankMe of a constant vector is 1
    assert h[-1]["target_std_mean"] <= h[0]["target_std_mean"]


def test_variance_covariance_keep_the_features_spread(histories):
    collapsed, guarded = histories["no_guard"][-1], histories["var_cov"][-1]
    assert guarded["target_std_mean"] > 10 * collapsed["target_std_mean"]
    assert guarded["target_eff_rank"] > 2.5
    assert guarded["vicreg_var"] < histories["var_cov"][0]["vicreg_var"]  # the hinge is being met
