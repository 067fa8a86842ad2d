"""Catalog writes: functions over a session (in a write transaction, see
`Database.transaction`), set-based or executemany statements — never a statement per row in a
loop where one per batch will do (the ORM costs ~1 ms a row; these cost microseconds)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, func, insert, literal, select, update
from sqlmodel import Session

from cdir.catalog.models import EntryKind, Event, ReplicaState, table, utcnow
from cdir.catalog.queries import (
    ENTRY,
    REPLICA,
    at_or_below,
    below,
    entries_at,
    path_of,
    replica_map,
)
from cdir.errors import NotADirectory
from cdir.schema.paths import split

EVENT = table(Event)
_BY_ID: Any = bindparam("b_id")
MAX_ERROR = 500  # characters of an error kept on a replica


class Written(Protocol):
    """What a provider confirmed it holds (a providers.RemoteStat fits)."""

    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def mtime_ns(self) -> int | None: ...
    @property
    def fingerprint(self) -> str: ...


@dataclass
class Version:
    """One file's new (or re-confirmed) content and what each provider did with it."""

    path: str
    size: int
    mtime_ns: int | None
    hash: str | None
    changed: bool  # planned as new content: the entry gets a new generation
    base_generation: int  # the entry's generation when planned (0: there was none)
    written: Mapping[int, Written]  # provider id → what it confirmed
    failed: Mapping[int, str] = field(default_factory=dict)  # provider id → error
    generation: int = 0  # set when recorded
    entry_id: int = 0  # set when recorded


def common_dir(paths: Sequence[str]) -> str:
    """The deepest directory holding every one of `paths`."""
    return posixpath.commonpath([split(p)[0] for p in paths]) if paths else "/"


def hashes_agree(a: str | None, b: str | None) -> bool:
    """False only when both are known, of one kind ("md5:…"), and differ."""
    if a is None or b is None or a.partition(":")[0] != b.partition(":")[0]:
        return True
    return a == b


# --- directories -----------------------------------------------------------------------------
def _with_ancestors(paths: Iterable[str]) -> set[str]:
    wanted: set[str] = set()
    for p in paths:
        while p != "/" and p not in wanted:
            wanted.add(p)
            p = split(p)[0]
    return wanted


def check_dirs(s: Session, paths: Iterable[str]) -> None:
    """NotADirectory if a live file stands where one of `paths` or an ancestor must be a
    directory (read only: a plan checks this before it writes anything)."""
    for p, e in entries_at(s, _with_ancestors(paths)).items():
        if e.deleted_at is None and e.kind != EntryKind.DIR:
            raise NotADirectory(f"not a directory: {p}")


def ensure_dirs(s: Session, paths: Iterable[str]) -> None:
    """Create the directory entries for `paths` and their ancestors (reviving tombstones);
    a live file in the way is NotADirectory."""
    wanted = _with_ancestors(paths)
    if not wanted:
        return
    found = entries_at(s, wanted)
    now = utcnow()
    new, revived = [], []
    for p in sorted(wanted):  # every writer locks rows in one order (no deadlock)
        e = found.get(p)
        if e is None:
            d, b = split(p)
            new.append({"dirname": d, "basename": b, "kind": EntryKind.DIR, "meta": {}})
        elif e.deleted_at is not None:
            revived.append({"b_id": e.id})
        elif e.kind != EntryKind.DIR:
            raise NotADirectory(f"not a directory: {p}")
    if new:
        s.execute(insert(ENTRY).values(generation=0, updated_at=now), new)
    if revived:
        s.execute(
            update(ENTRY)
            .where(ENTRY.c.id == _BY_ID)
            .values(
                kind=EntryKind.DIR,
                deleted_at=None,
                size=None,
                mtime_ns=None,
                hash=None,
                updated_at=now,
            ),
            revived,
        )


# --- versions --------------------------------------------------------------------------------
def record_versions(s: Session, versions: Sequence[Version], action: str, actor: str) -> list[str]:
    """Record files that landed on at least one provider: entries created or given a new
    generation, their replicas current (those written), in error (those that failed) or
    stale (the others, when the content changed). Merges with the catalog as it is now, so a
    writer that won a race in between is built on, not overwritten blindly. Returns an error
    for each version that could not be recorded (a directory took its path meanwhile)."""
    # by path: writers recording the same files lock their rows (and unique keys) in one
    # order, so PostgreSQL makes the second wait instead of deadlocking them
    versions = sorted((v for v in versions if v.written), key=lambda v: v.path)
    if not versions:
        return []
    ensure_dirs(s, {split(v.path)[0] for v in versions})
    now = utcnow()
    fresh = entries_at(s, [v.path for v in versions])
    created: list[tuple[Version, dict[str, Any]]] = []
    revised: list[dict[str, Any]] = []
    errors: list[str] = []
    bumped: set[str] = set()
    for v in versions:
        e = fresh.get(v.path)
        if e is not None and e.deleted_at is None and e.kind == EntryKind.DIR:
            errors.append(f"{v.path}: a directory was created there meanwhile; not recorded")
            continue
        renew, row = _entry_row(v, e, now)
        if renew:
            bumped.add(v.path)
        if e is None:
            d, b = split(v.path)
            created.append((v, {"dirname": d, "basename": b, "meta": {}, **row}))
        else:
            v.entry_id = e.id
            if renew or v.hash != e.hash:
                revised.append({"b_id": e.id, **row})
    _write_entries(s, created, revised)
    recorded = [v for v in versions if v.entry_id]
    _record_replicas(s, recorded, bumped, now)
    _journal(s, recorded, action, actor, now)
    return errors


def _entry_row(v: Version, e: Any, now: datetime) -> tuple[bool, dict[str, Any]]:
    """Whether `v` is a new generation of the entry `e` as it is now (None: no entry), and
    the entry's columns to write. The same content a writer recorded meanwhile is built on;
    other content is a new generation (the last writer wins)."""
    alive = e is not None and e.deleted_at is None
    same = alive and (e.size, e.mtime_ns) == (v.size, v.mtime_ns) and hashes_agree(e.hash, v.hash)
    renew = not same or (v.changed and e is not None and e.generation == v.base_generation)
    v.generation = (e.generation if e is not None else 0) + renew
    return renew, {
        "kind": EntryKind.FILE,
        "size": v.size,
        "mtime_ns": v.mtime_ns,
        "hash": v.hash if renew else (e.hash if e is not None else None) or v.hash,
        "generation": v.generation,
        "deleted_at": None,
        "updated_at": now,
    }


def _write_entries(
    s: Session, created: list[tuple[Version, dict[str, Any]]], revised: list[dict[str, Any]]
) -> None:
    if created:
        q = insert(ENTRY).returning(ENTRY.c.id, sort_by_parameter_order=True)
        ids = s.execute(q, [r for _, r in created]).scalars().all()
        for (v, _), i in zip(created, ids, strict=True):
            v.entry_id = i
    if revised:
        s.execute(update(ENTRY).where(ENTRY.c.id == _BY_ID), revised)


def _journal(
    s: Session, recorded: Sequence[Version], action: str, actor: str, now: datetime
) -> None:
    """One journal row per batch, not per file: the journal says what was done, and a
    20,000-file put should not add 20,000 rows to it."""
    if not recorded:
        return
    detail = {
        "files": len(recorded),
        "to": sorted({p for v in recorded for p in v.written}),
        "failed": sorted({p for v in recorded for p in v.failed}),
        "first": recorded[0].path,
        "last": recorded[-1].path,
    }
    where = common_dir([v.path for v in recorded])
    add_events(
        s, [{"action": action, "path": where, "provider": None, "detail": detail}], actor, now
    )


def _record_replicas(
    s: Session, versions: Sequence[Version], bumped: set[str], now: datetime
) -> None:
    reps = replica_map(s, [v.entry_id for v in versions])
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for v in versions:
        mine = reps.get(v.entry_id, {})
        for pid, st in v.written.items():
            vals = {
                "remote_path": st.path,
                "size": st.size,
                "mtime_ns": st.mtime_ns,
                "fingerprint": st.fingerprint,
                "generation": v.generation,
                "state": ReplicaState.CURRENT,
                "last_checked": now,
                "last_error": None,
            }
            _upsert(mine.get(pid), v.entry_id, pid, vals, inserts, updates)
        for pid, err in v.failed.items():
            r = mine.get(pid)
            vals = {"state": ReplicaState.ERROR, "last_checked": now, "last_error": err[:MAX_ERROR]}
            if r is None:
                vals |= {
                    "remote_path": v.path.lstrip("/"),
                    "size": None,
                    "mtime_ns": None,
                    "fingerprint": None,
                    "generation": 0,
                }
            _upsert(r, v.entry_id, pid, vals, inserts, updates)
        if v.path in bumped:
            updates += [
                {"b_id": r.id, "state": ReplicaState.STALE}
                for pid, r in mine.items()
                if pid not in v.written and pid not in v.failed and r.state == ReplicaState.CURRENT
            ]
    if inserts:
        s.execute(insert(REPLICA), inserts)
    update_replicas(s, updates)


def _upsert(
    r: Any,
    entry_id: int,
    pid: int,
    vals: dict[str, Any],
    inserts: list[dict[str, Any]],
    updates: list[dict[str, Any]],
) -> None:
    if r is None:
        inserts.append({"entry_id": entry_id, "provider_id": pid, **vals})
    else:
        updates.append({"b_id": r.id, **vals})


def update_replicas(s: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Set columns of replicas by id; rows are {"b_id": id, column: value…}, grouped by the
    columns they set so each group is one executemany."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(sorted(r)), []).append(r)
    for group in groups.values():
        s.execute(update(REPLICA).where(REPLICA.c.id == _BY_ID), group)


def forget_replicas(s: Session, ids: Sequence[int]) -> None:
    for i in range(0, len(ids), 500):
        s.execute(delete(REPLICA).where(REPLICA.c.id.in_(ids[i : i + 500])))


# --- namespace -------------------------------------------------------------------------------
def tombstone(s: Session, path: str, *, subtree: bool) -> int:
    """Mark the live entry at `path` (and with `subtree` all below it) deleted; returns how
    many files that was."""
    d, b = split(path)
    scope = at_or_below(path) if subtree else (ENTRY.c.dirname == d) & (ENTRY.c.basename == b)
    alive = scope & ENTRY.c.deleted_at.is_(None)
    files = s.execute(
        select(func.count()).select_from(ENTRY).where(alive, ENTRY.c.kind == EntryKind.FILE)
    ).scalar_one()
    s.execute(update(ENTRY).where(alive).values(deleted_at=utcnow()))
    return int(files)


def rename_subtree(s: Session, src: str, dst: str) -> None:
    """Rename a path and everything below it in a few statements; tombstones at the
    destination give way (with their replica rows)."""
    d, b = split(dst)
    gone = list(
        s.execute(
            select(ENTRY.c.id).where(ENTRY.c.deleted_at.is_not(None), at_or_below(dst))
        ).scalars()
    )
    if gone:
        s.execute(delete(REPLICA).where(REPLICA.c.entry_id.in_(gone)))
        s.execute(delete(ENTRY).where(ENTRY.c.id.in_(gone)))
    s.execute(
        update(ENTRY)
        .where(below(src))
        .values(dirname=literal(dst) + func.substr(ENTRY.c.dirname, len(src) + 1))
    )
    sd, sb = split(src)
    s.execute(
        update(ENTRY)
        .where(ENTRY.c.dirname == sd, ENTRY.c.basename == sb)
        .values(dirname=d, basename=b, updated_at=utcnow())
    )


def set_preferred(s: Session, path: str, provider_id: int | None) -> bool:
    """Set (or clear) the preferred provider of the live entry at `path`; False if none."""
    d, b = split(path)
    q = (
        update(ENTRY)
        .where(ENTRY.c.dirname == d, ENTRY.c.basename == b, ENTRY.c.deleted_at.is_(None))
        .values(preferred_provider_id=provider_id)
    )
    return bool(s.execute(q).rowcount)  # type: ignore[attr-defined]


def add_events(
    s: Session, rows: Sequence[dict[str, Any]], actor: str, now: datetime | None = None
) -> None:
    """Append to the journal: rows of {action, path, provider, detail}."""
    if rows:
        at = now or utcnow()
        s.execute(insert(EVENT), [{"at": at, "actor": actor, **r} for r in rows])


def upsert_replicas(s: Session, items: Sequence[tuple[int, int, Any, dict[str, Any]]]) -> None:
    """Set replicas' columns: items of (entry id, provider id, the replica row read before
    or None, columns); rows that do not exist yet are created. One executemany each."""
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for entry_id, provider_id, row, vals in items:
        _upsert(row, entry_id, provider_id, vals, inserts, updates)
    if inserts:
        s.execute(insert(REPLICA), inserts)
    update_replicas(s, updates)


def pending_replicas(s: Session, wanted: Sequence[tuple[int, Iterable[int]]]) -> None:
    """A `pending` replica row for each (entry id, provider ids) where the entry has none on
    that provider yet: the next copy step (sync's converge) writes it there."""
    ids = sorted({entry_id for entry_id, _ in wanted})
    if not ids:
        return
    reps = replica_map(s, ids)
    paths: dict[int, str] = {}
    for i in range(0, len(ids), 500):
        q = select(ENTRY.c.id, ENTRY.c.dirname, ENTRY.c.basename).where(
            ENTRY.c.id.in_(ids[i : i + 500])
        )
        paths.update((r.id, path_of(r)) for r in s.execute(q))
    rows = [
        {
            "entry_id": entry_id,
            "provider_id": pid,
            "remote_path": paths[entry_id].lstrip("/"),
            "generation": 0,
            "state": ReplicaState.PENDING,
        }
        for entry_id, pids in wanted
        for pid in sorted(set(pids))
        if pid not in reps.get(entry_id, {})
    ]
    if rows:
        s.execute(insert(REPLICA), rows)
