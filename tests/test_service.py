"""`cdir service start|status|token|logs|stop` as real processes: the service comes up in the
background, later commands become its clients (and import no ORM nor SDK), the token file is
private, a rotated token works at once, TLS, and the binds that are refused."""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fakes.serve import free_port
from tests.processes import Cdir

pytestmark = pytest.mark.slow


@pytest.fixture
def c(tmp_path: Path) -> Iterator[Cdir]:
    cdir = Cdir(tmp_path / "home")
    cdir.add_local("laptop", tmp_path / "laptop")
    try:
        yield cdir
    finally:
        cdir.run("service", "stop", code=None)
        cdir.run("daemon", "stop", code=None)


def _state(c: Cdir) -> dict[str, object]:
    return dict(json.loads((c.home / "service.json").read_text()))


def test_start_then_commands_are_its_clients_then_stop(c: Cdir, tmp_path: Path) -> None:
    port = free_port()
    r = c.run("service", "start", "--port", str(port))
    assert f"cdir: service started at http://127.0.0.1:{port}" in r.stdout
    state = _state(c)
    assert state["daemon_pid"], "the sync daemon starts with the service"
    token_file = c.home / "service.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = c.run("service", "token").stdout.strip()
    assert token == token_file.read_text().strip() and len(token) >= 40
    assert token not in (c.home / "service.log").read_text()
    status = json.loads(c.run("service", "status", "-o", "json").stdout)
    assert status[0]["healthy"] is True and status[0]["url"] == f"http://127.0.0.1:{port}"
    # a command of this home goes through the service: its request is in the service's log
    (tmp_path / "f.txt").write_text("through the service")
    assert "put: 1 file(s)" in c.run("put", str(tmp_path / "f.txt"), "/f.txt").stdout
    assert "PUT /api/v1/files/f.txt" in (c.home / "service.log").read_text()
    assert c.run("ls", "/").stdout.split() == ["f.txt"]
    # its client imports neither the ORM nor a provider SDK
    probe = (
        "import sys, runpy\nsys.argv = ['cdir', 'ls', '/']\n"
        "try:\n    runpy.run_module('cdir', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sqlalchemy', 'sqlmodel', 'boto3', 'azure', 'asyncssh', 'httpx')"
        " if m in sys.modules]\nprint('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], env=c.env, capture_output=True, text=True)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr
    # a second start is refused in one line; a wrong token is one line too
    again = c.run("service", "start", "--port", str(port), code=1)
    assert again.stderr.startswith("cdir: error: the service runs already at")
    env = {**c.env, "CDIR_TOKEN": "wrong"}
    wrong = subprocess.run(
        [sys.executable, "-m", "cdir", "ls", "/"], env=env, capture_output=True, text=True
    )
    assert wrong.returncode == 1 and wrong.stderr.startswith("cdir: error: wrong token")
    # rotate: the next command works with the new token at once
    old = token
    new = c.run("service", "token", "--rotate").stdout.strip()
    assert new != old and c.run("ls", "/").stdout.split() == ["f.txt"]
    assert (
        httpx.get(
            f"http://127.0.0.1:{port}/api/v1/providers", headers={"Authorization": f"Bearer {old}"}
        ).status_code
        == 401
    )
    assert "GET /api/v1/entries" in c.run("service", "logs", "-n", "50").stdout
    r = c.run("service", "stop")
    assert "cdir: service stopped" in r.stdout and "daemon stopped" in r.stdout
    assert not (c.home / "service.json").exists()
    # without a service, the same commands work on the catalog directly
    assert c.run("ls", "/").stdout.split() == ["f.txt"]
    assert c.run("service", "status", code=1).stderr == "cdir: no service running\n"


def test_binds_that_are_refused(c: Cdir, tmp_path: Path) -> None:
    r = c.run("service", "start", "--host", "0.0.0.0", "--port", str(free_port()), code=2)
    assert r.stderr.startswith("cdir: error: refusing to serve on 0.0.0.0 without TLS")
    r = c.run("service", "start", "--certfile", str(tmp_path / "c.pem"), code=2)
    assert r.stderr == "cdir: error: TLS needs both --certfile and --keyfile\n"
    busy = free_port()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", busy))
        s.listen()
        r = c.run("service", "start", "--port", str(busy), "--no-daemon", code=1)
    assert r.stderr.startswith("cdir: error:") and "Traceback" not in r.stderr
    assert "address already in use" in r.stderr.lower()


def test_docker_without_an_engine_says_so(c: Cdir) -> None:
    r = c.run("service", "start", "--docker", code=2)
    assert r.stderr.startswith("cdir: error: --docker:")
    assert len(r.stderr.splitlines()) == 1


def test_tls(c: Cdir, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    r = c.run(
        "service",
        "start",
        "--port",
        str(port),
        "--certfile",
        str(cert),
        "--keyfile",
        str(key),
        "--no-daemon",
    )
    assert f"https://127.0.0.1:{port}" in r.stdout
    token = c.run("service", "token").stdout.strip()
    import ssl

    got = httpx.get(
        f"https://127.0.0.1:{port}/api/v1/providers",
        verify=ssl.create_default_context(cafile=str(cert)),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert got.status_code == 200 and got.json()[0]["name"] == "laptop"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # no clear text


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path
