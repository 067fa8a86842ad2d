"""Catalog reads: functions over a session, answering with plain rows (attribute access, no
ORM identity map: reading 10,000 rows as ORM objects costs ~10x more) unless a caller needs
an object to change."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Row, String, bindparam, func, or_, select, type_coerce
from sqlmodel import Session

from cdir.catalog.models import Entry, EntryKind, Event, Provider, Replica, ReplicaState, table
from cdir.schema.paths import split

ENTRY, REPLICA, PROVIDER = table(Entry), table(Replica), table(Provider)
CHUNK = 500  # values per IN (…): well under SQLite's and PostgreSQL's parameter limits

# what planners read of an entry and of a replica
ENTRY_COLS = (
    ENTRY.c.id,
    ENTRY.c.dirname,
    ENTRY.c.basename,
    ENTRY.c.kind,
    ENTRY.c.size,
    ENTRY.c.mtime_ns,
    ENTRY.c.hash,
    ENTRY.c.generation,
    ENTRY.c.preferred_provider_id,
    # read raw: callers only ask `is None`, and parsing 20,000 datetimes costs ~40 ms
    type_coerce(ENTRY.c.deleted_at, String).label("deleted_at"),
)
# what planners read of a replica (replica_map); outputs read every column
_PLAN_REPLICA = (
    "id",
    "entry_id",
    "provider_id",
    "remote_path",
    "size",
    "mtime_ns",
    "fingerprint",
    "generation",
    "state",
)
_BY_NAMES = select(*ENTRY_COLS).where(
    ENTRY.c.dirname == bindparam("d"), ENTRY.c.basename.in_(bindparam("b", expanding=True))
)


def path_of(e: Any) -> str:
    """The virtual path of an entry row or object."""
    return f"{e.dirname.rstrip('/')}/{e.basename}" if e.basename else e.dirname


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def below(path: str) -> Any:
    """Entries strictly below `path` (an index-friendly prefix match on dirname)."""
    if path == "/":
        return ENTRY.c.dirname != ""  # everything
    return or_(ENTRY.c.dirname == path, ENTRY.c.dirname.like(like_escape(path) + "/%", escape="\\"))


def at_or_below(path: str) -> Any:
    d, b = split(path)
    return or_((ENTRY.c.dirname == d) & (ENTRY.c.basename == b), below(path))


# --- entries ---------------------------------------------------------------------------------
# Built once with bind parameters: building a statement costs more than running it on
# SQLite (measured: a `stat` went from 0.51 to 0.2 ms, most of it SQLAlchemy's coercions).
_ENTRY_AT = select(*ENTRY_COLS).where(
    ENTRY.c.dirname == bindparam("d"),
    ENTRY.c.basename == bindparam("b"),
    ENTRY.c.deleted_at.is_(None),
)


def entry_at(s: Session, path: str) -> Row[Any] | None:
    """The live entry at `path`, or None (the root has no row: callers treat "/" apart)."""
    d, b = split(path)
    return s.execute(_ENTRY_AT, {"d": d, "b": b}).first()


def entry_with_id(s: Session, entry_id: int) -> Row[Any] | None:
    """The live entry whose id is `entry_id` (ids stay with an entry through new versions
    and moves), or None."""
    q = select(*ENTRY_COLS).where(ENTRY.c.id == entry_id, ENTRY.c.deleted_at.is_(None))
    return s.execute(q).first()


def events_after(s: Session, after: int, limit: int) -> list[Event]:
    """Journal events with an id above `after`, oldest first."""
    q = select(Event).where(Event.id > after).order_by(Event.id).limit(limit)  # type: ignore[operator,arg-type]
    return list(s.execute(q).scalars())


def replica_states(s: Session) -> dict[tuple[str, str], int]:
    """(provider name, state) → number of replicas of live entries."""
    q = (
        select(PROVIDER.c.name, REPLICA.c.state, func.count())
        .select_from(REPLICA.join(PROVIDER, PROVIDER.c.id == REPLICA.c.provider_id))
        .group_by(PROVIDER.c.name, REPLICA.c.state)
    )
    return {(name, str(state)): n for name, state, n in s.execute(q).all()}


def entries_at(s: Session, paths: Iterable[str]) -> dict[str, Row[Any]]:
    """path → entry row (tombstones too) for exact paths: one `dirname = ? AND basename IN
    (…)` per directory and 500 names (measured 4x faster on SQLite than a row-value IN, and
    no expression built per path)."""
    names: dict[str, list[str]] = defaultdict(list)
    for p in set(paths):
        d, b = split(p)
        names[d].append(b)
    found: dict[str, Row[Any]] = {}
    for d, bs in names.items():
        for i in range(0, len(bs), CHUNK):
            for r in s.execute(_BY_NAMES, {"d": d, "b": bs[i : i + CHUNK]}).all():
                found[path_of(r)] = r
    return found


def has_children(s: Session, path: str) -> bool:
    q = select(ENTRY.c.id).where(ENTRY.c.dirname == path, ENTRY.c.deleted_at.is_(None)).limit(1)
    return s.execute(q).first() is not None


def children(
    s: Session, path: str, *, recursive: bool, after: str | None = None, limit: int | None = None
) -> list[Row[Any]]:
    """Live entries in (or below) a directory, ordered by path, paged by keyset after the
    path `after`."""
    q = select(*ENTRY_COLS).where(ENTRY.c.deleted_at.is_(None))
    q = q.where(below(path)) if recursive else q.where(ENTRY.c.dirname == path)
    if after:
        d, b = split(after)
        q = q.where(or_(ENTRY.c.dirname > d, (ENTRY.c.dirname == d) & (ENTRY.c.basename > b)))
    q = q.order_by(ENTRY.c.dirname, ENTRY.c.basename)
    return list(s.execute(q.limit(limit) if limit else q).all())


def files_in(s: Session, path: str, *, recursive: bool) -> list[Row[Any]]:
    """Live files in (or below) a directory, ordered by path."""
    q = select(*ENTRY_COLS).where(ENTRY.c.deleted_at.is_(None), ENTRY.c.kind == EntryKind.FILE)
    q = q.where(below(path)) if recursive else q.where(ENTRY.c.dirname == path)
    return list(s.execute(q.order_by(ENTRY.c.dirname, ENTRY.c.basename)).all())


def matching(s: Session, path: str, *, recursive: bool, basename_like: str | None) -> Iterator[Any]:
    """Live entries in (or below) `path` whose basename is LIKE the pattern, streamed."""
    q = select(*ENTRY_COLS).where(ENTRY.c.deleted_at.is_(None))
    q = q.where(below(path)) if recursive else q.where(ENTRY.c.dirname == path)
    if basename_like is not None:
        q = q.where(ENTRY.c.basename.like(basename_like, escape="\\"))
    q = q.order_by(ENTRY.c.dirname, ENTRY.c.basename)
    yield from s.execute(q.execution_options(yield_per=2000))


# --- replicas --------------------------------------------------------------------------------
def replica_map(s: Session, entry_ids: Iterable[int | None]) -> dict[int, dict[int, Row[Any]]]:
    """entry id → provider id → replica row."""
    out: dict[int, dict[int, Row[Any]]] = {}
    for r in _replicas(s, entry_ids):
        out.setdefault(r.entry_id, {})[r.provider_id] = r
    return out


def replicas_named(s: Session, entry_ids: Iterable[int | None]) -> dict[int, list[Row[Any]]]:
    """entry id → its replica rows, each with its provider's name as `pname`, by name."""
    out: dict[int, list[Row[Any]]] = {}
    for r in _replicas(s, entry_ids, named=True):
        out.setdefault(r.entry_id, []).append(r)
    return out


_IDS: Any = bindparam("ids", expanding=True)
_REPLICAS = {
    False: select(*[REPLICA.c[c] for c in _PLAN_REPLICA]).where(REPLICA.c.entry_id.in_(_IDS)),
    True: select(*REPLICA.c, PROVIDER.c.name.label("pname"))
    .join(PROVIDER, PROVIDER.c.id == REPLICA.c.provider_id)
    .where(REPLICA.c.entry_id.in_(_IDS))
    .order_by(PROVIDER.c.name),
}


def _replicas(s: Session, entry_ids: Iterable[int | None], named: bool = False) -> Iterator[Any]:
    ids = sorted({i for i in entry_ids if i})
    for i in range(0, len(ids), CHUNK):
        yield from s.execute(_REPLICAS[named], {"ids": ids[i : i + CHUNK]}).all()


def replicas_in(s: Session, path: str, *, subtree: bool, deleted: bool = False) -> list[Row[Any]]:
    """Every replica of the live entry at `path` (and with `subtree` of those below it) —
    or, with `deleted`, of the tombstones there (replicas whose delete failed) — with the
    entry's path parts and size."""
    d, b = split(path)
    scope = at_or_below(path) if subtree else (ENTRY.c.dirname == d) & (ENTRY.c.basename == b)
    gone = ENTRY.c.deleted_at.is_not(None) if deleted else ENTRY.c.deleted_at.is_(None)
    q = (
        select(REPLICA, ENTRY.c.dirname, ENTRY.c.basename, ENTRY.c.size.label("entry_size"))
        .join(ENTRY, ENTRY.c.id == REPLICA.c.entry_id)
        .where(scope, gone)
    )
    return list(s.execute(q).all())


def names_held(
    s: Session, dirnames: Iterable[str], provider_ids: Iterable[int]
) -> dict[tuple[str, int], set[str]]:
    """(directory, provider id) → the names of live entries there with a replica on that
    provider (for case-insensitive providers, where `a.csv` and `A.csv` are one file)."""
    dirs, pids = sorted(set(dirnames)), sorted(set(provider_ids))
    out: dict[tuple[str, int], set[str]] = defaultdict(set)
    if not dirs or not pids:
        return out
    for i in range(0, len(dirs), CHUNK):
        q = (
            select(ENTRY.c.dirname, ENTRY.c.basename, REPLICA.c.provider_id)
            .join(REPLICA, REPLICA.c.entry_id == ENTRY.c.id)
            .where(
                ENTRY.c.dirname.in_(dirs[i : i + CHUNK]),
                ENTRY.c.deleted_at.is_(None),
                REPLICA.c.provider_id.in_(pids),
            )
        )
        for d, b, pid in s.execute(q).all():
            out[(d, pid)].add(b)
    return out


def tombstone_at(s: Session, path: str) -> Row[Any] | None:
    """The tombstone at `path`, if its delete (or one below it) is still unfinished: some
    replica under it is left."""
    d, b = split(path)
    q = select(*ENTRY_COLS).where(
        ENTRY.c.dirname == d, ENTRY.c.basename == b, ENTRY.c.deleted_at.is_not(None)
    )
    row = s.execute(q).first()
    if row is None or not replicas_in(s, path, subtree=True, deleted=True):
        return None
    return row


def pending_deletes(s: Session, path: str, *, recursive: bool) -> list[Row[Any]]:
    """Tombstoned files in (or below) `path` that still have replicas (a failed delete)."""
    q = (
        select(*ENTRY_COLS)
        .where(ENTRY.c.deleted_at.is_not(None), ENTRY.c.kind == EntryKind.FILE)
        .where(ENTRY.c.id.in_(select(REPLICA.c.entry_id)))
    )
    q = q.where(below(path)) if recursive else q.where(ENTRY.c.dirname == path)
    return list(s.execute(q.order_by(ENTRY.c.dirname, ENTRY.c.basename)).all())


def tracked_elsewhere(s: Session, provider_id: int, remote_paths: Sequence[str]) -> dict[str, str]:
    """remote path → the virtual path whose replica on `provider_id` it is, for the paths
    that are some other entry's replica (a move that did not finish on that provider)."""
    out: dict[str, str] = {}
    for i in range(0, len(remote_paths), CHUNK):
        q = (
            select(REPLICA.c.remote_path, ENTRY.c.dirname, ENTRY.c.basename)
            .join(ENTRY, ENTRY.c.id == REPLICA.c.entry_id)
            .where(
                REPLICA.c.provider_id == provider_id,
                REPLICA.c.remote_path.in_(remote_paths[i : i + CHUNK]),
            )
        )
        for r in s.execute(q).all():
            if path_of(r) != "/" + r.remote_path:
                out[r.remote_path] = path_of(r)
    return out


def home_providers(s: Session, dirname: str) -> set[int]:
    """Providers holding a current replica of a live file directly in `dirname`: where a
    file new in that directory is replicated to."""
    q = (
        select(REPLICA.c.provider_id)
        .distinct()
        .join(ENTRY, ENTRY.c.id == REPLICA.c.entry_id)
        .where(
            ENTRY.c.dirname == dirname,
            ENTRY.c.deleted_at.is_(None),
            REPLICA.c.state == ReplicaState.CURRENT,
            REPLICA.c.generation == ENTRY.c.generation,
        )
    )
    return set(s.execute(q).scalars())


def needing_copies(s: Session, path: str) -> list[Row[Any]]:
    """(entry columns, provider_id) for each live file at or below `path` and each provider
    whose replica of it is not current (stale, missing, pending, in error, or an older
    generation): what a sync pass copies."""
    q = (
        select(*ENTRY_COLS, REPLICA.c.provider_id)
        .join(ENTRY, ENTRY.c.id == REPLICA.c.entry_id)
        .where(
            at_or_below(path),
            ENTRY.c.deleted_at.is_(None),
            ENTRY.c.kind == EntryKind.FILE,
            or_(
                REPLICA.c.state != ReplicaState.CURRENT,
                REPLICA.c.generation != ENTRY.c.generation,
            ),
            REPLICA.c.state != ReplicaState.CONFLICT,
        )
        .order_by(ENTRY.c.dirname, ENTRY.c.basename)
    )
    return list(s.execute(q).all())


def count_replicas(s: Session, provider_id: int) -> int:
    q = select(func.count()).select_from(REPLICA).where(REPLICA.c.provider_id == provider_id)
    return int(s.execute(q).scalar_one())


# --- providers and preferences ---------------------------------------------------------------
def providers(s: Session) -> list[Provider]:
    """Every provider, highest priority first, then by name."""
    q = select(Provider).order_by(PROVIDER.c.priority.desc(), PROVIDER.c.name)
    return list(s.scalars(q).all())


def providers_by_id(s: Session) -> dict[int, Provider]:
    return {p.id: p for p in providers(s) if p.id is not None}


def provider_named(s: Session, name: str) -> Provider | None:
    return s.scalars(select(Provider).where(PROVIDER.c.name == name)).first()


def preferences(s: Session, paths: Sequence[str]) -> dict[str, int | None]:
    """path → preferred provider id, set on the path or inherited from its nearest ancestor;
    one query for any number of paths (preferences are few)."""
    q = select(ENTRY.c.dirname, ENTRY.c.basename, ENTRY.c.preferred_provider_id).where(
        ENTRY.c.preferred_provider_id.is_not(None), ENTRY.c.deleted_at.is_(None)
    )
    prefs = {path_of(r): r.preferred_provider_id for r in s.execute(q)}
    out: dict[str, int | None] = {}
    for path in paths:
        p, found = path, None
        while found is None and p != "/":
            found = prefs.get(p)
            p = split(p)[0]
        out[path] = found
    return out
