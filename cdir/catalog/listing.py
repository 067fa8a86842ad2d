"""Change detection in bulk (DESIGN.md §3): a provider's listing goes into a temporary table
of the session, and three set-based queries compare it with that provider's replica rows —
no query per file, and memory bounded by a batch of the listing, whatever the catalog's size.

- `differing`: listed files whose replica row says something else (size, fingerprint, a
  state other than current, an older generation, a tombstoned entry). A pass in which
  nothing changed reads no row here;
- `unknown`: listed files that are no replica of this provider;
- `unlisted`: replica rows of this provider below a path whose file the listing lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table, and_, insert, or_, select, text
from sqlalchemy.engine import Row
from sqlmodel import Session

from cdir.catalog.models import ReplicaState
from cdir.catalog.queries import ENTRY, ENTRY_COLS, REPLICA, at_or_below

LISTED = Table(
    "cdir_listed",
    MetaData(),
    Column("path", String, primary_key=True),
    Column("size", BigInteger),
    Column("mtime_ns", BigInteger),
    Column("fingerprint", String),
    Column("hash", String),  # "kind:hex" when the provider reported one
    prefixes=["TEMPORARY"],
)
T = LISTED.c
# what a comparison hands back of the replica row (the entry's columns come with it)
_REPLICA_COLS = (
    REPLICA.c.id.label("replica_id"),
    REPLICA.c.provider_id,
    REPLICA.c.remote_path,
    REPLICA.c.size.label("replica_size"),
    REPLICA.c.mtime_ns.label("replica_mtime_ns"),
    REPLICA.c.fingerprint.label("replica_fingerprint"),
    REPLICA.c.generation.label("replica_generation"),
    REPLICA.c.state,
)


def start(s: Session) -> None:
    """(Re)create the empty temporary table in this session's connection."""
    s.execute(text("DROP TABLE IF EXISTS cdir_listed"))
    LISTED.create(s.connection())


def add(s: Session, rows: Iterable[Mapping[str, Any]]) -> None:
    """Rows of {path, size, mtime_ns, fingerprint, hash}; one executemany."""
    batch = list(rows)
    if batch:
        s.execute(insert(LISTED), batch)


def finish(s: Session) -> None:
    s.execute(text("DROP TABLE IF EXISTS cdir_listed"))


def _scoped(provider_id: int, path: str) -> Any:
    return (
        select(*ENTRY_COLS, *_REPLICA_COLS)
        .join(ENTRY, ENTRY.c.id == REPLICA.c.entry_id)
        .where(REPLICA.c.provider_id == provider_id, at_or_below(path))
    )


def differing(s: Session, provider_id: int, path: str) -> list[Row[Any]]:
    """Listed files at or below `path` whose replica row is not simply current and
    unchanged, with the listing's columns as listed_*."""
    q = (
        _scoped(provider_id, path)
        .add_columns(
            T.size.label("listed_size"),
            T.mtime_ns.label("listed_mtime_ns"),
            T.fingerprint.label("listed_fingerprint"),
            T.hash.label("listed_hash"),
        )
        .join(LISTED, T.path == REPLICA.c.remote_path)
        .where(
            or_(
                T.size != REPLICA.c.size,
                REPLICA.c.size.is_(None),
                T.fingerprint != REPLICA.c.fingerprint,
                REPLICA.c.fingerprint.is_(None),
                REPLICA.c.state != ReplicaState.CURRENT,
                REPLICA.c.generation != ENTRY.c.generation,
                ENTRY.c.deleted_at.is_not(None),
            )
        )
    )
    return list(s.execute(q).all())


def unknown(s: Session, provider_id: int) -> list[Row[Any]]:
    """Listed files that are no replica row of this provider."""
    mine = and_(REPLICA.c.provider_id == provider_id, REPLICA.c.remote_path == T.path)
    q = select(LISTED).outerjoin(REPLICA, mine).where(REPLICA.c.id.is_(None)).order_by(T.path)
    return list(s.execute(q).all())


def unlisted(s: Session, provider_id: int, path: str) -> list[Row[Any]]:
    """Replica rows of this provider at or below `path` whose file was not listed."""
    q = (
        _scoped(provider_id, path)
        .outerjoin(LISTED, T.path == REPLICA.c.remote_path)
        .where(T.path.is_(None))
    )
    return list(s.execute(q).all())
