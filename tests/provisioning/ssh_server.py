"""A real OpenSSH server on loopback for the SSH executor's tests, standing in for a Proxmox node.

The server runs /usr/sbin/sshd (apt package openssh-server) on 127.0.0.1 with a free port, a host
key and a user key generated into a temporary folder, and root's login allowed for that key only.
``pct`` does not exist here, so the session's PATH starts with a folder holding a fake ``pct``
(sshd's SetEnv): it records every call and runs ``pct exec <vmid> -- <command>`` locally, which
is enough to prove what the executor sends and what comes back. Started and stopped by the
fixture; every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
START_TIMEOUT_S = 10.0

FAKE_PCT = r"""#!/bin/bash
# Fake pct for the tests: records its arguments, then behaves like pct for exec and set.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
{ printf '%s' "$$"; printf ' %q' "$@"; printf '\n'; } >> "$here/pct-calls.log"
case "${1:-}" in
    exec)
        shift; vmid="$1"; shift
        [ "${1:-}" = "--" ] && shift
        export FAKE_PCT_VMID="$vmid"
        exec "$@"
        ;;
    set)
        echo "fake pct: set $*"
        ;;
    *)
        echo "fake pct: unsupported command ${1:-}" >&2
        exit 2
        ;;
esac
"""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, timeout=30, capture_output=True,
    )


@dataclass
class SshServer:
    """What a test needs to talk to the server and to check what happened on it."""

    port: int
    directory: Path
    user_key: Path
    other_key: Path
    known_hosts: Path
    other_known_hosts: Path
    bin_dir: Path
    process: subprocess.Popen

    host: str = "127.0.0.1"
    user: str = "root"

    @property
    def pct_calls_log(self) -> Path:
        return self.bin_dir / "pct-calls.log"

    def pct_calls(self) -> list[str]:
        if not self.pct_calls_log.exists():
            return []
        return self.pct_calls_log.read_text().splitlines()

    def log(self) -> str:
        path = self.directory / "sshd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def _wait_listening(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}: {log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.settimeout(2)
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not listen on 127.0.0.1:{port} within {START_TIMEOUT_S}s: {log.read_text()}")


def start_ssh_server(directory: Path) -> SshServer:
    if not os.path.exists(SSHD):
        pytest.skip("OpenSSH server missing: apt-get install -y openssh-server")
    if os.geteuid() != 0:
        pytest.skip("the loopback sshd runs as root (privilege separation needs it)")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    host_key, user_key, other_key = directory / "host_key", directory / "user_key", directory / "other_key"
    other_host_key = directory / "other_host_key"
    for path, comment in ((host_key, "host"), (user_key, "user"), (other_key, "other"), (other_host_key, "other")):
        _keygen(path, f"maxportal-test-{comment}")
    authorized = directory / "authorized_keys"
    authorized.write_text(user_key.with_suffix(".pub").read_text())
    os.chmod(authorized, 0o600)

    bin_dir = directory / "bin"
    bin_dir.mkdir()
    (bin_dir / "pct").write_text(FAKE_PCT)
    os.chmod(bin_dir / "pct", 0o700)

    # Privilege separation needs this folder; a fresh machine without a running sshd lacks it.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    last_error: Exception | None = None
    for _attempt in range(3):  # the free port could be taken between the probe and sshd's bind
        port = _free_port()
        config = directory / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {directory / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "AllowUsers root",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "MaxStartups 50",
                    "LogLevel VERBOSE",
                    f"SetEnv PATH={bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "",
                ]
            )
        )
        log = directory / "sshd.log"
        with open(log, "ab") as log_file:
            process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            _wait_listening(port, process, log)
        except RuntimeError as exc:
            last_error = exc
            if process.poll() is None:
                process.kill()
            process.wait(timeout=5)
            continue
        host_pub = host_key.with_suffix(".pub").read_text().split()
        other_pub = other_host_key.with_suffix(".pub").read_text().split()
        known_hosts = directory / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
        # The same address pinned to another key: what a man in the middle would look like.
        other_known_hosts = directory / "other_known_hosts"
        other_known_hosts.write_text(f"[127.0.0.1]:{port} {other_pub[0]} {other_pub[1]}\n")
        return SshServer(
            port=port, directory=directory, user_key=user_key, other_key=other_key, known_hosts=known_hosts,
            other_known_hosts=other_known_hosts, bin_dir=bin_dir, process=process,
        )
    raise RuntimeError(f"could not start sshd: {last_error}")


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    """A running sshd on 127.0.0.1 (one per test module, stopped at its end)."""
    server = start_ssh_server(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        server.stop()
