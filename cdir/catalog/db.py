"""Engine, sessions and versioned schema migrations. No network I/O but the database's."""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine

from cdir.catalog import models
from cdir.config import redact
from cdir.errors import CatalogError, CdirError, Conflict
from cdir.interrupts import critical

T = TypeVar("T")


def _v1(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


def _v2(conn: Connection) -> None:
    """gc: the catalog_state table (when gc last ran) and an index over tombstones. A catalog
    made by this version's _v1 (create_all) has them already."""
    models.CatalogState.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
    for index in models.Entry.__table__.indexes:  # type: ignore[attr-defined]
        if index.name == "ix_entry_tombstone":
            index.create(conn, checkfirst=True)


def _v3(conn: Connection) -> None:
    """Leases: commands claim the subtrees they work on (catalog.leases)."""
    models.Lease.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]


def _v4(conn: Connection) -> None:
    """Sync: replicas found by (provider, remote path) when a listing is compared."""
    for index in models.Replica.__table__.indexes:  # type: ignore[attr-defined]
        if index.name == "ix_replica_provider_path":
            index.create(conn, checkfirst=True)


def _v5(conn: Connection) -> None:
    """Named syncs: a job says what it copies from where to where (to run it later)."""
    have = {c["name"] for c in inspect(conn).get_columns("job")}
    for col in ("source", "destination"):
        if col not in have:
            conn.execute(text(f"ALTER TABLE job ADD COLUMN {col} VARCHAR"))


BUSY_TIMEOUT_S = 30  # how long a writer waits for another process's write lock
POOL_SIZE = 40  # anyio's default worker threads: each may hold a connection
WRITE_OPTION = "cdir_write"  # execution option: this transaction will write

# Append only: each function moves the schema one version up, inside one transaction.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1, _v2, _v3, _v4, _v5]
SCHEMA_VERSION = len(MIGRATIONS)


def _engine_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = _engine_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # created private: the catalog names every file and provider (WAL files follow)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        # a connection per thread that may read at once (the service's worker threads):
        # SQLite connections are cheap, and waiting for one of the default 15 stalls requests
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
            pool_size=POOL_SIZE,
            max_overflow=POOL_SIZE,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # transactions begin in _begin below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # LIKE 'prefix%' can then use the indexes, and matches as PostgreSQL does
            cur.execute("PRAGMA case_sensitive_like=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # A writer takes the write lock up front: a deferred transaction that reads and
            # then writes fails at once (SQLITE_BUSY_SNAPSHOT) when another process wrote
            # in between, without waiting on busy_timeout.
            write = conn.get_execution_options().get(WRITE_OPTION)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    # psycopg logs "error ignored terminating <Pipeline…>: pipeline aborted" when a batch
    # fails in a race (a unique key another writer took): the error itself reaches
    # Database.write, which runs the batch again; the log line would only reach the user's
    # terminal through logging's last-resort handler
    logging.getLogger("psycopg").addHandler(logging.NullHandler())
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except (SQLAlchemyError, ImportError) as exc:
        raise CatalogError(f"cannot use catalog {redact(url)}: {exc}") from exc


def migrate(engine: Engine, url: str | None = None) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found before. A database
    that cannot be reached is a retryable CatalogError of one line naming `url` (its
    password hidden)."""
    try:
        with engine.begin() as conn:
            if not inspect(conn).has_table("schema_version"):
                current = 0
                models.SchemaVersion.__table__.create(conn)  # type: ignore[attr-defined]
            else:
                rows = conn.execute(text("SELECT version FROM schema_version")).scalars().all()
                current = max(rows, default=0)
            if current > SCHEMA_VERSION:
                raise CatalogError(
                    f"the catalog has schema version {current}, newer than this cdir "
                    f"({SCHEMA_VERSION}): upgrade cdir"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version - 1](conn)
                conn.execute(models.SchemaVersion.__table__.insert().values(version=version))  # type: ignore[attr-defined]
            return current
    except OperationalError as exc:
        where = redact(url) if url else engine.url.render_as_string(hide_password=True)
        raise CatalogError(
            f"cannot open the catalog {where}: {first_line(exc)}", retryable=True
        ) from exc


def first_line(exc: SQLAlchemyError) -> str:
    """The driver's message, first line only (psycopg adds hints on lines of their own)."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


# PostgreSQL's deadlock_detected and serialization_failure: the transaction was rolled back
# because of a concurrent writer, and running it again is the cure (as for a unique-key race)
RACES = ("40P01", "40001")


def _sqlstate(exc: SQLAlchemyError) -> str | None:
    return getattr(getattr(exc, "orig", None), "sqlstate", None)


def translate_db_error(exc: SQLAlchemyError, url: str) -> CdirError:
    """A database error as one line in cdir's error tree: a unique-key race (or a deadlock
    between writers) is a Conflict; a lock held too long or a lost connection a retryable
    CatalogError."""
    detail = first_line(exc)
    if isinstance(exc, IntegrityError) or _sqlstate(exc) in RACES:
        return Conflict(f"the catalog changed under this command (another writer won): {detail}")
    if isinstance(exc, OperationalError) and ("locked" in detail or "busy" in detail):
        return CatalogError(
            f"the catalog is busy: another cdir process held it for over {BUSY_TIMEOUT_S} s; "
            "try again",
            retryable=True,
        )
    if isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        return CatalogError(f"lost the catalog {redact(url)}: {detail}", retryable=True)
    return CatalogError(f"catalog error: {detail}")


class Database:
    """One engine per catalog URL; sessions are short and used by vdir only."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        migrate(self.engine, url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A raw session: committed at the end, rolled back on error, errors untranslated."""
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextmanager
    def transaction(self, s: Session | None = None, *, write: bool = False) -> Iterator[Session]:
        """The one way vdir talks to the catalog: join `s` when given, else open a session
        (taking the write lock up front when `write`), commit or roll back, and turn
        database errors into cdir's (see translate_db_error). A write is a critical block:
        Ctrl-C waits until it is committed or rolled back."""
        if s is not None:
            yield s
            return
        guard = critical() if write else nullcontext()
        try:
            with (
                guard,
                Session(self._writer if write else self.engine, expire_on_commit=False) as new,
            ):
                try:
                    yield new
                    new.commit()
                except BaseException:
                    new.rollback()
                    raise
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, self.url) from None

    def write(self, work: Callable[[Session], T], attempts: int = 5) -> T:
        """Run `work` in a write transaction; when another writer won a unique-key race,
        run it again (it re-reads, so it merges with what the other wrote)."""
        for attempt in range(1, attempts + 1):
            try:
                with self.transaction(write=True) as s:
                    return work(s)
            except Conflict:
                if attempt == attempts:
                    raise
                time.sleep(0.05 * attempt * (0.5 + random.random()))
        raise AssertionError("unreachable")

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()
