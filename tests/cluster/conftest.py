"""A private OpenSSH server on 127.0.0.1 for the cluster-launcher tests.

Ray's local node provider reaches every node, the head included, over SSH. To run `ray up` for real
on one machine the tests start their *own* ``sshd`` (Debian's ``openssh-server``): its own host key,
its own client key and ``authorized_keys`` (``AuthorizedKeysFile``), its own ``PidFile``, a free port
on 127.0.0.1 only, in the foreground (``-D``) as a child of the test. The machine's own sshd (its
config, its port 22, its keys) is neither needed nor touched, and nothing listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

SSHD = Path("/usr/sbin/sshd")  # sshd must be started by its absolute path (it re-executes itself)
PRIVSEP_DIR = Path("/run/sshd")  # Debian's compiled-in privilege-separation directory; systemd makes it


class SshServer(NamedTuple):
    """What a client needs: ``port`` and ``key`` (unpacks as ``port, key = sshd``), plus the user."""

    port: int
    key: Path
    user: str = "root"
    log: Path | None = None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ssh_command(server: SshServer, *remote: str) -> list[str]:
    """The plain ``ssh`` invocation the fixture promises works (no known_hosts written)."""
    return ["ssh", "-i", str(server.key), "-p", str(server.port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR", f"{server.user}@127.0.0.1", *remote]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cjepa-test", "-f", str(path)],
                   check=True, capture_output=True)


def _config(root: Path, port: int) -> str:
    """sshd_config of the private server. Why each line:

    - ``ListenAddress 127.0.0.1``: never reachable from outside, whatever the machine's firewall.
    - ``StrictModes no``: the keys live under /tmp, whose mode 1777 sshd's path check rejects
      (it walks every directory up to / when the file is outside the user's home).
    - ``UsePAM no``: containers often lack a working PAM login stack; public keys need none.
    - ``PermitRootLogin prohibit-password`` and no passwords: the test's key is the only way in.
    """
    return "\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {root / 'host_ed25519'}",
        f"PidFile {root / 'sshd.pid'}",
        f"AuthorizedKeysFile {root / 'authorized_keys'}",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "StrictModes no",
        "UsePAM no",
        "PrintMotd no",
        "AllowTcpForwarding yes",  # `ray dashboard` / `ray attach -p` forward ports through SSH
        "LogLevel VERBOSE",
        "",
    ])


def _wait_until_ready(server: SshServer, proc: subprocess.Popen, deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    last = ""
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with {proc.returncode}:\n{server.log.read_text() if server.log else ''}")
        done = subprocess.run(ssh_command(server, "true"), capture_output=True, text=True, timeout=15)
        if done.returncode == 0:
            return
        last = done.stderr
        time.sleep(0.3)
    raise RuntimeError(f"sshd on 127.0.0.1:{server.port} did not accept the test key in time: {last}")


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc): sshd's per-connection processes."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def stop_process(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL: the process the fixture started and its direct children, by pid.

    sshd's listener does not end the sessions it forked (an ssh ControlMaster of Ray's can keep
    one open), so they are stopped too, by their pids, before the listener.
    """
    for child in children(proc.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """Start a private sshd on a free 127.0.0.1 port as root; yield (port, key); stop it.

    Module-scoped: `ray up`, the study and `ray down` all go through one server. Skips (does not
    fail) where the prerequisites are missing, since they are machine set-up, not project code:
    ``apt-get install openssh-server rsync netcat-openbsd`` and running as root.
    """
    if not SSHD.exists() or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("needs Debian's openssh-server and openssh-client (apt-get install -y openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("the private sshd logs in as root@127.0.0.1: run as root")
    if not PRIVSEP_DIR.is_dir():  # normally made by systemd's tmpfiles at boot; absent in containers
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True)
    root = tmp_path_factory.mktemp("sshd")
    root.chmod(0o700)
    _keygen(root / "host_ed25519")
    _keygen(root / "client_ed25519")
    (root / "authorized_keys").write_text((root / "client_ed25519.pub").read_text())
    (root / "authorized_keys").chmod(0o600)
    port = free_port()
    (root / "sshd_config").write_text(_config(root, port))
    server = SshServer(port=port, key=root / "client_ed25519", log=root / "sshd.log")
    check = subprocess.run([str(SSHD), "-t", "-f", str(root / "sshd_config")], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr  # config test mode: a bad line fails here, clearly
    proc = subprocess.Popen([str(SSHD), "-D", "-f", str(root / "sshd_config"), "-E", str(server.log)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_ready(server, proc)
        yield server
    finally:
        stop_process(proc)
