"""Settings: where cdir keeps its catalog, vault and state (env vars `CDIR_*` override)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import platformdirs
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDIR_", extra="ignore")

    home: Path = Path(platformdirs.user_data_dir("cdir", appauthor=False))
    catalog_url: str | None = None  # default: SQLite file in `home`
    vault_path: Path | None = None  # default: `home`/vault.bin
    parallel: int = 4

    @cached_property
    def catalog(self) -> str:
        return self.catalog_url or f"sqlite:///{self.home / 'catalog.db'}"

    @cached_property
    def vault(self) -> Path:
        return self.vault_path or self.home / "vault.bin"

    @cached_property
    def state_file(self) -> Path:
        """Per-user state kept between invocations (the current directory)."""
        return self.home / "state.json"


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url
