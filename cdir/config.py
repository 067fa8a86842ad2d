"""Settings: where cdir keeps its catalog, vault and state (env vars `CDIR_*` override)."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path

import platformdirs
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "redact", "write_private"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDIR_", extra="ignore")

    home: Path = Path(platformdirs.user_data_dir("cdir", appauthor=False))
    catalog_url: str | None = None  # default: SQLite file in `home`
    vault_path: Path | None = None  # default: `home`/vault.bin
    parallel: int = 4
    # gc (`cdir gc`, and automatically once a day after a write command): tombstones whose
    # replicas are all deleted are purged after this many days (they must outlive the longest
    # time a provider may be offline), journal events after that many
    tombstone_days: float = Field(default=90, ge=0)
    event_days: float = Field(default=90, ge=0)
    # how long a command waits for another that holds its subtree (an rm waiting for a put
    # into the same tree) before it gives up
    lease_wait: float = Field(default=600, ge=0)

    @cached_property
    def catalog(self) -> str:
        return self.catalog_url or f"sqlite:///{self.home / 'catalog.db'}"

    @cached_property
    def vault(self) -> Path:
        return self.vault_path or self.home / "vault.bin"

    @cached_property
    def state_file(self) -> Path:
        """Per-user state kept between invocations (the current directory); written with
        write_private."""
        return self.home / "state.json"


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url


# O_EXCL: never write through a file (or symlink) someone placed there; O_BINARY: Windows.
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_private(path: Path, data: str | bytes) -> None:
    """Replace `path` atomically with `data` (str is written as UTF-8), readable by its owner
    only: mode 0600, whatever the umask or the old file's mode; a missing parent directory is
    created with mode 0700.

    Readers see the old file or the new one, never a part; on any failure the old file is
    left as it was, no temporary file remains, and the OSError propagates.
    """
    path = Path(path)
    blob = data.encode("utf-8") if isinstance(data, str) else data
    directory = path.parent
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Same directory as the target so os.replace is an atomic rename, never a copy.
    tmp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(tmp, _CREATE_FLAGS, 0o600)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # a umask can only remove bits; be explicit anyway
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(directory)  # makes the rename itself durable


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # e.g. Windows cannot open directories; the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
