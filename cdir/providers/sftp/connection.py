"""One SSH connection and its SFTP session, and how it is made: private keys, host key check,
authentication, the ciphers preferred."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncssh
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from cdir.errors import UsageError
from cdir.providers.sftp import loop
from cdir.providers.sftp.hostkeys import HostKeyCheck, Pin, key_algorithms, no_known_hosts

T = TypeVar("T")

SAFE_REQUEST = 32 * 1024  # the read/write size every SFTP server must accept (draft-02)
MAX_REQUEST = 255 * 1024  # cap for what a server's limits@openssh.com may allow
# Our SSH channel window: what the server may send before we read it (16 replies of 255 KiB)
WINDOW = 4 * 1024 * 1024
# Preferred first (the others asyncssh offers follow): AES-GCM encrypts and authenticates in
# one call into OpenSSL per packet, the fewest of any cipher here.
CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
KEEPALIVE = 30  # seconds: idle pooled connections survive NAT and firewalls


@dataclass
class Conn:
    """An SSH connection and its SFTP client, used by one thread at a time (see Pool).

    `run` and `start` hand coroutines to the event loop; `max_read`/`max_write` are the
    request sizes the server accepts."""

    ssh: asyncssh.SSHClientConnection
    sftp: asyncssh.SFTPClient
    timeout: float
    max_read: int = SAFE_REQUEST
    max_write: int = SAFE_REQUEST
    posix_rename: bool = True

    def __post_init__(self) -> None:
        limits = self.sftp.limits  # from limits@openssh.com, when the server has it
        if limits.max_read_len:
            self.max_read = max(SAFE_REQUEST, min(limits.max_read_len, MAX_REQUEST))
        if limits.max_write_len:
            self.max_write = max(SAFE_REQUEST, min(limits.max_write_len, MAX_REQUEST))

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """`coro` run on the loop; TimeoutError when the server is silent for `timeout`."""
        return loop.run(coro, self.timeout)

    def run_paced(self, coro: Coroutine[Any, Any, T]) -> T:
        """`coro` run on the loop with no overall limit: it keeps its own (`tree.paced`)."""
        return loop.run(coro, None)

    def start(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return loop.submit(coro)

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        return loop.wait(future, self.timeout)

    def alive(self) -> bool:
        return not self.ssh.is_closed()

    def close(self, abort: bool = False) -> None:
        """Close now (from the loop thread) or close and wait a moment (from any other).
        `abort`: drop it without a goodbye (a server that stopped answering would never
        take it)."""
        if loop.on_loop_thread():
            self.ssh.abort() if abort else self.ssh.close()
            return

        async def close() -> None:
            self.ssh.abort() if abort else self.ssh.close()
            await self.ssh.wait_closed()

        with suppress(Exception):
            loop.run(close(), 5)


@dataclass(frozen=True)
class Login:
    """What a connection needs: where, who, and the pinned host key."""

    name: str
    host: str
    port: int
    username: str
    timeout: float
    pin: Pin | None
    key: asyncssh.SSHKey | None = field(repr=False)
    password: str | None = field(repr=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


async def _open(login: Login) -> Conn:
    check = HostKeyCheck(login.pin)
    auth = [a for a, have in (("publickey", login.key), ("password", login.password)) if have]
    try:
        ssh = await asyncssh.connect(
            login.host,
            login.port,
            username=login.username,
            client_factory=lambda: check,
            known_hosts=no_known_hosts,
            server_host_key_algs=key_algorithms(login.pin[0] if login.pin else None),
            client_keys=[login.key] if login.key else None,
            password=login.password,
            preferred_auth=auth,
            # nothing from the environment: no ~/.ssh/config, agent, default keys, GSS
            config=None,
            agent_path=None,
            gss_host=None,
            x509_trusted_certs=None,
            encryption_algs="^" + ",".join(CIPHERS),  # first, then asyncssh's defaults
            compression_algs=None,
            keepalive_interval=KEEPALIVE,
            connect_timeout=login.timeout,
            login_timeout=login.timeout,
            window=WINDOW,
        )
    except asyncssh.HostKeyNotVerifiable:
        if check.seen is None:
            raise
        raise check.refusal(login.name, login.where) from None
    try:
        sftp = await ssh.start_sftp_client(path_errors="surrogateescape")
    except BaseException:
        ssh.close()
        raise
    return Conn(ssh, sftp, login.timeout)


def connect(login: Login) -> Conn:
    """A new connection (TCP, key exchange, host key check, login, SFTP session)."""
    return loop.run(asyncio.wait_for(_open(login), 3 * login.timeout), 3 * login.timeout + 5)


def load_key(text: str, passphrase: str | None, name: str) -> asyncssh.SSHKey:
    """A private key from OpenSSH or PEM text (ed25519, ECDSA, RSA). cryptography reads it
    (its errors tell a missing passphrase from a wrong one) and hands asyncssh the key in
    clear, so an encrypted key's slow key derivation runs once."""
    data, password = text.encode(), passphrase.encode() if passphrase else None
    try:
        try:
            loaded: Any = serialization.load_ssh_private_key(data, password)
        except ValueError:
            if b"OPENSSH PRIVATE KEY" in data:
                raise
            loaded = serialization.load_pem_private_key(data, password)
        clear = loaded.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        return asyncssh.import_private_key(clear)
    except TypeError:  # encrypted, and no passphrase given
        raise UsageError(f"{name}: the private key needs its passphrase (key_passphrase)") from None
    except (ValueError, UnsupportedAlgorithm, AttributeError, asyncssh.KeyImportError) as exc:
        raise UsageError(
            f"{name}: cannot read the private key (wrong passphrase or not an "
            f"OpenSSH/PEM key: {type(exc).__name__})"
        ) from None
