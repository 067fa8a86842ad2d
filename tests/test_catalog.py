"""The catalog on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from cdir.catalog import Database, Entry, Provider, Replica
from cdir.catalog.db import SCHEMA_VERSION, migrate
from cdir.catalog.models import SchemaVersion
from cdir.config import redact
from cdir.errors import CatalogError


def test_schema_is_versioned_and_reopening_is_idempotent(catalog_url: str) -> None:
    db = Database(catalog_url)
    assert migrate(db.engine) == SCHEMA_VERSION  # already current: nothing applied
    with db.session() as s:
        versions = s.exec(select(SchemaVersion.version)).all()
    assert list(versions) == list(range(1, SCHEMA_VERSION + 1))
    names = set(inspect(db.engine).get_table_names())
    assert {"provider", "entry", "replica", "job", "event", "schema_version"} <= names
    db.close()


def test_a_newer_schema_is_refused(catalog_url: str) -> None:
    db = Database(catalog_url)
    with db.session() as s:
        s.add(SchemaVersion(version=SCHEMA_VERSION + 1))
    with pytest.raises(CatalogError, match="newer than this cdir"):
        migrate(db.engine)
    db.close()


def test_indexes_for_ls_and_search(catalog_url: str) -> None:
    db = Database(catalog_url)
    idx = {i["name"]: i["column_names"] for i in inspect(db.engine).get_indexes("entry")}
    assert idx["ix_entry_dirname"] == ["dirname"]
    assert idx["ix_entry_basename"] == ["basename"]
    uniques = inspect(db.engine).get_unique_constraints("entry")
    assert any(u["column_names"] == ["dirname", "basename"] for u in uniques) or any(
        i.get("unique") and i["column_names"] == ["dirname", "basename"]
        for i in inspect(db.engine).get_indexes("entry")
    )
    db.close()


def test_one_entry_per_path_and_one_replica_per_provider(catalog_url: str) -> None:
    db = Database(catalog_url)
    with db.session() as s:
        p = Provider(name="laptop", kind="local", root="/x", options={"a": 1})
        e = Entry(dirname="/", basename="f.txt", kind="file", size=3, mtime_ns=2**62)
        s.add_all([p, e])
        s.flush()
        s.add(Replica(entry_id=e.id, provider_id=p.id, remote_path="f.txt", state="current"))
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Entry(dirname="/", basename="f.txt", kind="file"))
    with pytest.raises(IntegrityError), db.session() as s:
        e = s.exec(select(Entry)).one()
        s.add(Replica(entry_id=e.id, provider_id=1, remote_path="other"))
    with db.session() as s:
        e = s.exec(select(Entry)).one()
        assert e.mtime_ns == 2**62  # 64-bit nanoseconds survive
        assert s.exec(select(Provider)).one().options == {"a": 1}
    db.close()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000
    db.close()


def test_an_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(
        CatalogError, match=r"cannot open the catalog postgresql://u:\*\*\*@127.0.0.1:1/x"
    ):
        Database("postgresql://u:secret@127.0.0.1:1/x?connect_timeout=2")


def test_redact_hides_the_password() -> None:
    assert redact("postgresql://me:pw@host/db") == "postgresql://me:***@host/db"
    assert redact("sqlite:////tmp/c.db") == "sqlite:////tmp/c.db"
