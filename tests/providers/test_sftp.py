"""The sftp provider against OpenSSH sshd: the conformance suite, plus what only SSH shows (host
key pinning, authentication, the connection pool)."""

from __future__ import annotations

import io
import os
import subprocess
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from cdir.errors import NotFound, UsageError
from cdir.providers.base import RemoteStat
from cdir.providers.sftp import SFTPProvider, fetch_host_key
from cdir.providers.testing import ProviderSuite, kinds, stream
from tests.providers.helpers import auth_refused, one_line_error, unavailable
from tests.servers.sftp import SFTPServer, provider_config
from tests.servers.util import free_port

MiB = 1024 * 1024


def make(
    server: SFTPServer,
    root: str | None = None,
    secrets: dict[str, str] | None = None,
    **options: Any,
) -> SFTPProvider:
    cfg = provider_config(server, root)
    opts = {k: v for k, v in {**cfg["options"], **options}.items() if v is not None}
    return SFTPProvider("t", cfg["root"], opts, cfg["secrets"] if secrets is None else secrets)


@pytest.fixture(scope="module")
def shared(sftp_server: SFTPServer) -> Iterator[SFTPProvider]:
    p = make(sftp_server)
    yield p
    p.close()


class TestSFTP(ProviderSuite):
    known_gaps = {
        # SFTP v3 shows a file's size and whole-second mtime, nothing else that changes (no
        # inode, ctime or hash; OpenSSH has no extension for them), so a same-size rewrite in
        # the same second, or with the same mtime set, looks unchanged. rclone's sftp backend
        # has the same blind spot unless it runs md5sum in a remote shell for every file.
        "test_fingerprint_changes_with_same_size_content": "SFTP v3 stat is size + seconds",
    }

    @pytest.fixture
    def provider(self, shared: SFTPProvider) -> SFTPProvider:
        return shared


@pytest.fixture
def sftp(sftp_server: SFTPServer) -> Iterator[SFTPProvider]:
    p = make(sftp_server)
    yield p
    p.close()


# --- host keys --------------------------------------------------------------------------------
def test_fetch_host_key_gives_the_pinned_fingerprint(sftp_server: SFTPServer) -> None:
    # the fixture computed it from the key file, as `ssh-keygen -l` does
    assert fetch_host_key(sftp_server.host, sftp_server.port) == sftp_server.host_key


def test_changed_host_key_is_refused(sftp_server: SFTPServer) -> None:
    wrong = "ssh-ed25519 SHA256:" + "A" * 43
    p = make(sftp_server, host_key=wrong)
    text = auth_refused(lambda: p.stat(""))
    assert f"host key for {sftp_server.host}:{sftp_server.port} changed" in text
    assert f"expected {wrong} got {sftp_server.host_key}" in text


def test_unknown_host_key_says_how_to_pin_it(sftp_server: SFTPServer) -> None:
    p = make(sftp_server, host_key=None)
    text = auth_refused(lambda: list(p.list("")))
    fp = sftp_server.host_key
    assert "unknown host key" in text and f"({fp})" in text
    assert f"--option host_key='{fp}'" in text


def test_bare_sha256_pin_is_accepted(sftp_server: SFTPServer) -> None:
    p = make(sftp_server, host_key=sftp_server.host_key.split()[1])
    p.check()
    p.close()
    with pytest.raises(UsageError):
        make(sftp_server, host_key="not a fingerprint")


# --- authentication and reachability -----------------------------------------------------------
def test_wrong_password_is_an_auth_error(sftp_server: SFTPServer) -> None:
    p = make(sftp_server, secrets={"password": "not-the-password"})
    auth_refused(p.check, "not-the-password")


def test_wrong_key_is_an_auth_error(sftp_server: SFTPServer, tmp_path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True
    )
    key = (tmp_path / "k").read_text()
    p = make(sftp_server, secrets={"private_key": key})
    auth_refused(p.check, "PRIVATE KEY")


def test_key_with_a_passphrase(sftp_server: SFTPServer, tmp_path: Path) -> None:
    subprocess.run(
        [
            "ssh-keygen",
            "-q",
            "-t",
            "ecdsa",
            "-a",
            "2",
            "-N",
            "open sesame",
            "-f",
            str(tmp_path / "k"),
        ],
        check=True,
    )
    authorized = sftp_server.key_file.parent / "authorized_keys"  # sshd reads it at each login
    authorized.write_text(authorized.read_text() + (tmp_path / "k.pub").read_text())
    key = (tmp_path / "k").read_text()
    p = make(sftp_server, secrets={"private_key": key, "key_passphrase": "open sesame"})
    p.check()
    p.close()
    with pytest.raises(UsageError, match="passphrase"):
        make(sftp_server, secrets={"private_key": key}).check()
    with pytest.raises(UsageError, match="passphrase") as exc:
        make(sftp_server, secrets={"private_key": key, "key_passphrase": "xyzzy-42"}).check()
    one_line_error(exc, "xyzzy-42")


def test_key_file_option(sftp_server: SFTPServer) -> None:
    p = make(sftp_server, secrets={}, key_file=str(sftp_server.key_file))
    p.check()
    p.close()


def test_closed_port_is_unavailable_and_retryable(sftp_server: SFTPServer) -> None:
    p = make(sftp_server, port=free_port(), timeout=5)
    unavailable(lambda: p.stat("x"))


def test_missing_root(sftp_server: SFTPServer) -> None:
    root = f"{sftp_server.fresh_root()}/not/yet"
    p = make(sftp_server, root=root)
    assert list(p.list("")) == []  # nothing stored yet
    with pytest.raises(NotFound) as exc:
        p.check()
    assert root in one_line_error(exc)
    p.put_stream(stream(b"x"), "f")  # the first put creates it
    p.check()
    assert kinds(p, "") == {"f": "file"}
    p.close()


# --- the connection pool -----------------------------------------------------------------------
class _GatedStream(io.RawIOBase):
    """Data whose first read waits at a barrier, so n uploads are provably in flight at once."""

    def __init__(
        self, data: bytes, gate: threading.Barrier | None, live: list[int], lock: threading.Lock
    ) -> None:
        super().__init__()
        self._data, self._gate, self._live, self._lock = io.BytesIO(data), gate, live, lock
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._started:
            self._started = True
            with self._lock:
                self._live[0] += 1
                self._live[1] = max(self._live[1], self._live[0])
            if self._gate is not None:
                self._gate.wait(timeout=30)
        n = self._data.readinto(buffer)
        if n == 0:
            with self._lock:
                self._live[0] -= 1
        return n


def _parallel_puts(p: SFTPProvider, n: int, gate: threading.Barrier | None) -> list[int]:
    live, lock = [0, 0], threading.Lock()
    errors: list[BaseException] = []

    def put(i: int) -> None:
        try:
            p.put_stream(_GatedStream(os.urandom(50_000), gate, live, lock), f"p/{i}")  # type: ignore[arg-type]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return live


def test_pool_runs_transfers_in_parallel(sftp_server: SFTPServer) -> None:
    p = make(sftp_server, connections=4)
    _parallel_puts(p, 4, threading.Barrier(4))  # would hang with fewer than 4 connections
    assert p._pool._open == 4
    assert len(kinds(p, "p")) == 4
    p.close()


def test_pool_is_bounded(sftp_server: SFTPServer) -> None:
    p = make(sftp_server, connections=2)
    live = _parallel_puts(p, 6, None)
    assert live[1] <= 2  # never more uploads at once than connections
    assert p._pool._open <= 2
    assert len(kinds(p, "p")) == 6
    p.close()


def test_dead_connection_is_replaced(sftp: SFTPProvider) -> None:
    sftp.put_stream(stream(b"x"), "f")
    conn, generation = sftp._pool.borrow()
    sftp._pool.give_back(conn, generation, False)
    conn.close()  # as if the server had dropped it while idle
    assert sftp.read_bytes("f") == b"x"


def test_abandoned_read_leaves_the_connection_usable(sftp_server: SFTPServer) -> None:
    p = make(sftp_server, connections=1)
    data = os.urandom(4 * MiB)
    p.put_stream(io.BytesIO(data), "big")
    chunks = cast(Generator[bytes, None, None], p.read_chunks("big"))
    first = next(chunks)
    assert data.startswith(first) and len(first) < len(data)
    chunks.close()  # replies still in flight must not reach the next request
    assert p.read_bytes("big", 1000, 2000) == data[1000:2000]
    assert p.stat("big").size == len(data)
    assert p._pool._open == 1
    p.close()


def test_upload_goes_through_a_hidden_temporary(sftp: SFTPProvider) -> None:
    seen: list[set[str]] = []
    root = Path(sftp.root)

    class Spy(io.RawIOBase):
        def __init__(self) -> None:
            self._left = 3

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if not self._left:
                return 0
            self._left -= 1
            seen.append({e.name for e in os.scandir(root / "d")})
            buffer[:1] = b"x"
            return 1

    sftp.put_stream(stream(b"old"), "d/f")
    sftp.put_stream(Spy(), "d/f")  # type: ignore[arg-type]
    tmp = [n for n in seen[-1] if n != "f"]
    assert len(tmp) == 1 and tmp[0].startswith(".cdir-tmp-")
    assert sorted(os.listdir(root / "d")) == ["f"]
    assert kinds(sftp, "d") == {"d/f": "file"}


def test_recursive_list_enters_each_directory_once(sftp: SFTPProvider) -> None:
    root = Path(sftp.root)
    sftp.put_stream(stream(b"x"), "d/f")
    sftp.put_stream(stream(b"y"), "e/g")
    os.symlink("..", root / "d" / "up")  # a loop
    os.symlink("../e", root / "d" / "e-link")  # a second way into e
    os.symlink("f", root / "d" / "f-link")  # a link to a file reads as the file
    os.symlink("nowhere", root / "d" / "dangling")  # left out
    got = kinds(sftp, "", recursive=True)
    # e's file shows once, below whichever way in was taken first
    assert ("e/g" in got) != ("d/e-link/g" in got)
    got.pop("e/g", None) or got.pop("d/e-link/g")
    assert got == {
        "d": "dir",
        "d/f": "file",
        "d/up": "dir",
        "d/e-link": "dir",
        "d/f-link": "file",
        "e": "dir",
    }
    assert sftp.read_bytes("d/f-link") == b"x"


def test_recursive_list_stopped_early_hands_connections_back(sftp_server: SFTPServer) -> None:
    p = make(sftp_server, connections=2)
    for i in range(20):
        p.put_stream(stream(b"x"), f"d{i}/f")
    listing = cast(Generator[RemoteStat, None, None], p.list("", recursive=True))
    next(listing)
    listing.close()
    assert p.read_bytes("d0/f") == b"x"  # would wait forever if a listing kept connections
    assert p._pool._open <= 2
    p.close()
