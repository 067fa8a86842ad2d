"""Test data made on the fly: source trees of random bytes and a generated 1 M-entry catalog."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import MiB


def make_small_files(
    root: Path, count: int, size: int, top: int = 4, sub: int = 4, seed: int | None = None
) -> tuple[int, int]:
    """`count` files of `size` random bytes spread over a `top` x `sub` tree (top + top*sub
    directories: 20 by default). Returns (files, bytes).

    With a `seed` the bytes are pseudo-random from it: the same tree, byte for byte, on every
    run and machine (still incompressible); without one they come from os.urandom."""
    leaves = [root / f"dir{t:02d}" / f"sub{s:02d}" for t in range(top) for s in range(sub)]
    for leaf in leaves:
        leaf.mkdir(parents=True)
    randbytes = os.urandom if seed is None else random.Random(seed).randbytes
    for i in range(count):
        # random bytes: nothing on the way (compression, dedup) gets an easy ride
        (leaves[i % len(leaves)] / f"file-{i:05d}.bin").write_bytes(randbytes(size))
    return count, count * size


def make_big_file(path: Path, size: int) -> tuple[int, int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = 8 * MiB
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(block, left)
            f.write(os.urandom(n))
            left -= n
    return 1, size


# --- the 1 M-entry catalog ----------------------------------------------------------------------

TOP_DIRS = 100
SUB_DIRS = 100
TOTAL_ENTRIES = 1_000_000
BIG_DIR = "/big10k"
BIG_DIR_FILES = 10_000
EXACT_NAME = "exactname.csv"
EXACT_DIR = "/d042/s017"
# basename "name-HHHH-NNNNNNN.ext" with HHHH = NNNNNNN * 7919 mod 3000 (a bijection per block of
# 3000), so `name-0042*` matches one file in 3000: a few hundred, spread over the whole tree
NAME_BUCKETS = 3000
SEARCH_BUCKET = 42
SEARCH_PATTERN = f"name-{SEARCH_BUCKET:04d}*"
_EXTS = ("dat", "csv", "txt", "jpg")


@dataclass(frozen=True)
class CatalogShape:
    entries: int
    files: int
    dirs: int
    replicas: int
    pattern_matches: int
    seconds: float


def _tree_files() -> int:
    # everything but the directories, /big10k and its files and the exact-name file
    return TOTAL_ENTRIES - (TOP_DIRS + TOP_DIRS * SUB_DIRS) - (1 + BIG_DIR_FILES) - 1


EntryRow = tuple[int, str, str, str, int | None, int | None]


def _entries() -> Iterator[EntryRow]:
    """(id, dirname, basename, kind, size, mtime_ns) in path order, ids from 1."""
    ident = 0
    base_ns = 1_700_000_000 * 10**9

    def row(dirname: str, basename: str, kind: str, n: int) -> EntryRow:
        nonlocal ident
        ident += 1
        if kind == "dir":
            return ident, dirname, basename, kind, None, None
        size = (n * 2654435761) % 50_000_000  # spread over 0-50 MB
        return ident, dirname, basename, kind, size, base_ns + n * 1_000_003

    n_sub = TOP_DIRS * SUB_DIRS
    per_sub, extra = divmod(_tree_files(), n_sub)  # the first `extra` subdirs hold one more
    i = 0
    yield row("/", BIG_DIR[1:], "dir", 0)
    for k in range(BIG_DIR_FILES):
        yield row(BIG_DIR, f"file-{k:05d}.dat", "file", k)
    for t in range(TOP_DIRS):
        top = f"/d{t:03d}"
        yield row("/", top[1:], "dir", 0)
        for s in range(SUB_DIRS):
            sub = f"{top}/s{s:03d}"
            yield row(top, sub.rsplit("/", 1)[1], "dir", 0)
            if sub == EXACT_DIR:
                yield row(sub, EXACT_NAME, "file", 0)
            for _ in range(per_sub + (1 if t * SUB_DIRS + s < extra else 0)):
                name = f"name-{(i * 7919) % NAME_BUCKETS:04d}-{i:07d}.{_EXTS[i % 4]}"
                yield row(sub, name, "file", i)
                i += 1


def generate_catalog(url: str, batch: int = 50_000) -> CatalogShape:
    """Fill a new catalog at `url` with TOTAL_ENTRIES entries and one current replica per file
    on a provider `gen` (so `ls -l` has replicas to show).

    The schema comes from cdir itself (`Database(url)` migrates), so the data has the real
    indexes. Rows go in by DB-API executemany of plain tuples, 50,000 per transaction: the
    datetime and JSON values are converted once with the columns' own SQLAlchemy types instead
    of once per row, which makes 2 M rows a matter of seconds. Nothing here is timed."""
    from sqlalchemy import insert

    from cdir.catalog.db import Database
    from cdir.catalog.models import Entry, Provider, Replica

    t0 = time.perf_counter()
    db = Database(url)
    dialect = db.engine.dialect
    now = datetime.now(UTC)
    entry_t, replica_t = Entry.__table__, Replica.__table__  # type: ignore[attr-defined]

    def bound(column: Any, value: Any) -> Any:
        proc = column.type.dialect_impl(dialect).bind_processor(dialect)
        return proc(value) if proc else value

    now_db = bound(entry_t.c.updated_at, now)
    meta_db = bound(entry_t.c.meta, {})
    checked_db = bound(replica_t.c.last_checked, now)
    entry_sql = str(
        insert(entry_t).compile(
            dialect=dialect,
            column_keys=[
                "id",
                "dirname",
                "basename",
                "kind",
                "size",
                "mtime_ns",
                "generation",
                "meta",
                "updated_at",
            ],
        )
    )
    replica_sql = str(
        insert(replica_t).compile(
            dialect=dialect,
            column_keys=[
                "entry_id",
                "provider_id",
                "remote_path",
                "size",
                "mtime_ns",
                "fingerprint",
                "generation",
                "state",
                "last_checked",
            ],
        )
    )
    if "?" not in entry_sql:
        raise SystemExit("the catalog generator supports SQLite catalogs only")
    entries: list[tuple[Any, ...]] = []
    replicas: list[tuple[Any, ...]] = []
    n_entries = n_files = 0
    try:
        with db.engine.begin() as conn:
            conn.execute(
                insert(Provider.__table__),  # type: ignore[attr-defined]
                [
                    {
                        "id": 1,
                        "name": "gen",
                        "kind": "local",
                        "root": "/nonexistent",
                        "options": {},
                        "priority": 0,
                        "enabled": True,
                        "created_at": now,
                    }
                ],
            )
        for ident, dirname, basename, kind, size, mtime_ns in _entries():
            is_file = kind == "file"
            entries.append(
                (ident, dirname, basename, kind, size, mtime_ns, int(is_file), meta_db, now_db)
            )
            n_entries += 1
            if is_file:
                n_files += 1
                path = f"{dirname}/{basename}"[1:]
                replicas.append(
                    (ident, 1, path, size, mtime_ns, f"{size}:{mtime_ns}", 1, "current", checked_db)
                )
            if len(entries) >= batch:
                _flush(db, entry_sql, entries, replica_sql, replicas)
        _flush(db, entry_sql, entries, replica_sql, replicas)
    finally:
        db.close()
    matches = sum(1 for i in range(_tree_files()) if (i * 7919) % NAME_BUCKETS == SEARCH_BUCKET)
    return CatalogShape(
        entries=n_entries,
        files=n_files,
        dirs=n_entries - n_files,
        replicas=n_files,
        pattern_matches=matches,
        seconds=time.perf_counter() - t0,
    )


def _flush(
    db: Any,
    entry_sql: str,
    entries: list[tuple[Any, ...]],
    replica_sql: str,
    replicas: list[tuple[Any, ...]],
) -> None:
    with db.engine.connect() as conn:
        # generation only (cdir sets its own); outside a transaction, as SQLite requires
        conn.connection.dbapi_connection.execute("PRAGMA synchronous=OFF")  # type: ignore[union-attr]
        conn.begin()
        if entries:
            conn.exec_driver_sql(entry_sql, entries)
        if replicas:
            conn.exec_driver_sql(replica_sql, replicas)
        conn.commit()
    entries.clear()
    replicas.clear()
