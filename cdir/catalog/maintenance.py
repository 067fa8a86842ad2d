"""Catalog upkeep: gc (purge old tombstones, rotate the journal) and what the catalog keeps about
itself (`catalog_state`: when gc last ran, delete policies, poll intervals, sync daemons).
Functions over a session, set-based: a gc of 100,000 tombstones is a handful of statements,
never one per row.

A tombstone is purged when it is older than the retention and no replica row is left under it
(every provider confirmed the delete), and nothing below it must stay: a tombstoned directory goes
with the tombstones below it, but is kept while a live entry, a younger tombstone or a tombstone
that still has replicas (a delete that failed) is below it, so what is kept keeps its parents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    String,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
)
from sqlalchemy import update as sql_update
from sqlmodel import Session

from cdir.catalog.models import CatalogState, Event, table
from cdir.catalog.queries import ENTRY, REPLICA, at_or_below, entries_at, like_escape, path_of
from cdir.schema.paths import split

EVENT, STATE = table(Event), table(CatalogState)
LAST_GC = "gc.last_run"  # catalog_state key: when gc last ran (ISO 8601, UTC)


@dataclass
class Collected:
    """What a gc pass purged (or, in a dry run, would purge)."""

    tombstones: int = 0  # tombstones purged
    events: int = 0  # journal events deleted
    kept: int = 0  # old tombstones kept because replicas of them are not all deleted


# --- catalog_state -----------------------------------------------------------------------------
def get_state(s: Session, key: str) -> str | None:
    return s.execute(select(STATE.c.value).where(STATE.c.key == key)).scalar_one_or_none()


def set_state(s: Session, key: str, value: str | None) -> None:
    """Set a key, or with None drop it (an insert that races another is a Conflict:
    `Database.write` runs again)."""
    if value is None:
        s.execute(delete(STATE).where(STATE.c.key == key))
        return
    done = s.execute(sql_update(STATE).where(STATE.c.key == key).values(value=value))
    if not done.rowcount:  # type: ignore[attr-defined]
        s.execute(insert(STATE).values(key=key, value=value))


def last_gc(s: Session) -> datetime | None:
    text = get_state(s, LAST_GC)
    return datetime.fromisoformat(text) if text else None


DELETES = "deletes:"  # catalog_state key prefix: a directory's delete policy (sync)


def states(s: Session, prefix: str) -> dict[str, str]:
    """Every key that starts with `prefix` (the prefix taken off) → its value."""
    q = select(STATE.c.key, STATE.c.value).where(
        STATE.c.key.like(like_escape(prefix) + "%", escape="\\")
    )
    return {k.removeprefix(prefix): v for k, v in s.execute(q).all()}


# --- the sync daemon: poll intervals, registrations, recent passes ----------------------------
POLL = "poll:"  # catalog_state key prefix: a provider's poll interval in seconds (by name)
DAEMON = "daemon"  # a daemon's registration (SQLite: this one key; PostgreSQL: `daemon:…`)


def delete_state(s: Session, keys: list[str]) -> None:
    if keys:
        s.execute(delete(STATE).where(STATE.c.key.in_(keys)))


def recent_events(s: Session, action: str, limit: int, key: str | None = None) -> list[Any]:
    """The newest `limit` journal events of one action (whose detail has `key`, when given),
    newest first: the primary key walked backwards, no sort."""
    q = select(EVENT).where(EVENT.c.action == action)
    if key is not None:  # JSON as text: the same on SQLite and PostgreSQL
        q = q.where(cast(EVENT.c.detail, String).like(f'%"{like_escape(key)}"%', escape="\\"))
    return list(s.execute(q.order_by(EVENT.c.id.desc()).limit(limit)).all())


# --- gc ----------------------------------------------------------------------------------------
def _has_replica(e: Any) -> Any:
    return exists().where(REPLICA.c.entry_id == e.c.id)


def _path(e: Any) -> Any:
    """An entry's virtual path, in SQL."""
    slash: Any = literal_column("'/'")
    return case(
        (e.c.dirname == "/", slash + e.c.basename), else_=e.c.dirname + slash + e.c.basename
    )


def _kept_ids(s: Session, before: datetime) -> list[int]:
    """Old tombstones that must stay because something below them stays. Whatever stays below
    a tombstoned directory has an ancestor that is a direct child of a tombstoned directory and
    stays itself, so one join (tombstoned directory → its direct children that stay) finds every
    such entry; all ancestors of each are kept."""
    d, k = ENTRY.alias("d"), ENTRY.alias("k")
    stays = or_(k.c.deleted_at.is_(None), k.c.deleted_at >= before, _has_replica(k))
    q = (
        select(k.c.dirname, k.c.basename)
        .select_from(d)
        .join(k, k.c.dirname == _path(d))
        .where(d.c.deleted_at < before, d.c.kind == "dir", stays)
    )
    ancestors: set[str] = set()
    for r in s.execute(q):
        p = r.dirname
        while p != "/" and p not in ancestors:
            ancestors.add(p)
            p = split(p)[0]
    found = entries_at(s, ancestors)
    return sorted(e.id for e in found.values() if e.deleted_at is not None)


def collect(
    s: Session, tombstones_before: datetime, events_before: datetime, *, dry_run: bool = False
) -> Collected:
    """Purge tombstones deleted before `tombstones_before` whose replicas are all gone (with the
    tombstones below them, see the module docstring), and journal events from before
    `events_before`. With `dry_run`, only count. Run it in a write transaction."""
    old = ENTRY.c.deleted_at < tombstones_before
    count = select(func.count()).select_from(ENTRY)
    kept = s.execute(count.where(old, _has_replica(ENTRY))).scalar_one()
    purgeable = old & ~_has_replica(ENTRY)
    keep = _kept_ids(s, tombstones_before)
    if keep:  # inlined: no parameter limit, and integers need no quoting
        purgeable &= ENTRY.c.id.not_in(
            bindparam("keep", keep, expanding=True, literal_execute=True)
        )
    rotated = EVENT.c.at < events_before
    if dry_run:
        tombstones = s.execute(count.where(purgeable)).scalar_one()
        events = s.execute(select(func.count()).select_from(EVENT).where(rotated)).scalar_one()
    else:
        tombstones = s.execute(delete(ENTRY).where(purgeable)).rowcount  # type: ignore[attr-defined]
        events = s.execute(delete(EVENT).where(rotated)).rowcount  # type: ignore[attr-defined]
    return Collected(int(tombstones), int(events), int(kept))


# --- tombstones in the way ---------------------------------------------------------------------
def undeleted(s: Session, path: str) -> list[str]:
    """Paths of the tombstones at or below `path` that still have replicas (deletes that
    failed: those files are still on a provider). A move onto `path` must not drop them, as
    `writes.rename_subtree` drops the tombstones in its way, replica rows and all."""
    q = (
        select(ENTRY.c.dirname, ENTRY.c.basename)
        .where(at_or_below(path), ENTRY.c.deleted_at.is_not(None), _has_replica(ENTRY))
        .order_by(ENTRY.c.dirname, ENTRY.c.basename)
    )
    return [path_of(r) for r in s.execute(q)]
