"""Host key pinning: the server's key must have the fingerprint given as `host_key`.

A fingerprint reads as `ssh-keygen -l` prints it, `KEYTYPE SHA256:…` (the bare `SHA256:…` is
accepted too). asyncssh is given no known_hosts to trust, so it asks `HostKeyCheck` about every
key; a refusal there ends the handshake, and the provider then says which key it saw.
"""

from __future__ import annotations

import asyncio

import asyncssh

from cdir.errors import AuthError, UsageError, translated
from cdir.providers.sftp import loop
from cdir.providers.sftp.errors import ERRORS

Pin = tuple[str | None, str]  # (key type or None, "SHA256:...")


def fingerprint(key: asyncssh.SSHKey) -> str:
    """OpenSSH-style `ssh-ed25519 SHA256:...` of a public key."""
    return f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"


def parse_pin(pin: str) -> Pin:
    """(key type or None, "SHA256:...") from `host_key`; a bare "SHA256:..." is accepted."""
    parts = pin.split()
    if not parts or not parts[-1].startswith("SHA256:") or len(parts) > 2:
        raise UsageError(
            f"host_key {pin!r}: expected 'KEYTYPE SHA256:...' as `ssh-keygen -l` prints it"
        )
    return (parts[0] if len(parts) == 2 else None), parts[-1].rstrip("=")


def key_algorithms(kind: str | None) -> tuple[str, ...]:
    """The host key algorithms to ask for: the pinned kind when the server has several."""
    if kind is None:
        return ()
    return ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa") if kind == "ssh-rsa" else (kind,)


def no_known_hosts(host: str, addr: str, port: int | None) -> tuple[list[str], ...]:
    """asyncssh's known_hosts hook: nothing trusted up front, every key goes to HostKeyCheck
    (and ~/.ssh/known_hosts is never read)."""
    return [], [], []


class HostKeyCheck(asyncssh.SSHClient):
    """Accepts the server's key only when it matches `pin`; remembers the one it saw."""

    def __init__(self, pin: Pin | None) -> None:
        self.pin = pin
        self.seen: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.seen = fingerprint(key)
        if self.pin is None:
            return False
        kind, digest = self.pin
        return key.get_fingerprint("sha256") == digest and kind in (None, key.get_algorithm())

    def refusal(self, name: str, where: str) -> AuthError:
        """What to say when the handshake ended here: the key is unknown, or it changed."""
        got = self.seen
        if self.pin is None:
            return AuthError(
                f"{name}: unknown host key for {where} ({got}): add it with "
                f"--option host_key='{got}'"
            )
        kind, digest = self.pin
        expected = f"{kind} {digest}" if kind else digest
        return AuthError(
            f"{name}: host key for {where} changed: expected {expected} got {got} "
            f"(if the server's key was replaced on purpose: cdir provider pin {name})"
        )


# key type → the name OpenSSH's messages use ("The ED25519 host key ... has changed")
_KEY_NAMES = {
    "ssh-ed25519": "ED25519",
    "ssh-rsa": "RSA",
    "ssh-dss": "DSA",
    "ecdsa-sha2-nistp256": "ECDSA",
    "ecdsa-sha2-nistp384": "ECDSA",
    "ecdsa-sha2-nistp521": "ECDSA",
    "sk-ssh-ed25519@openssh.com": "ED25519-SK",
    "sk-ecdsa-sha2-nistp256@openssh.com": "ECDSA-SK",
}


def show_host_key(pin: str) -> str:
    """A pinned fingerprint as OpenSSH names it to people: `ssh-ed25519 SHA256:x` →
    `ED25519 SHA256:x` (a bare `SHA256:x` or an unknown type is shown as it is)."""
    parts = pin.split()
    if len(parts) == 2 and parts[0] in _KEY_NAMES:
        return f"{_KEY_NAMES[parts[0]]} {parts[1]}"
    return pin


def fetch_host_key(host: str, port: int = 22, timeout: float = 15.0) -> str:
    """Connect, read the server's host key and return its fingerprint (to show and pin)."""

    async def fetch() -> asyncssh.SSHKey | None:
        return await asyncio.wait_for(
            asyncssh.get_server_host_key(host, port, config=None), timeout
        )

    with translated(ERRORS, f"{host}:{port}"):
        key = loop.run(fetch(), timeout + 5)
        if key is None:  # only a GSS key exchange shows no key, and we offer none
            raise AuthError(f"{host}:{port}: the server showed no host key")
        return fingerprint(key)
