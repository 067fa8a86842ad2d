"""The encrypted credentials vault: one file holding every provider's secrets.

File layout (all integers big-endian)::

    magic    8 bytes   b"CDIRVLT1"
    kdf      1 byte    1 = scrypt
    log2(n)  1 byte    scrypt cost
    r        4 bytes   scrypt block size
    p        4 bytes   scrypt parallelism
    salt    16 bytes   random, new on every write
    nonce   12 bytes   random, new on every write
    ciphertext + 16-byte tag   AES-256-GCM of the JSON {ref: {name: value}}

The whole header is the AES-GCM associated data, so changing any of it (including the KDF
parameters) makes decryption fail. The KDF parameters live in the header so the defaults can be
raised later: old files still open, and the next write uses the new ones.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import secrets as _random
import struct
import sys
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from cdir.errors import VaultError

__all__ = [
    "ENV_PASSPHRASE",
    "KEYRING_SERVICE",
    "Vault",
    "VaultSecretStore",
    "mask",
    "passphrase_source",
]

ENV_PASSPHRASE = "CDIR_VAULT_PASSPHRASE"
KEYRING_SERVICE = "cdir"

MAGIC = b"CDIRVLT1"
KDF_SCRYPT = 1
# Cost used for new writes; read at write time so tests can lower it (n must be a power of 2).
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
# A damaged or hostile header must not make us allocate unbounded memory or spin for minutes.
_MAX_SCRYPT_MEMORY = 1 << 30
_MAX_SCRYPT_P = 16

_HEADER = struct.Struct(">8sBBII16s12s")
_SALT_LEN = 16
_NONCE_LEN = 12
_TAG_LEN = 16

_LOCKED = (
    "the vault is locked: set CDIR_VAULT_PASSPHRASE or store the passphrase in the OS keyring "
    "(cdir config unlock)"
)

Secrets = dict[str, str]
_Signature = tuple[int, int, int]


class Vault:
    """Secrets per ref (usually a provider name), kept in one encrypted file.

    The decrypted contents are cached after the first read; the file is re-read only when it
    changed on disk (another process wrote it). The passphrase is asked for at most once, and
    only when the file must actually be decrypted or written. Writes hold a lock on
    `<vault>.lock` shared by processes and read the file again inside it, so two processes
    changing different refs at once both keep their change.
    """

    def __init__(self, path: Path, passphrase: str | Callable[[], str]) -> None:
        """`passphrase` is the passphrase, or a callable asked lazily (see passphrase_source)."""
        self.path = Path(path)
        self._source = passphrase
        self._passphrase: str | None = None
        self._data: dict[str, Secrets] | None = None
        self._signature: _Signature | None = None
        self._lock = threading.RLock()

    # -- public API --------------------------------------------------------------------------

    def get(self, ref: str, *, fresh: bool = False) -> Secrets:
        """The secrets stored for `ref` (a copy), or {} when there are none. `fresh`: read
        the file again even if it looks unchanged (under a lock, before a change)."""
        with self._lock:
            if fresh:
                self._data = None
            return dict(self._load().get(ref, {}))

    def set(self, ref: str, secrets: Secrets) -> None:
        """Replace the secrets of `ref`; an empty mapping removes the ref."""
        if not isinstance(ref, str) or not ref:
            raise TypeError("a vault ref must be a non-empty string")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in secrets.items()):
            raise TypeError("vault secrets must map strings to strings")
        if secrets:
            self._get_passphrase()  # a prompt, if any, before other processes must wait
        with self._lock, file_lock(self.path.with_name(self.path.name + ".lock")):
            self._data = None  # what another process wrote since our last read counts
            data = {name: dict(values) for name, values in self._load().items()}
            if not secrets and ref not in data:
                return  # nothing to remove: don't ask for a passphrase or rewrite the file
            if secrets:
                data[ref] = dict(secrets)
            else:
                del data[ref]
            self._write(data)

    def delete(self, ref: str) -> None:
        """Remove `ref` and its secrets; a missing ref is not an error."""
        self.set(ref, {})

    def refs(self) -> list[str]:
        """The refs that have secrets, sorted."""
        with self._lock:
            return sorted(self._load())

    def store(self, ref: str) -> VaultSecretStore:
        """The secrets of `ref` as a provider's SecretStore."""
        return VaultSecretStore(self, ref)

    def exists(self) -> bool:
        """Whether the vault file exists."""
        return self.path.exists()

    # -- internals ---------------------------------------------------------------------------

    def _get_passphrase(self) -> str:
        if self._passphrase is None:
            value = self._source() if callable(self._source) else self._source
            if not isinstance(value, str) or not value:
                raise VaultError("the vault passphrase must not be empty")
            # The same passphrase typed on different systems may arrive in different Unicode
            # normal forms (macOS decomposes); normalise so it always derives the same key.
            self._passphrase = unicodedata.normalize("NFC", value)
        return self._passphrase

    def _stat(self) -> _Signature | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VaultError(f"cannot read the vault {self.path}: {_reason(exc)}") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _load(self) -> dict[str, Secrets]:
        signature = self._stat()
        if signature is None:
            # No file yet: nothing to decrypt, so no passphrase is needed.
            self._data, self._signature = None, None
            return {}
        if self._data is None or signature != self._signature:
            try:
                blob = self.path.read_bytes()
            except FileNotFoundError:
                self._data, self._signature = None, None
                return {}
            except OSError as exc:
                raise VaultError(f"cannot read the vault {self.path}: {_reason(exc)}") from None
            self._data = self._decrypt(blob)
            self._signature = signature
        return self._data

    def _damaged(self) -> VaultError:
        return VaultError(
            f"cannot open the vault {self.path}: not a cdir vault file (or it is damaged)"
        )

    def _decrypt(self, blob: bytes) -> dict[str, Secrets]:
        if len(blob) < _HEADER.size + _TAG_LEN:
            raise self._damaged()
        header = blob[: _HEADER.size]
        magic, kdf, log2_n, r, p, salt, nonce = _HEADER.unpack(header)
        if magic != MAGIC or kdf != KDF_SCRYPT or not _sane_scrypt(log2_n, r, p):
            raise self._damaged()
        key = _derive(self._get_passphrase(), salt, 1 << log2_n, r, p)
        try:
            plaintext = AESGCM(key).decrypt(nonce, blob[_HEADER.size :], header)
        except InvalidTag:
            if callable(self._source):
                self._passphrase = None  # let a later attempt ask again
            raise VaultError(
                f"cannot open the vault {self.path}: wrong passphrase or the file was modified"
            ) from None
        try:
            data = json.loads(plaintext.decode("utf-8"))
        except ValueError:
            raise self._damaged() from None
        if not _well_formed(data):
            raise self._damaged()
        return data

    def _encrypt(self, data: dict[str, Secrets]) -> bytes:
        n, r, p = SCRYPT_N, SCRYPT_R, SCRYPT_P
        log2_n = n.bit_length() - 1
        if n < 2 or n != 1 << log2_n or not _sane_scrypt(log2_n, r, p):
            raise ValueError(f"invalid scrypt parameters n={n} r={r} p={p}")
        salt = _random.token_bytes(_SALT_LEN)
        nonce = _random.token_bytes(_NONCE_LEN)
        header = _HEADER.pack(MAGIC, KDF_SCRYPT, log2_n, r, p, salt, nonce)
        key = _derive(self._get_passphrase(), salt, n, r, p)
        plaintext = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
        return header + AESGCM(key).encrypt(nonce, plaintext, header)

    def _write(self, data: dict[str, Secrets]) -> None:
        from cdir.config import write_private

        blob = self._encrypt(data)
        try:
            write_private(self.path, blob)  # atomic, mode 0600, parent 0700
        except OSError as exc:
            raise VaultError(f"cannot write the vault {self.path}: {_reason(exc)}") from None
        self._data = data
        self._signature = self._stat()


class VaultSecretStore:
    """One ref of a vault as a provider's `SecretStore` (where a renewed OAuth token goes).
    `locked()` is a lock of this ref shared by processes: held while a provider reads its
    secrets, renews them and saves them, so only one process renews."""

    def __init__(self, vault: Vault, ref: str) -> None:
        self.vault = vault
        self.ref = ref

    def load(self) -> dict[str, str]:
        return self.vault.get(self.ref, fresh=True)

    def save(self, secrets: dict[str, str]) -> None:
        self.vault.set(self.ref, secrets)

    def locked(self) -> AbstractContextManager[None]:
        tag = hashlib.sha256(self.ref.encode("utf-8")).hexdigest()[:16]
        return file_lock(self.vault.path.with_name(f"{self.vault.path.name}.{tag}.lock"))


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock shared by processes (and threads: each takes its own descriptor),
    on the file `path`, created when missing. On Windows only the callers' thread locks hold."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise VaultError(f"cannot lock the vault {path}: {_reason(exc)}") from None
    try:
        if sys.platform != "win32":
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def passphrase_source(path: Path, *, interactive: bool) -> Callable[[], str]:
    """A callable giving the passphrase of the vault at `path`, for `Vault(path, ...)`.

    Tried in order: the CDIR_VAULT_PASSPHRASE environment variable, the OS keyring (service
    "cdir", user str(path)), then a prompt when `interactive` (asked twice when the vault does
    not exist yet); otherwise VaultError says how to unlock the vault. Nothing is looked up
    until the callable is called.
    """
    path = Path(path)

    def source() -> str:
        value = os.environ.get(ENV_PASSPHRASE)
        if value:
            return value
        value = _keyring_password(path)
        if value:
            return value
        if not interactive:
            raise VaultError(_LOCKED)
        return _prompt(path)

    return source


def mask(value: str) -> str:
    """A display form of a secret: the last 2 characters of long values only, never all of it."""
    return "****" + value[-2:] if len(value) >= 12 else "****"


# -- helpers -----------------------------------------------------------------------------------


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def _sane_scrypt(log2_n: int, r: int, p: int) -> bool:
    return (
        1 <= log2_n < 32
        and r >= 1
        and 1 <= p <= _MAX_SCRYPT_P
        and 128 * r * (1 << log2_n) <= _MAX_SCRYPT_MEMORY
    )


def _well_formed(data: object) -> bool:
    return isinstance(data, dict) and all(
        isinstance(ref, str)
        and isinstance(values, dict)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in values.items())
        for ref, values in data.items()
    )


def _keyring_password(path: Path) -> str | None:
    # The keyring is a convenience: a missing or broken backend (fail/null backend, no D-Bus,
    # locked collection...) just means "no keyring", never an error.
    try:
        import keyring

        value = keyring.get_password(KEYRING_SERVICE, str(path))
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _prompt(path: Path) -> str:
    try:
        if path.exists():
            value = getpass.getpass(f"Passphrase for the cdir vault {path}: ")
        else:
            value = getpass.getpass(f"New passphrase for the cdir vault {path}: ")
            if value and getpass.getpass("Repeat the passphrase: ") != value:
                raise VaultError("the two passphrases do not match")
    except EOFError:
        raise VaultError(_LOCKED) from None
    if not value:
        raise VaultError("the vault passphrase must not be empty")
    return value


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
