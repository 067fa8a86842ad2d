"""Leases: a command's claim on a subtree of the namespace while it works on the providers.

A command that writes files (put, cp, replicate, scan) shares its subtree with other writers:
their versions merge in the catalog. A command that takes files away (rm, mv) needs its
subtree alone: were a put still writing below `/t` while `rm -r /t` deletes the folder, the put
would record replicas whose files are gone. Two claims conflict when one path is at or below
the other and either is exclusive.

A lease names its holder (host, pid) and expires unless renewed; the next command that meets
a lease breaks it when the holder is gone (a dead pid on this host, or an expiry passed — a
holder on another host renews while it lives). Leases are few (one per running command), so
conflicts are found in Python over all rows, and taking one is serialised like any catalog
write (SQLite's write lock; a transaction-scoped advisory lock on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlmodel import Session

from cdir.catalog.models import Lease, as_utc, table, utcnow
from cdir.schema.paths import is_within

LEASE = table(Lease)
_PG_LOCK_KEY = 0x63646972  # "cdir": the advisory lock that serialises taking leases


@dataclass(frozen=True)
class Holder:
    """Who holds (or asks for) a lease."""

    host: str
    pid: int
    command: str


@dataclass(frozen=True)
class Held:
    """A lease in another command's hands, as a waiter sees it."""

    path: str
    exclusive: bool
    command: str
    host: str
    pid: int


def overlaps(a: str, b: str) -> bool:
    return is_within(a, b) or is_within(b, a)


def take(
    s: Session,
    paths: list[str],
    exclusive: bool,
    holder: Holder,
    ttl: timedelta,
    alive: Callable[[int], bool],
) -> list[int] | Held:
    """Claim `paths` for `holder`: the new lease ids, or the first lease in the way (nothing
    taken). Leases of holders that are gone are broken on the way."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    now = utcnow()
    rows = s.execute(select(LEASE)).all()
    dead = [r.id for r in rows if _gone(r, holder.host, now, alive)]
    if dead:
        s.execute(delete(LEASE).where(LEASE.c.id.in_(dead)))
    for r in rows:
        if r.id in dead or (r.host, r.pid) == (holder.host, holder.pid):
            continue
        if (exclusive or r.exclusive) and any(overlaps(p, r.path) for p in paths):
            return Held(r.path, r.exclusive, r.command, r.host, r.pid)
    until = now + ttl
    values = [
        {
            "path": p,
            "exclusive": exclusive,
            "command": holder.command,
            "host": holder.host,
            "pid": holder.pid,
            "expires_at": until,
        }
        for p in paths
    ]
    ids = s.execute(insert(LEASE).returning(LEASE.c.id, sort_by_parameter_order=True), values)
    return list(ids.scalars())


def _gone(r: Any, host: str, now: datetime, alive: Callable[[int], bool]) -> bool:
    return bool(as_utc(r.expires_at) < now or (r.host == host and not alive(r.pid)))


def renew(s: Session, ids: list[int], ttl: timedelta) -> None:
    s.execute(update(LEASE).where(LEASE.c.id.in_(ids)).values(expires_at=utcnow() + ttl))


def release(s: Session, ids: list[int]) -> None:
    s.execute(delete(LEASE).where(LEASE.c.id.in_(ids)))
