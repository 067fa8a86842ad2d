"""Catalog tables (DESIGN.md §2). Times are UTC; file mtimes are integer nanoseconds."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Table, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def table(model: type[SQLModel]) -> Table:
    """The Core table of a model, for executemany writes and plain-row reads."""
    return model.__table__  # type: ignore[attr-defined]


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(t: datetime) -> datetime:
    """A catalog time, aware: SQLite hands back naive datetimes (stored as UTC)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


class ReplicaState(StrEnum):
    """Where a replica stands against its entry's current generation (DESIGN.md §2)."""

    CURRENT = "current"  # holds the entry's generation, verified when written
    STALE = "stale"  # holds an older generation (or changed outside cdir): never read
    MISSING = "missing"  # a read or a check found nothing there
    PENDING = "pending"  # planned, not written yet
    TRANSFERRING = "transferring"
    ERROR = "error"  # the last write or delete failed (`last_error` says why)
    CONFLICT = "conflict"  # differs from the catalog's version and was not chosen


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"


class Provider(SQLModel, table=True):
    __tablename__ = "provider"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True)
    kind: str
    root: str
    options: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    secret_ref: str | None = None  # key into the vault; secrets never live in the catalog
    priority: int = 0  # higher is read first
    location: str | None = None
    latency_ms: float | None = None
    throughput_bps: float | None = None
    enabled: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class Entry(SQLModel, table=True):
    __tablename__ = "entry"
    __table_args__ = (
        UniqueConstraint("dirname", "basename", name="uq_entry_path"),
        # prefix LIKE on these must use an index: text_pattern_ops on PostgreSQL; SQLite gets
        # case_sensitive_like (see catalog.db)
        Index("ix_entry_dirname", "dirname", postgresql_ops={"dirname": "text_pattern_ops"}),
        Index("ix_entry_basename", "basename", postgresql_ops={"basename": "text_pattern_ops"}),
        # tombstones only (few beside the live entries): gc finds the old ones without a scan
        Index(
            "ix_entry_tombstone",
            "deleted_at",
            sqlite_where=text("deleted_at IS NOT NULL"),
            postgresql_where=text("deleted_at IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    dirname: str  # "/" for entries at the root; the unique index also serves `ls`
    basename: str
    kind: str  # an EntryKind
    size: int | None = Field(default=None, sa_column=Column(BigInteger))
    mtime_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    hash: str | None = None  # "kind:hex" when known
    generation: int = 0  # +1 on every new version
    preferred_provider_id: int | None = Field(default=None, foreign_key="provider.id")
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    deleted_at: datetime | None = None  # tombstone
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def path(self) -> str:
        return f"{self.dirname.rstrip('/')}/{self.basename}" if self.basename else self.dirname


class Replica(SQLModel, table=True):
    __tablename__ = "replica"
    __table_args__ = (
        UniqueConstraint("entry_id", "provider_id", name="uq_replica"),
        # change detection joins a provider's listing on (provider, remote path)
        Index("ix_replica_provider_path", "provider_id", "remote_path"),
    )

    id: int | None = Field(default=None, primary_key=True)
    entry_id: int = Field(foreign_key="entry.id", index=True)
    provider_id: int = Field(foreign_key="provider.id", index=True)
    remote_path: str
    size: int | None = Field(default=None, sa_column=Column(BigInteger))
    mtime_ns: int | None = Field(default=None, sa_column=Column(BigInteger))
    fingerprint: str | None = None
    generation: int = 0
    state: str = ReplicaState.PENDING  # a ReplicaState (stored as its text)
    last_checked: datetime | None = None
    last_error: str | None = None


class Job(SQLModel, table=True):
    __tablename__ = "job"

    id: int | None = Field(default=None, primary_key=True)
    name: str | None = Field(default=None, index=True)
    kind: str  # put|get|cp|mv|sync|replicate
    state: str = "running"  # queued|running|done|failed
    source: str | None = None  # a named sync: "local:/dir" or "cdir:/path"
    destination: str | None = None
    files_done: int = 0
    files_failed: int = 0
    bytes_done: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    errors: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None


class Event(SQLModel, table=True):
    """Append-only journal: what was done, to which path, by whom."""

    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str
    action: str
    path: str
    provider: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class CatalogState(SQLModel, table=True):
    """What cdir keeps about the catalog itself, by key (e.g. when gc last ran)."""

    __tablename__ = "catalog_state"

    key: str = Field(primary_key=True)
    value: str


class Lease(SQLModel, table=True):
    """A command's claim on a subtree while it works on the providers (DESIGN.md §3): writes
    (put, cp, replicate, scan) share a subtree; a removal (rm, mv) has it alone. Rows of a
    process that died are broken by the next command that meets them."""

    __tablename__ = "lease"

    id: int | None = Field(default=None, primary_key=True)
    path: str
    exclusive: bool
    command: str  # what the holder runs, for the message of whoever waits ("rm -r /t")
    host: str
    pid: int
    expires_at: datetime  # renewed while the holder lives


class SchemaVersion(SQLModel, table=True):
    __tablename__ = "schema_version"

    version: int = Field(primary_key=True)
    applied_at: datetime = Field(default_factory=utcnow)
