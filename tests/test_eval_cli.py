"""``cjepa eval`` end to end on a real tiny run: the figures beside the run, in its MLflow run, the
in-training numbers reproduced, bad arguments in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cjepa.cli import main
from tests.conftest import tiny_overrides

pytestmark = pytest.mark.integration  # trains a run, then evaluates it twice

EVAL = ["data.val_samples=300", "eval.every=1", "eval.train_samples=400", "eval.test_samples=200",
        "eval.linear_epochs=5", "eval.precision=fp32", "eval.encoders=[target]", "run.epochs=1"]


def test_eval_a_run_dir_logs_beside_it_and_to_its_mlflow_run(tmp_path: Path, capsys) -> None:
    import os

    from mlflow.tracking import MlflowClient

    from cjepa.engine.checkpoint import load_checkpoint
    from cjepa.tracking.reporter import RUN_ID_KEY

    run = tmp_path / "run"
    assert main(["train", *tiny_overrides(run, *EVAL)]) == 0
    final = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert main(["eval", str(run), "--bank", "eval"]) == 0
    assert main(["eval", str(run / "checkpoint.pt"), "eval.test_samples=297"]) == 0  # the whole test split
    lines = [json.loads(x) for x in (run / "eval.jsonl").read_text().splitlines()]
    assert [x["bank"] for x in lines] == ["eval", "train"] and lines[1]["eval"]["test_samples"] == 297
    assert lines[0]["figures"]["test_knn_target"] == final["test_knn_target"]  # the trainer's number, exactly
    assert "test_knn_target_fullbank" in lines[1]["figures"]
    run_id = load_checkpoint(run / "checkpoint.pt")["extra"][RUN_ID_KEY]
    logged = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).get_run(run_id).data.metrics
    assert logged["eval/test_knn_target"] == final["test_knn_target"]
    assert logged["eval/test_knn_target_fullbank"] == lines[1]["figures"]["test_knn_target_fullbank"]
    assert "test_knn_target_fullbank" in capsys.readouterr().out


@pytest.mark.parametrize("args,words", [
    (["model.depth=3"], "only eval.* settings can change"),
    (["--encoders", "student"], "expected one or more of target, context, random"),
    (["--workers", "-1"], "--workers must be >= 0"),
])
def test_bad_eval_arguments_are_one_line(tmp_path: Path, capsys, args: list[str], words: str) -> None:
    assert main(["eval", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_a_path_without_a_checkpoint_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["eval", str(tmp_path), "--no-mlflow"]) == 2
    assert "checkpoint.pt: not found" in capsys.readouterr().err
