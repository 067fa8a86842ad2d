"""The virtual directory's public operations, as a Protocol: `VDir` implements it over the
catalog and the providers; a client of a running cdir service can implement it over REST, so
the CLI runs unchanged on either."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import BinaryIO, Protocol

from cdir.schema import (
    DaemonOut,
    DaemonStatusOut,
    EntryOut,
    EventOut,
    GcReport,
    JobOut,
    PassOut,
    PinsOut,
    PollOut,
    ProviderOut,
    SyncReport,
    TransferReport,
)


class Listing(Protocol):
    entries: list[EntryOut]
    next_cursor: str | None


class VirtualDirectory(Protocol):
    # --- namespace ---------------------------------------------------------------------
    @property
    def cwd(self) -> str: ...
    def path(self, text: str) -> str: ...
    def cd(self, text: str) -> str: ...
    def stat(self, text: str) -> EntryOut: ...
    def entry_by_id(self, entry_id: int) -> EntryOut: ...
    def ls(
        self,
        text: str = ".",
        *,
        recursive: bool = False,
        limit: int | None = None,
        after: str | None = None,
        replicas: bool = False,
    ) -> Listing: ...
    def search(
        self, pattern: str, under: str = "/", *, recursive: bool = False, limit: int | None = None
    ) -> list[EntryOut]: ...
    def status(self, text: str = ".", *, recursive: bool = False) -> list[EntryOut]: ...
    def mkdir(self, text: str, *, parents: bool = False) -> EntryOut: ...
    def prefer(self, text: str, provider: str | None) -> EntryOut: ...

    # --- transfers ---------------------------------------------------------------------
    def put(
        self,
        sources: Sequence[str],
        dest: str,
        *,
        to: Sequence[str] | None = None,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport: ...
    def get(
        self,
        sources: Sequence[str],
        dest: str,
        *,
        recursive: bool = False,
        parallel: int = 4,
        provider: str | None = None,
        progress: bool = True,
    ) -> TransferReport: ...
    def cp(
        self,
        src: str,
        dst: str,
        *,
        recursive: bool = False,
        to: Sequence[str] | None = None,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport: ...
    def mv(
        self, src: str, dst: str, *, parallel: int = 4, progress: bool = True
    ) -> TransferReport: ...
    def rm(
        self,
        paths: Sequence[str],
        *,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport: ...
    def drop_replica(self, text: str, provider: str) -> None: ...
    def replicate(
        self,
        text: str,
        to: Sequence[str],
        *,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport: ...
    def scan(self, provider: str, text: str = "/") -> TransferReport: ...
    def sync(
        self,
        text: str = "/",
        *,
        only: Sequence[str] | None = None,
        dry_run: bool = False,
        force: bool = False,
        max_delete: float = 0.5,
        parallel: int = 4,
        progress: bool = True,
    ) -> SyncReport: ...
    def policy(self, text: str, deletes: str | None = None, *, clear: bool = False) -> str: ...
    def sync_to(
        self,
        source: str,
        destination: str,
        *,
        name: str | None = None,
        queue: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> JobOut: ...
    def jobs(self, name: str | None = None, limit: int = 20) -> list[JobOut]: ...
    def job(self, job_id: int) -> JobOut: ...
    def run_queued(self, parallel: int = 4) -> list[JobOut]: ...

    # --- byte streams ------------------------------------------------------------------
    def read(
        self, text: str, start: int = 0, end: int | None = None, *, provider: str | None = None
    ) -> Iterator[bytes]: ...
    def write(
        self,
        text: str,
        stream: BinaryIO,
        size: int | None = None,
        mtime_ns: int | None = None,
        *,
        to: Sequence[str] | None = None,
        if_generation: int | None = None,
    ) -> EntryOut: ...

    # --- providers ---------------------------------------------------------------------
    def add_provider(
        self,
        name: str,
        kind: str,
        root: str,
        options: dict[str, str],
        *,
        priority: int = 0,
        location: str | None = None,
        check: bool = True,
    ) -> ProviderOut: ...
    def set_provider(
        self,
        name: str,
        options: dict[str, str],
        *,
        priority: int | None = None,
        location: str | None = None,
        check: bool = True,
    ) -> ProviderOut: ...
    def provider_pins(self, name: str) -> PinsOut: ...
    def pin_provider(self, name: str, pins: PinsOut | None = None) -> PinsOut: ...
    def providers(self) -> list[ProviderOut]: ...
    def provider(self, name: str) -> ProviderOut: ...
    def remove_provider(self, name: str, *, force: bool = False) -> int: ...
    def test_provider(self, name: str) -> float: ...

    # --- upkeep ------------------------------------------------------------------------
    def gc(
        self,
        *,
        dry_run: bool = False,
        older_than: float | None = None,
        events_older_than: float | None = None,
    ) -> GcReport: ...
    def gc_if_due(self) -> GcReport | None: ...
    def close(self) -> None: ...

    # --- the sync daemon -----------------------------------------------------------------
    def set_poll(self, name: str, every: str | None) -> PollOut: ...
    def polls(self) -> list[PollOut]: ...
    def register_daemon(self) -> DaemonOut: ...
    def daemon_heartbeat(self, me: DaemonOut) -> bool: ...
    def unregister_daemon(self, me: DaemonOut) -> None: ...
    def daemons(self) -> list[DaemonOut]: ...
    def recent_passes(self, limit: int = 10) -> list[PassOut]: ...
    def daemon_status(self, limit: int = 10) -> DaemonStatusOut: ...

    # --- what the service shows ----------------------------------------------------------
    def events(self, after: int = 0, limit: int = 100) -> list[EventOut]: ...
    def replica_counts(self) -> dict[tuple[str, str], int]: ...
