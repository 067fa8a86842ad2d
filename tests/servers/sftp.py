"""OpenSSH sshd on a free 127.0.0.1 port, key authentication, for the sftp provider.

`sftp_server` (pytest, session scope) and `sftp_server_running()` (plain context manager, for
benchmarks) both yield an `SFTPServer`; `provider_config()` turns it into what `cdir provider add`
takes, `rclone_env()` into an rclone remote for the same server.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import getpass
import hashlib
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers.util import free_port, running, scratch_dir

SSHD = "/usr/sbin/sshd"  # re-exec needs the absolute path


@dataclass(frozen=True)
class SFTPServer:
    host: str
    port: int
    username: str
    private_key: str = field(repr=False)  # OpenSSH text of the client key
    key_file: Path  # the same key on disk (for rclone)
    host_key: str  # pinned fingerprint, "ssh-ed25519 SHA256:..."
    known_hosts: Path  # an OpenSSH known_hosts file with the host key (for rclone)
    data_dir: Path  # where test roots live; the server runs on this machine

    def fresh_root(self) -> str:
        """A new, empty remote directory (absolute path) for one test or benchmark."""
        root = self.data_dir / uuid.uuid4().hex[:12]
        root.mkdir()
        return str(root)


def _fingerprint(pub_line: str) -> str:
    """`ssh-ed25519 SHA256:...` from an OpenSSH public key line, computed independently of the
    provider so tests check its fetch_host_key."""
    kind, blob = pub_line.split()[:2]
    digest = base64.b64encode(hashlib.sha256(base64.b64decode(blob)).digest()).decode()
    return f"{kind} SHA256:{digest.rstrip('=')}"


def _keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cdir-test", "-f", str(path)],
        check=True,
    )
    return path.with_suffix(".pub").read_text()


def _banner(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        return s.recv(8).startswith(b"SSH-2.0")


@contextlib.contextmanager
def sftp_server_running() -> Iterator[SFTPServer]:
    """Start sshd with a fresh host key, client key and data dir; stop it and clean up after."""
    if not os.path.exists(SSHD):
        raise RuntimeError("OpenSSH server not installed: apt-get install -y openssh-server")
    with scratch_dir("cdir-sshd-") as work:
        host_pub = _keygen(work / "host_ed25519")
        client_pub = _keygen(work / "client_ed25519")
        (work / "authorized_keys").write_text(client_pub)
        data = work / "data"
        data.mkdir()
        port = free_port()
        user = getpass.getuser()
        root = os.geteuid() == 0
        if root:
            os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
        (work / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1\nPort {port}\n"
            f"HostKey {work}/host_ed25519\nPidFile {work}/sshd.pid\n"
            f"AuthorizedKeysFile {work}/authorized_keys\n"
            f"PermitRootLogin {'prohibit-password' if root else 'no'}\n"
            "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n"
            "UsePAM no\nStrictModes no\nUseDNS no\n"
            # ERROR only: the log goes to a pipe nobody drains while sshd runs
            "LogLevel ERROR\n"
            "Subsystem sftp internal-sftp\n"
        )
        (work / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(host_pub.split()[:2])}\n")
        with running(
            [SSHD, "-D", "-e", "-f", str(work / "sshd_config")], lambda: _banner(port), "sshd"
        ):
            yield SFTPServer(
                host="127.0.0.1",
                port=port,
                username=user,
                private_key=(work / "client_ed25519").read_text(),
                key_file=work / "client_ed25519",
                host_key=_fingerprint(host_pub),
                known_hosts=work / "known_hosts",
                data_dir=data,
            )


@pytest.fixture(scope="session")
def sftp_server() -> Iterator[SFTPServer]:
    with sftp_server_running() as server:
        yield server


@pytest.fixture
def own_sftp_server() -> Iterator[SFTPServer]:
    """An sshd for one test alone, which may change its host key (see `rekey`)."""
    with sftp_server_running() as server:
        yield server


def rekey(server: SFTPServer) -> SFTPServer:
    """Give the server a new host key, as an admin who reinstalls a host does: a new key
    file, then SIGHUP (sshd re-executes itself and reads it). Returns the server with its new
    fingerprint once ssh-keyscan sees it. Only for `own_sftp_server`: others share theirs."""
    work = server.data_dir.parent
    fresh = work / f"rekey-{uuid.uuid4().hex[:8]}"
    fresh.mkdir()
    pub = _keygen(fresh / "host_ed25519")
    (fresh / "host_ed25519").replace(work / "host_ed25519")
    (fresh / "host_ed25519.pub").replace(work / "host_ed25519.pub")
    want = _fingerprint(pub)
    os.kill(int((work / "sshd.pid").read_text()), signal.SIGHUP)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        scan = subprocess.run(
            ["ssh-keyscan", "-T", "2", "-t", "ed25519", "-p", str(server.port), server.host],
            capture_output=True,
            text=True,
        )
        lines = [ln.split(None, 1)[1] for ln in scan.stdout.splitlines() if ln and ln[0] != "#"]
        if any(_fingerprint(ln) == want for ln in lines):
            (work / "known_hosts").write_text(
                f"[{server.host}]:{server.port} {' '.join(pub.split()[:2])}\n"
            )
            return dataclasses.replace(server, host_key=want)
        time.sleep(0.1)
    raise RuntimeError("sshd did not take its new host key in 20 s")


def provider_config(server: SFTPServer, root: str | None = None) -> dict[str, Any]:
    """`cdir provider add` inputs for this server: kind, root, options and secrets."""
    return {
        "kind": "sftp",
        "root": root if root is not None else server.fresh_root(),
        "options": {
            "host": server.host,
            "port": server.port,
            "username": server.username,
            "host_key": server.host_key,
        },
        "secrets": {"private_key": server.private_key},
    }


def rclone_env(server: SFTPServer, name: str = "SFTP", hashcheck: bool = True) -> dict[str, str]:
    """Env vars defining rclone remote `name` for this server; paths on it are absolute
    (`NAME:/abs/dir`). hashcheck=False sets disable_hashcheck: by default rclone runs a remote
    `md5sum` per file, which is what made it slow here."""
    p = f"RCLONE_CONFIG_{name.upper()}_"
    env = {
        p + "TYPE": "sftp",
        p + "HOST": server.host,
        p + "PORT": str(server.port),
        p + "USER": server.username,
        p + "KEY_FILE": str(server.key_file),
        p + "KNOWN_HOSTS_FILE": str(server.known_hosts),
    }
    if not hashcheck:
        env[p + "DISABLE_HASHCHECK"] = "true"
    return env
