"""Reads that check what they deliver, and the replicas they find wanting.

A download is checked against the catalog: where the catalog knows the version's hash (of a
kind hashlib computes) the bytes are hashed as they stream and compared before the file is
renamed into place; otherwise the replica's fingerprint (ETag, mtime+size… as its provider
reports it) is compared with the one recorded when it was written. A replica found gone is
marked `missing`, one found different `stale`, at the end of the command — and the read
goes on to the next current replica.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cdir.catalog import Database, ReplicaState, writes
from cdir.catalog.models import utcnow
from cdir.catalog.queries import path_of
from cdir.errors import NotFound, ProviderError
from cdir.providers import Provider as Backend
from cdir.providers.base import atomic_write
from cdir.vdir.plan import Holder

HASHERS = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256}


class Changed(ProviderError):
    """A replica's bytes or fingerprint differ from what the catalog recorded."""


class Findings:
    """Replicas found missing or changed during a command (thread-safe), marked at once
    when the command records."""

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def note(self, holder: Holder, exc: Exception) -> None:
        state = ReplicaState.MISSING if isinstance(exc, NotFound) else ReplicaState.STALE
        row = {
            "b_id": holder.replica.id,
            "state": state,
            "last_error": str(exc)[:500],
            "last_checked": utcnow(),
        }
        with self._lock:
            self._rows.append(row)

    def record(self, db: Database) -> None:
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            db.write(lambda s: writes.update_replicas(s, rows))


def expected_hash(entry: Any) -> tuple[str, str] | None:
    kind, _, digest = (entry.hash or "").partition(":")
    return (kind, digest) if kind in HASHERS and digest else None


def hashed(chunks: Iterator[bytes], hasher: Any) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    """A stream whose first chunk was read ahead (to see a failing source at once)."""
    if first:
        yield first
    yield from rest


def download(backend: Backend, holder: Holder, entry: Any, local: Path) -> None:
    """One replica to `local`, atomically and checked (see the module docstring)."""
    remote = holder.replica.remote_path
    want = expected_hash(entry)
    if want is None:
        backend.get_file(remote, local)
        check_fingerprint(backend, holder, entry, local)
        return
    hasher = HASHERS[want[0]](usedforsecurity=False)
    with atomic_write(local) as (fd, _), os.fdopen(fd, "wb") as out:
        for chunk in hashed(backend.read_chunks(remote), hasher):
            out.write(chunk)
        out.flush()
        check_hash(holder, entry, want, hasher.hexdigest(), os.fstat(out.fileno()).st_size)


def check_hash(holder: Holder, entry: Any, want: tuple[str, str], got: str, size: int) -> None:
    where = f"{holder.provider.name}:{path_of(entry)}"
    if size != entry.size:
        raise Changed(f"{where}: {size} bytes where the catalog has {entry.size}; not used")
    if got != want[1]:
        raise Changed(
            f"{where}: the replica changed outside cdir ({want[0]} {got[:12]}… where the "
            f"catalog has {want[1][:12]}…); not used"
        )


def check_fingerprint(backend: Backend, holder: Holder, entry: Any, local: Path) -> None:
    """After a download without a known hash: the size, and the replica's fingerprint as
    its provider reports it now against the one recorded."""
    where = f"{holder.provider.name}:{path_of(entry)}"
    size = local.stat().st_size
    recorded = holder.replica.fingerprint
    now = backend.stat(holder.replica.remote_path).fingerprint if recorded else None
    if size != entry.size or (recorded and now != recorded):
        local.unlink(missing_ok=True)
        what = (
            f"{size} bytes where the catalog has {entry.size}"
            if size != entry.size
            else (
                "the replica changed outside cdir (its fingerprint differs from the one recorded)"
            )
        )
        raise Changed(f"{where}: {what}; not used")
