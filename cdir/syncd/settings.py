"""The daemon's knobs, from `CDIR_DAEMON_*` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DaemonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDIR_DAEMON_", extra="ignore")

    # a watched folder starts a pass this long after its last change (an editor's save, a
    # tree being copied in: one pass, not one per file)
    debounce: float = Field(default=1.0, ge=0)
    # a pass over every provider runs every `full_every` times the shortest poll interval:
    # watchers miss events, and a per-provider pass only lists its own provider
    full_every: float = Field(default=10, gt=0)
    # a provider whose pass failed is retried after 2 s, 4 s, 8 s… (jittered), at most this
    max_backoff: float = Field(default=900, gt=0)
    heartbeat: float = Field(default=15, gt=0)  # seconds between registration renewals
    refresh: float = Field(default=30, gt=0)  # seconds between re-reads of providers and polls
    jobs: float = Field(default=5, gt=0)  # seconds between looks for queued one-way syncs
