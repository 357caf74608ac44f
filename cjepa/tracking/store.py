"""Where runs are tracked: resolving, checking and preparing the MLflow store.

The embedded default is a SQLite file in the working directory (``sqlite:///<cwd>/mlflow.db``),
because MLflow 3.17 refuses the plain ``./mlruns`` file store; a cluster points every process
at the head node's ``mlflow server`` instead (``--tracking-uri http://head:5000`` or the
``MLFLOW_TRACKING_URI`` env var). Every URI that leaves this module is absolute, since Ray
workers run in other working directories than the driver that resolved it.

This module imports neither torch nor the engine, so the CLI can check the store in well under
a second of its own before anything expensive starts.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cjepa.errors import TrackingError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

DB_NAME = "mlflow.db"
ARTIFACT_DIR = "mlartifacts"
ENV_URI = "MLFLOW_TRACKING_URI"
SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
HTTP_SCHEMES = ("http", "https")
LOCK_WAIT_S = 120.0  # creating and migrating a new SQLite store takes a few seconds


#: Environment variables whose values are secrets: never logged, even when a value was pasted elsewhere.
SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "RAY_AUTH_TOKEN", "AWS_SECRET_ACCESS_KEY",
              "AWS_SESSION_TOKEN", "HF_TOKEN", "GITHUB_TOKEN", "DATABRICKS_TOKEN")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*)(?::[^/@\s]*)?@")


def redact(text: str) -> str:
    """``text`` with credentials masked: ``https://user:pw@host`` -> ``https://user:***@host`` (a bare
    ``https://token@host`` -> ``https://***@host``) and the values of :data:`SECRET_ENV` -> ``***``.

    Why everywhere a URI is printed or logged: error lines end up in results.parquet and in logs
    people paste into issues, and params/tags are readable by everyone with access to the store.
    """
    def mask(m: re.Match[str]) -> str:
        has_password = ":" in m.group(0)[len(m.group("scheme")):]
        return f"{m['scheme']}{m['user']}:***@" if has_password and m["user"] else f"{m['scheme']}***@"

    out = _USERINFO.sub(mask, str(text))
    for name in SECRET_ENV:
        value = os.environ.get(name, "")
        if len(value) >= 6:  # shorter values would mask ordinary words
            out = out.replace(value, "***")
    return out


def _scheme(uri: str) -> str:
    """``postgresql+psycopg2://`` -> ``postgresql``; no ``://`` -> ``""``."""
    head, sep, _ = uri.partition("://")
    return head.split("+", 1)[0].lower() if sep else ""


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (``sqlite:////abs`` or relative), else None."""
    if _scheme(uri) != "sqlite":
        return None
    rest = uri.split("://", 1)[1]
    if not rest.startswith("/"):
        raise TrackingError(f"tracking URI {redact(uri)!r}: expected sqlite:///relative.db or sqlite:////abs/path.db")
    return Path(rest[1:].split("?", 1)[0])


def resolve_tracking_uri(uri: str | None = None) -> str:
    """``uri`` if given, else ``$MLFLOW_TRACKING_URI``, else ``sqlite:///<abs cwd>/mlflow.db``.

    A relative SQLite path is made absolute against the current directory *now*: the same string
    handed to a Ray worker (whose CWD is its trial directory) must name the same file.
    """
    chosen = uri or os.environ.get(ENV_URI) or f"sqlite:///{Path.cwd().resolve() / DB_NAME}"
    path = sqlite_path(chosen)
    if path is not None and not path.is_absolute():
        query = chosen.partition("?")[2]
        chosen = f"sqlite:///{(Path.cwd() / path).resolve()}" + (f"?{query}" if query else "")
    return chosen


def default_artifact_root(tracking_uri: str | None = None) -> str:
    """Absolute artifact directory for experiments created on a local (SQLite) store.

    ``mlartifacts/`` beside the database file, which for the embedded default is ``<cwd>/mlartifacts``.
    Without it MLflow would put artifacts in ``./mlruns`` relative to whichever directory the
    creating process happened to run in (a Ray trial directory, a test's CWD).
    """
    path = sqlite_path(tracking_uri) if tracking_uri else None
    base = path.parent if path is not None and path.is_absolute() else Path.cwd()
    return str((base / ARTIFACT_DIR).resolve())


def is_remote(uri: str) -> bool:
    """True for a tracking server (artifacts are then uploaded through it, not written locally)."""
    return _scheme(uri) in HTTP_SCHEMES


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail early, with :class:`TrackingError` saying what to do, when ``uri`` cannot be used.

    Called before the engine or Ray starts, so a typo or a stopped server costs one second, not a
    crashed run after the first epoch. Servers are probed with a bounded ``/health`` request
    (MLflow's own client retries for minutes); SQL stores with one real query, which also creates
    and migrates a new SQLite file.
    """
    scheme = _scheme(uri)
    if scheme in HTTP_SCHEMES:
        _check_server(uri, timeout)
        return
    if scheme not in SQL_SCHEMES:
        shown = scheme or (uri.partition(":")[0] if ":" in uri else "(none)")  # file:./mlruns has no "://"
        raise TrackingError(f"tracking URI {redact(uri)!r}: unsupported scheme {shown!r}; use "
                            "http(s)://host:port for an mlflow server or sqlite:////abs/path/mlflow.db "
                            "(the plain file store ./mlruns is refused by MLflow 3)")
    path = sqlite_path(uri)
    if path is not None:
        _check_sqlite_file(uri, path)
    try:
        from mlflow.tracking import MlflowClient

        with store_lock(uri):  # the first open creates and migrates the tables: one process at a time
            MlflowClient(uri).search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as exc:  # any failure here means "cannot track": say so in one line
        raise TrackingError(f"tracking URI {redact(uri)}: the store cannot be opened "
                            f"({type(exc).__name__}: {_one_line(exc)})") from None


@contextlib.contextmanager
def store_lock(uri: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold an exclusive lock on ``<db>.lock`` beside a SQLite store (no-op for other stores).

    Why: MLflow creates and migrates a new SQLite database on its first open, and two processes
    doing that at once fail (``table experiments already exists``, ``database is locked``); so do
    two that create the same experiment. Runs started together on a fresh ``./mlflow.db`` (a
    user's shell loop, Ray trials on one host) take turns here instead. Servers and SQL servers
    serialise their own schema work, so they need none.
    """
    path = sqlite_path(uri)
    fcntl = _fcntl()
    lock = path.with_name(path.name + ".lock") if path is not None else None
    with contextlib.ExitStack() as stack:
        try:  # no SQLite file, no fcntl (Windows) or a read-only folder: no lock, as before
            fh = stack.enter_context(open(lock, "a")) if lock is not None and fcntl is not None else None
        except OSError:
            fh = None
        if fh is None:
            yield
            return
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TrackingError(f"tracking store {path}: another process has held {lock} for over "
                                        f"{wait_s:g} s; is one stuck? (the lock is free once it exits)") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _fcntl():  # -> the fcntl module, or None where there is none (Windows)
    try:
        import fcntl
    except ImportError:
        return None
    return fcntl


def server_answers(uri: str, timeout: float = 2.0) -> bool:
    """Whether the tracking server at ``uri`` answers ``/health`` with 200 within ``timeout`` s."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _check_server(uri: str, timeout: float) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            if resp.status == 200:
                return
            problem = f"answered HTTP {resp.status}"
    except urllib.error.HTTPError as exc:
        problem = f"answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        timed_out = isinstance(reason, TimeoutError) or "timed out" in str(reason)
        problem = (f"did not answer within {timeout:g} s" if timed_out else "cannot be reached") + \
            f" ({_one_line(reason)})"
    raise TrackingError(f"tracking server {redact(uri)} {problem} at {redact(url)}; is an mlflow server running "
                        "there? start it (e.g. `cjepa ui`), fix --tracking-uri / MLFLOW_TRACKING_URI, or pass "
                        "--no-mlflow")


def _check_sqlite_file(uri: str, path: Path) -> None:
    """The directory must exist and take new files: SQLite writes its journal beside the database.

    A real write probe rather than ``os.access``, which says yes to root on any directory and
    knows nothing about read-only mounts.
    """
    parent = path.parent
    if not parent.is_dir():
        raise TrackingError(f"tracking URI {uri}: directory {parent} does not exist; create it or "
                            "choose another --tracking-uri")
    try:
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise TrackingError(f"tracking URI {uri}: directory {parent} is not writable ({exc.strerror}); "
                            "choose another --tracking-uri") from None
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise TrackingError(f"tracking URI {uri}: database file {path} is not readable and writable "
                            "by this user; fix its permissions or choose another --tracking-uri")


def _one_line(obj: object) -> str:
    text = redact(" ".join(str(obj).split()))
    return text if len(text) <= 300 else text[:297] + "..."


def experiment_artifact_location(tracking_uri: str, name: str) -> str | None:
    """Artifact location for a new experiment: a folder per experiment under the local root, or
    None on a server (which then chooses, e.g. ``mlflow-artifacts:/`` proxied uploads)."""
    if is_remote(tracking_uri):
        return None
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"
    return Path(default_artifact_root(tracking_uri), safe).as_uri()


def get_or_create_experiment(client: MlflowClient, name: str) -> str:
    """The id of experiment ``name``, created (with a proper artifact root) when missing.

    Safe when many runs or Ray trials start at once: on a SQLite store they take turns
    (:func:`store_lock`), elsewhere losing the creation race is not an error.
    """
    with store_lock(client.tracking_uri):
        return _get_or_create_experiment(client, name)


def _get_or_create_experiment(client: MlflowClient, name: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage != "active":
            raise TrackingError(f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments "
                                "restore) or choose another --experiment")
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=experiment_artifact_location(
            client.tracking_uri, name))
    except MlflowException as exc:
        again = client.get_experiment_by_name(name)
        if again is None:
            raise TrackingError(f"cannot create MLflow experiment {name!r} at {redact(client.tracking_uri)}: "
                                f"{_one_line(exc)}") from None
        return again.experiment_id


def git_commit(path: Path | None = None) -> str:
    """``git rev-parse HEAD`` of the checkout holding this package, "unknown" outside one."""
    where = path or Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"
