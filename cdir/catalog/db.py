"""Engine, sessions and versioned schema migrations. No network I/O but the database's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event, inspect, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlmodel import Session, SQLModel, create_engine

from cdir.catalog import models
from cdir.config import redact
from cdir.errors import CatalogError


def _v1(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn)


# Append only: each function moves the schema one version up, inside one transaction.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1]
SCHEMA_VERSION = len(MIGRATIONS)


def _engine_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = _engine_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # LIKE 'prefix%' can then use the indexes, and matches as PostgreSQL does
            cur.execute("PRAGMA case_sensitive_like=ON")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except (SQLAlchemyError, ImportError) as exc:
        raise CatalogError(f"cannot use catalog {redact(url)}: {exc}") from exc


def migrate(engine: Engine) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found before."""
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
        raise CatalogError(
            f"cannot open the catalog {redact(str(engine.url))}: {exc.orig}"
        ) from exc


class Database:
    """One engine per catalog URL; sessions are short and used by vdir only."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        migrate(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()
