"""Pydantic output models: the CLI's `--output json` and the REST API return these shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ReplicaOut(BaseModel):
    provider: str
    remote_path: str
    state: str
    generation: int
    size: int | None = None
    mtime: datetime | None = None
    fingerprint: str | None = None
    last_error: str | None = None


class EntryOut(BaseModel):
    id: int
    path: str
    kind: str
    size: int | None = None
    mtime: datetime | None = None
    hash: str | None = None
    generation: int = 0
    preferred_provider: str | None = None
    replicas: list[ReplicaOut] | None = None
    deleted: bool = False  # removed, but a provider has not confirmed its delete yet


class ProviderOut(BaseModel):
    name: str
    kind: str
    root: str
    options: dict[str, object] = {}
    secrets: dict[str, str] = {}  # names → masked values, never the secret itself
    priority: int = 0
    location: str | None = None
    enabled: bool = True


class TransferReport(BaseModel):
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = []
    warnings: list[str] = []  # what was skipped on purpose and why (specials, links)
    seconds: float = 0.0
