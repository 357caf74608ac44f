"""Security defaults, checked: servers bind 127.0.0.1 unless told otherwise, checkpoints load with
``weights_only=True``, and no secret (passwords in URIs, tokens in the environment) reaches MLflow
params, tags or artifacts, study.json, results.parquet or the cluster files.

Real parts: a real ``mlflow server`` process, a real sqlite MLflow store read back with MlflowClient.
The behavioural "a pickle-bearing checkpoint is refused" test is
``tests/test_cli_errors.py::test_checkpoint_is_not_unpickled_blindly`` (not repeated here).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import socket
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from cjepa.config import load_config
from cjepa.errors import TrackingError
from cjepa.tracking.store import check_tracking_uri, redact

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "hunter2-Pa55word"
TOKENS = {"RAY_AUTH_TOKEN": "ray-tok-0123456789abcdef", "MLFLOW_TRACKING_PASSWORD": "mlflow-pw-9876543210",
          "MLFLOW_TRACKING_TOKEN": "mlflow-tok-abcdef012345", "AWS_SECRET_ACCESS_KEY": "aws-secret-xyzXYZ012345"}
SECRETS = [PASSWORD, *TOKENS.values()]


@pytest.fixture
def secret_env(monkeypatch):
    for name, value in TOKENS.items():
        monkeypatch.setenv(name, value)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- servers bind 127.0.0.1


def test_cjepa_ui_defaults_to_localhost():
    from cjepa.cli import make_parser
    from cjepa.tracking.ui import launch_server, start_server

    assert make_parser().parse_args(["ui"]).host == "127.0.0.1"
    for fn in (launch_server, start_server):
        assert inspect.signature(fn).parameters["host"].default == "127.0.0.1", fn.__name__


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp writes them) listening on ``port``."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and state == "0A":  # LISTEN
                out.add(address)
    return out


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real ``mlflow server``, started with the project's defaults (no host given)."""
    from cjepa.tracking.ui import start_server

    root = tmp_path_factory.mktemp("sec_server")
    with start_server(f"sqlite:///{root / 'mlflow.db'}", port=_free_port(), workers=1,
                      log_path=root / "server.log") as handle:
        yield handle


@pytest.mark.integration
def test_a_real_server_listens_on_loopback_only(server):
    port = int(server.url.rsplit(":", 1)[1])
    cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[cmdline.index(b"--host") + 1] == b"127.0.0.1"
    assert server.url == f"http://127.0.0.1:{port}"
    assert _listening(port) == {"0100007F"}  # 127.0.0.1, nothing on 0.0.0.0 or ::


@pytest.mark.parametrize("name", ["ray_cluster.yaml", "docs/cluster-local.yaml"])
def test_ray_dashboard_stays_on_the_head(name):
    text = (ROOT / name).read_text()
    heads = [line for line in text.splitlines() if "ray start --head" in line or "--dashboard-host" in line]
    assert heads and all("--dashboard-host=127.0.0.1" in line for line in heads if "--dashboard-host" in line)
    assert "0.0.0.0" not in text


# --------------------------------------------------------------------------- checkpoints: weights_only


def test_every_torch_load_passes_weights_only_true():
    calls = []
    for path in (ROOT / "cjepa").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                calls.append((f"{path.relative_to(ROOT)}:{node.lineno}", ok))
    assert calls, "no torch.load found: the check would pass vacuously"
    assert all(ok for _, ok in calls), calls


# --------------------------------------------------------------------------- no secret reaches the logs


@pytest.mark.parametrize("text,shown", [
    (f"https://alice:{PASSWORD}@mlflow.example.com:5000", "https://alice:***@mlflow.example.com:5000"),
    ("https://ghp_abcdef0123456789@host/repo", "https://***@host/repo"),
    (f"postgresql+psycopg2://bob:{PASSWORD}@db:5432/mlflow", "postgresql+psycopg2://bob:***@db:5432/mlflow"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("s3://bucket/a@b", "s3://bucket/a@b"),  # '@' after the host is not userinfo
])
def test_redact(text, shown):
    assert redact(text) == shown


def test_redact_masks_secret_env_values(secret_env):
    assert redact(f"cache at /tmp/{TOKENS['RAY_AUTH_TOKEN']}/x") == "cache at /tmp/***/x"


def test_tracking_errors_do_not_print_the_password():
    with pytest.raises(TrackingError) as err:
        check_tracking_uri(f"http://alice:{PASSWORD}@127.0.0.1:1", timeout=1)
    assert PASSWORD not in str(err.value) and "http://alice:***@127.0.0.1:1" in str(err.value)


def _everything_logged(client: MlflowClient, run_id: str, tmp_path: Path) -> str:
    run = client.get_run(run_id)
    text = json.dumps({"params": run.data.params, "tags": run.data.tags})
    for art in client.list_artifacts(run_id):
        if not art.is_dir and art.path.endswith((".yaml", ".md", ".json", ".txt")):
            text += Path(client.download_artifacts(run_id, art.path, str(tmp_path))).read_text()
    return text


def test_a_training_run_logs_no_secret(secret_env, tmp_path):
    from cjepa.tracking.reporter import MLflowReporter

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "run"
    cfg = load_config(None, [f"data.root=https://alice:{PASSWORD}@data.example/fmnist",
                             f"data.cache_dir=/tmp/{TOKENS['MLFLOW_TRACKING_TOKEN']}", f"run.output_dir={run_dir}"])
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text(cfg.to_yaml())
    reporter = MLflowReporter(cfg, uri, experiment="sec", tags={"note": f"token {TOKENS['RAY_AUTH_TOKEN']}"})
    reporter.on_start(run_dir, 0, {})
    reporter.on_epoch(1, {"loss": 1.0})
    client = MlflowClient(uri)
    logged = _everything_logged(client, reporter.run_id, tmp_path / "dl")
    assert "config.yaml" in [a.path for a in client.list_artifacts(reporter.run_id)]
    assert [s for s in SECRETS if s in logged] == []
    params = client.get_run(reporter.run_id).data.params
    assert params["data.root"] == "https://alice:***@data.example/fmnist" and params["data.cache_dir"] == "/tmp/***"
    assert "https://alice:***@data.example/fmnist" in logged  # the artifact keeps the rest of the URI


def test_a_study_logs_no_secret(secret_env, tmp_path):
    from cjepa.sweep import Study
    from cjepa.sweep.results import open_parent

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    study = Study(name="sec_study", base="cjepa_fmnist_quick", factors={"loss.beta_vicreg": [0.0]},
                  overrides=(f"data.root=https://alice:{PASSWORD}@data.example/x",), seeds=(0,))
    run_id = open_parent(study, uri, tmp_path / "sec_study", resume=False)
    logged = _everything_logged(MlflowClient(uri), run_id, tmp_path / "dl")
    state = (tmp_path / "sec_study" / "study.json").read_text()
    assert [s for s in SECRETS if s in logged + state] == []
    assert "alice:***@" in MlflowClient(uri).get_run(run_id).data.params["overrides"]


@pytest.mark.integration
def test_study_json_keeps_no_password(server, secret_env, tmp_path):
    """A tracking URI with credentials (the server ignores them; the client sends them as basic
    auth): study.json, which ``cjepa report`` reads, keeps the URI with the password masked."""
    from cjepa.sweep import Study
    from cjepa.sweep.results import open_parent

    uri = server.url.replace("http://", f"http://alice:{PASSWORD}@")
    run_id = open_parent(Study(name="sec_remote", seeds=(0,)), uri, tmp_path, resume=False)
    state = json.loads((tmp_path / "study.json").read_text())
    assert state == {"parent_run_id": run_id, "tracking_uri": server.url.replace("http://", "http://alice:***@")}
    logged = _everything_logged(MlflowClient(server.url), run_id, tmp_path / "dl")
    assert [s for s in SECRETS if s in logged] == []


def test_results_table_keeps_no_password(tmp_path):
    from ray.tune import Result

    from cjepa.sweep import Study
    from cjepa.sweep.results import trial_rows

    study = Study(name="s", base=str(ROOT / "tests" / "sweep" / "tiny_study.yaml"),
                  factors={"loss.beta_vicreg": [0.0]}, seeds=(0,))
    error = TrackingError(f"MLflow log_batch failed at https://alice:{PASSWORD}@mlflow.example: 503")
    result = Result(metrics={"config": {"arm": "beta_vicreg=0.0", "seed": 0}}, checkpoint=None, error=error,
                    path="/nowhere")
    rows = trial_rows(study, {"beta_vicreg=0.0": {"loss.beta_vicreg": 0.0}}, [result], tmp_path, None)
    assert rows[0]["status"] == "ERROR" and "https://alice:***@mlflow.example" in rows[0]["stop_reason"]
    assert PASSWORD not in json.dumps(rows)


@pytest.mark.parametrize("name", ["ray_cluster.yaml", "docs/cluster-local.yaml"])
def test_cluster_files_hold_no_literal_secret(name):
    """Beyond test_cluster_yaml.py's key/value patterns: no credentialed URI, no token-like literal."""
    text = (ROOT / name).read_text()
    assert redact(text) == text
    assert not re.search(r"(?i)(token|password|secret)\w*\s*[:=]\s*['\"]?[A-Za-z0-9+/_-]{12,}", text)
    assert not re.search(r"\b(ghp_|xox[bp]-|sk-)[A-Za-z0-9]{10,}", text)
