"""The private sshd fixture works on its own (no Ray): the first thing `ray up` on 127.0.0.1 needs."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest

from tests.cluster.conftest import SshServer, ssh_command

pytestmark = pytest.mark.integration  # every test logs in to a private sshd


def test_key_login_to_127_0_0_1_works(sshd: SshServer) -> None:
    port, key = sshd.port, sshd.key
    done = subprocess.run(["ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
                           "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "root@127.0.0.1", "true"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr


def test_login_shell_runs_commands_as_root(sshd: SshServer) -> None:
    """Ray runs every node command as ``ssh -tt ... bash --login -c -i '...'``: a pty and a login shell."""
    done = subprocess.run(ssh_command(sshd, "-tt", "bash", "--login", "-c", "-i", "'id -u; echo ok'"),
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "0" in done.stdout.split() and "ok" in done.stdout


def test_listens_on_loopback_only(sshd: SshServer) -> None:
    with open("/proc/net/tcp") as f:  # local_address is hex IP:port, state 0A = LISTEN
        listening = [line.split()[1] for line in f.readlines()[1:] if line.split()[3] == "0A"]
    ours = [addr for addr in listening if int(addr.split(":")[1], 16) == sshd.port]
    assert ours == ["0100007F:" + f"{sshd.port:04X}"], ours  # 127.0.0.1 in little-endian hex, and nothing else


def test_a_key_it_does_not_know_is_refused(sshd: SshServer, tmp_path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    done = subprocess.run(ssh_command(sshd._replace(key=stranger), "true"), capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 255, done.stdout


def test_rsync_and_proxy_command_reach_it(sshd: SshServer, tmp_path) -> None:
    """How Ray reaches a non-22 port: ``auth: ssh_proxy_command: nc %h PORT`` (Ray has no ssh_port
    option); rsync (file_mounts, the bootstrap config) goes through the same ssh options."""
    if shutil.which("rsync") is None or shutil.which("nc") is None:
        pytest.skip("needs rsync and netcat-openbsd (apt-get install -y rsync netcat-openbsd)")
    src, dst = tmp_path / "src.txt", tmp_path / "dst.txt"
    src.write_text("hello")
    rsh = (f"ssh -i {sshd.key} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes "
           f"-o BatchMode=yes -o 'ProxyCommand=nc %h {sshd.port}'")
    done = subprocess.run(["rsync", "-az", "--rsh", rsh, str(src), f"root@127.0.0.1:{dst}"], capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert dst.read_text() == "hello"
    with socket.create_connection(("127.0.0.1", sshd.port), timeout=5) as s:
        assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
