"""Pydantic output models: the CLI's `--output json` and the REST API return these shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel as _PydanticModel
from pydantic import ConfigDict, computed_field


class BaseModel(_PydanticModel):
    """Validators are built on first use, not at import: a command uses two or three of
    these shapes, and building all of them cost ~60 ms of every start-up (measured)."""

    model_config = ConfigDict(defer_build=True)


class ReplicaOut(BaseModel):
    provider: str
    remote_path: str
    state: str
    generation: int
    size: int | None = None
    mtime: datetime | None = None
    fingerprint: str | None = None
    last_error: str | None = None
    last_checked: datetime | None = None  # when a write, a read or a sync pass last saw it


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


class ProviderTally(BaseModel):
    """What one provider did in a transfer."""

    files: int = 0
    bytes: int = 0
    failed: int = 0


class TransferReport(BaseModel):
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = []
    warnings: list[str] = []  # what was skipped on purpose and why (specials, links)
    providers: dict[str, ProviderTally] = {}  # per provider written to
    seconds: float = 0.0


class SyncReport(BaseModel):
    """What a sync pass saw and did (with `dry_run`, would do)."""

    checked: int = 0  # files listed, over every provider
    providers: list[str] = []  # the providers listed
    changed: int = 0  # new versions found on a provider
    imported: int = 0  # new files found on a provider
    conflicts: int = 0  # conflict copies made
    restored: int = 0  # replicas found missing and marked for restoring
    deleted: int = 0  # replicas deleted (an rm finished, or a delete propagated)
    copied: int = 0  # files copied to bring replicas up to date
    bytes: int = 0
    failed: int = 0
    errors: list[str] = []
    warnings: list[str] = []
    plan: list[str] = []  # with dry_run: one line per action
    dry_run: bool = False
    seconds: float = 0.0


class JobOut(BaseModel):
    """A named sync (`cdir sync SOURCE DEST --name N`) and how it went."""

    id: int
    name: str | None = None
    kind: str
    source: str | None = None
    destination: str | None = None
    state: str  # queued|running|done|failed
    files_done: int = 0
    files_failed: int = 0
    bytes_done: int = 0
    errors: list[str] = []
    started_at: datetime
    finished_at: datetime | None = None


class GcReport(BaseModel):
    """What `cdir gc` purged (with `dry_run`, would purge)."""

    tombstones_purged: int = 0
    events_deleted: int = 0
    tombstones_kept: int = 0  # old tombstones whose replicas are not all deleted
    dry_run: bool = False
    tombstones_before: datetime  # tombstones deleted before this were old enough
    events_before: datetime  # events from before this were old enough
    seconds: float = 0.0


class PinOut(BaseModel):
    """One option a provider learns from the service itself (an SSH host key): what is pinned
    now and what the service presents."""

    option: str  # e.g. host_key
    what: str  # how messages name it: "host key"
    old: str | None = None  # pinned now (None: nothing yet)
    new: str  # what the service presents
    old_text: str | None = None  # `old` as messages show it ("ED25519 SHA256:…")
    new_text: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def changed(self) -> bool:
        return self.old != self.new


class PinsOut(BaseModel):
    """`cdir provider pin`: what a provider pins (empty for a kind that pins nothing)."""

    name: str
    kind: str
    pins: list[PinOut] = []
    stored: bool = False  # the new values were stored


DEFAULT_POLL_S = 60


class PollOut(BaseModel):
    """A provider as the daemon sees it: how often it is polled, whether it is watched."""

    name: str
    kind: str
    root: str
    enabled: bool = True
    poll_s: int = DEFAULT_POLL_S
    poll: str = "1m"
    default: bool = True  # no interval set: DEFAULT_POLL_S applies
    watched: bool = False  # a local folder: changes there also start a pass at once


class DaemonOut(BaseModel):
    """A sync daemon's registration in the catalog."""

    host: str
    pid: int
    since: datetime
    heartbeat: datetime
    alive: bool = True


class PassOut(BaseModel):
    """One sync pass, as the journal recorded it."""

    at: datetime
    path: str
    checked: int = 0
    changed: int = 0
    imported: int = 0
    conflicts: int = 0
    restored: int = 0
    deleted: int = 0
    copied: int = 0


class DaemonStatusOut(BaseModel):
    running: bool
    daemons: list[DaemonOut]
    providers: list[PollOut]
    passes: list[PassOut]


class EventOut(BaseModel):
    """One journal event: what was done, to which path, by whom (the API's event stream)."""

    id: int
    at: datetime
    actor: str
    action: str
    path: str
    provider: str | None = None
    detail: dict[str, object] = {}
