"""A local ``mlflow server`` that starts, answers and stops as one unit.

``mlflow server`` is a launcher that forks uvicorn (or gunicorn) workers, and with job execution
on, helper processes that outlive it. Killing only the launcher's pid leaves those behind, still
holding the port. So the server gets its own session and process group, job execution is turned
off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``), and :meth:`ServerHandle.stop` signals the whole
group, then waits until no live process of the group is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from cjepa.errors import TrackingError
from cjepa.tracking.store import default_artifact_root, is_remote, resolve_tracking_uri

START_TIMEOUT_S = 90.0  # ~7 s on an idle 2-core machine; much more while training runs beside it
#: ``cjepa ui``'s address when nothing else is said (its --host/--port defaults).
DEFAULT_UI = "http://127.0.0.1:5000"
#: MLflow 3.17 opens an experiment on its GenAI overview (a per-browser choice, default GenAI);
#: this query opens it on the runs table ("Model training"). The experiment tag alone does not.
TRAINING_VIEW = "workflowType=machine_learning"
MAX_LISTED = 30  # experiments `cjepa ui` prints a link for


def runs_url(base_url: str, experiment_id: str) -> str:
    """The link that opens an experiment's runs in the UI's "Model training" view; with
    ``base_url=""`` the in-app form (``#/experiments/...``) for markdown inside the UI."""
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}?{TRAINING_VIEW}".lstrip("/")


def study_link_line(tracking_uri: str, experiment_id: str) -> str:
    """A study's last line: where its runs open, and what serves them (a local store needs `cjepa ui`)."""
    if is_remote(tracking_uri):
        return f"MLflow: the study's runs in the Model training view: {runs_url(tracking_uri, experiment_id)}"
    flag = "" if tracking_uri == resolve_tracking_uri(None) else f" --tracking-uri {tracking_uri}"
    return (f"MLflow: `cjepa ui{flag}`, then open {runs_url(DEFAULT_UI, experiment_id)} "
            "(the study's runs in the Model training view)")


def experiment_links(store_uri: str, base_url: str, limit: int = MAX_LISTED) -> list[str]:
    """``  name  link`` for the store's experiments, most recently updated first (MLflow's empty
    "Default" left out); a line saying how the link is built when the store has none yet."""
    from mlflow.tracking import MlflowClient

    try:
        found = MlflowClient(store_uri).search_experiments(max_results=limit + 1, order_by=["last_update_time DESC"])
    except Exception as exc:  # the server runs anyway; the list is a convenience
        return [f"  (experiments not listed: {type(exc).__name__})"]
    exps = [e for e in found if not (e.name == "Default" and e.experiment_id == "0")][:limit]
    if not exps:
        return [f"  (no experiments yet: a study's runs will open at {runs_url(base_url, '<id>')})"]
    width = max(len(e.name) for e in exps)
    more = ["  ... (more: see the Experiments page)"] if len(found) > limit else []
    return [f"  {e.name:<{width}}  {runs_url(base_url, e.experiment_id)}" for e in exps] + more


def group_members(pgid: int) -> list[int]:
    """Pids of live (non-zombie) processes in process group ``pgid`` (Linux ``/proc``).

    Zombies are skipped: an orphan that has exited waits for PID 1 to reap it, holds no port and
    no memory, and may linger where PID 1 is not an init system (containers, microVMs).
    """
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if fields[0] != "Z" and int(fields[2]) == pgid:
            out.append(int(entry.name))
    return out


class ServerHandle:
    """A running ``mlflow server``: ``.url``, ``.pid`` (= its process group id), ``.stop()``."""

    def __init__(self, proc: subprocess.Popen, url: str, log_path: Path) -> None:
        self.proc = proc
        self.url = url
        self.log_path = log_path
        self.pid = proc.pid

    def alive(self) -> bool:
        return bool(group_members(self.pid))

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the whole group (uvicorn shuts its workers down), SIGKILL what remains.

        Idempotent. A second Ctrl-C while waiting skips the grace period instead of leaving
        half-stopped workers behind."""
        try:
            done = self._signal_and_wait(signal.SIGTERM, timeout)
        except KeyboardInterrupt:
            self._signal_and_wait(signal.SIGKILL, timeout)
            raise
        if not done and not self._signal_and_wait(signal.SIGKILL, timeout):
            raise TrackingError(f"mlflow server group {self.pid} did not stop: {group_members(self.pid)}")

    def _signal_and_wait(self, sig: int, timeout: float) -> bool:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=0.2)  # reaps the launcher, our own child
            else:
                time.sleep(0.1)  # only its workers are left
            if not group_members(self.pid):
                return True
        return False

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def last_error(self) -> str:
        """The server log's last error line (or last line): the CLI prints errors on one line."""
        lines = [line.strip() for line in self.log_tail().splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower()]
        return (errors or lines or ["(empty log)"])[-1]


def _linux_parent_death_signal() -> None:
    """In the child before exec: SIGTERM the server's launcher if its parent dies (e.g. SIGKILL),
    so a killed ``cjepa ui`` or test session does not leave a server holding the port."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def health_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _check_port_free(host: str, port: int) -> None:
    """Say "port in use" in a second instead of after the server's ~7 s start-up."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            sock.bind((host, port))
    except OSError as exc:
        raise TrackingError(f"cannot serve on {host}:{port}: {exc.strerror}; choose another --port") from None


def launch_server(store_uri: str | None = None, host: str = "127.0.0.1", port: int = 5000,
                  artifact_root: str | None = None, workers: int = 2, log_path: Path | None = None,
                  timeout: float = START_TIMEOUT_S) -> ServerHandle:
    """Start ``mlflow server`` and return once ``/health`` answers (or raise TrackingError).

    Artifacts are *served* (``--artifacts-destination``): experiments the server creates get
    ``mlflow-artifacts:/`` locations, so Ray workers on other hosts upload through the server
    instead of writing to a path that exists only on the head node. Experiments created earlier
    directly on the SQLite file keep their absolute ``file://`` locations, readable on this host.
    """
    if not 1 <= port <= 65535:
        raise TrackingError(f"--port must be in 1..65535, got {port}")
    if workers < 1:
        raise TrackingError(f"--workers must be >= 1 (server worker processes), got {workers}")
    store_uri = resolve_tracking_uri(store_uri)
    if is_remote(store_uri):
        raise TrackingError(f"tracking URI {store_uri} is already a server: open it in a browser, or pass "
                            "--tracking-uri sqlite:////path/to/mlflow.db to serve a local store")
    artifact_root = artifact_root or default_artifact_root(store_uri)
    _check_port_free(host, port)
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="cjepa-mlflow-server-", suffix=".log")
        os.close(fd)
        log_path = Path(name)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store_uri,
           "--artifacts-destination", artifact_root, "--host", host, "--port", str(port),
           "--workers", str(workers)]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True,
                                preexec_fn=_linux_parent_death_signal if sys.platform == "linux" else None)
    probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    handle = ServerHandle(proc, f"http://{probe_host}:{port}", log_path)
    try:
        _wait_healthy(handle, host, port, timeout)
    except BaseException:  # also Ctrl-C during start-up: never leave a half-started server behind
        handle.stop()
        raise
    return handle


def _wait_healthy(handle: ServerHandle, host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.proc.poll() is not None:
            raise TrackingError(f"mlflow server on {host}:{port} exited with status {handle.proc.returncode}: "
                                f"{handle.last_error()} (full log {handle.log_path})")
        if health_ok(handle.url, timeout=1.0):
            return
        time.sleep(0.25)
    raise TrackingError(f"mlflow server on {host}:{port} did not answer /health within {timeout:g} s: "
                        f"{handle.last_error()} (full log {handle.log_path})")


@contextlib.contextmanager
def start_server(store_uri: str | None = None, host: str = "127.0.0.1", port: int = 5000,
                 artifact_root: str | None = None, workers: int = 2,
                 log_path: Path | None = None) -> Iterator[ServerHandle]:
    """``with start_server(uri, port=p) as server: ... server.url``; the group is stopped on exit."""
    handle = launch_server(store_uri, host, port, artifact_root, workers, log_path)
    try:
        yield handle
    finally:
        handle.stop()


def serve_forever(store_uri: str | None, host: str, port: int, workers: int = 2) -> int:
    """``cjepa ui``: run the server until Ctrl-C or SIGTERM, then stop its whole process group."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    uri = resolve_tracking_uri(store_uri)
    print(f"[cjepa] starting mlflow server for {uri} ...", flush=True)
    try:  # a signal at any point (start-up included) leaves through start_server's clean stop
        with start_server(uri, host, port, workers=workers) as server:
            shown = f"http://{host}:{port}" if host not in ("0.0.0.0", "::", "") else server.url
            links = experiment_links(uri, shown)  # printed before the ready line: whoever waits for it has them
            print("[cjepa] each experiment's runs in the Model training view:", *links, sep="\n", flush=True)
            print(f"[cjepa] MLflow UI at {shown}  (store {uri}; server pid {server.pid}, "
                  f"log {server.log_path}); Ctrl-C stops it", flush=True)
            if host in ("0.0.0.0", "::", ""):
                print("[cjepa] note: bound to all interfaces; the server has no authentication", flush=True)
            while server.proc.poll() is None:
                time.sleep(0.5)
            raise TrackingError(f"mlflow server exited with status {server.proc.returncode}: "
                                f"{server.last_error()} (full log {server.log_path})")
    except KeyboardInterrupt:
        print("\n[cjepa] mlflow server stopped", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
