"""gc: old tombstones whose replicas are all deleted are purged, journal events rotated, on
SQLite and PostgreSQL; what still matters (live entries, young tombstones, tombstones whose
delete failed, and their parents) stays. Rows are aged by updating their times directly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, inspect, select, text, update

from cdir.catalog import Database, maintenance
from cdir.catalog.db import SCHEMA_VERSION
from cdir.catalog.maintenance import EVENT
from cdir.catalog.models import utcnow
from cdir.catalog.queries import ENTRY, REPLICA, path_of
from cdir.errors import Conflict
from cdir.schema import GcReport
from tests.conftest import make_tree

CHURN = {
    "proj/a.txt": "A",
    "proj/b/b.txt": "BB",
    "proj/b/c/c.txt": "CCC",
    "live/l.txt": "L",
    "keep/sub/x.txt": "X",
    "keep/sub/y.txt": "Y",
    "young/z.txt": "Z",
}


def age(db: Database, days: float = 100) -> None:
    """Make every tombstone and event `days` old."""
    then = utcnow() - timedelta(days=days)
    with db.transaction(write=True) as s:
        s.execute(update(ENTRY).where(ENTRY.c.deleted_at.is_not(None)).values(deleted_at=then))
        s.execute(update(EVENT).values(at=then))


def rows(db: Database) -> dict[str, tuple[bool, int]]:
    """path → (is a tombstone, replica rows) for every entry in the catalog."""
    n = select(func.count()).where(REPLICA.c.entry_id == ENTRY.c.id).scalar_subquery()
    q = select(ENTRY.c.dirname, ENTRY.c.basename, ENTRY.c.deleted_at, n.label("n"))
    with db.transaction() as s:
        return {path_of(r): (r.deleted_at is not None, r.n) for r in s.execute(q)}


def events(db: Database) -> int:
    with db.transaction() as s:
        return int(s.execute(select(func.count()).select_from(EVENT)).scalar_one())


def churn(v: Any, tmp_path: Path) -> None:
    """Put CHURN on laptop and archive; remove /proj (6 entries) and /keep (3), of which
    /keep/sub/x.txt stays on laptop (a delete that failed); age all that; then remove /young
    (2 young tombstones)."""
    src = make_tree(tmp_path / "src", CHURN)
    assert v.put([f"{src}/"], "/", recursive=True, progress=False).failed == 0
    v.rm(["/proj"], recursive=True, progress=False)
    stuck = tmp_path / "laptop/keep/sub/x.txt"
    stuck.unlink()
    stuck.mkdir()  # laptop cannot delete a file that became a directory
    assert v.rm(["/keep/sub/x.txt"], progress=False).failed == 1
    v.rm(["/keep"], recursive=True, progress=False)
    age(v.db)
    v.rm(["/young"], recursive=True, progress=False)


AFTER_GC = {
    "/live": (False, 0),
    "/live/l.txt": (False, 2),
    "/keep": (True, 0),  # kept: a tombstone below it still has a replica
    "/keep/sub": (True, 0),
    "/keep/sub/x.txt": (True, 1),  # its delete failed on laptop
    "/young": (True, 0),  # not old enough
    "/young/z.txt": (True, 0),
}


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run on `db` in the block (not BEGIN/COMMIT)."""
    seen: list[str] = []

    def record(_conn: Any, _cur: Any, stmt: str, *_: Any) -> None:
        if stmt.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            seen.append(stmt)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


# --- vdir ----------------------------------------------------------------------------------------
def test_gc_purges_old_tombstones_and_keeps_what_matters(vdir: Any, tmp_path: Path) -> None:
    churn(vdir, tmp_path)
    total = events(vdir.db)
    rep = vdir.gc()
    assert (rep.tombstones_purged, rep.tombstones_kept, rep.dry_run) == (7, 1, False)
    assert rep.events_deleted == total - 1  # all but the young rm's
    assert rows(vdir.db) == AFTER_GC
    assert events(vdir.db) == 2  # the young rm and gc's own
    with vdir.db.transaction() as s:
        last = s.execute(select(EVENT).order_by(EVENT.c.id.desc())).first()
    assert (last.action, last.detail) == ("gc", {"tombstones": 7, "events": total - 1, "kept": 1})
    # nothing left to do; the live file is untouched and the purged path is free again
    again = vdir.gc()
    assert (again.tombstones_purged, again.events_deleted, again.tombstones_kept) == (0, 0, 1)
    assert vdir.stat("/live/l.txt").generation == 1
    (tmp_path / "new.txt").write_text("new")
    vdir.put([str(tmp_path / "new.txt")], "/proj/a.txt", progress=False)
    assert vdir.stat("/proj/a.txt").generation == 1
    assert [e.path for e in vdir.ls("/", recursive=True).entries] == [
        "/live",
        "/proj",
        "/live/l.txt",
        "/proj/a.txt",
    ]


def test_dry_run_counts_and_changes_nothing(vdir: Any, tmp_path: Path) -> None:
    churn(vdir, tmp_path)
    before, total = rows(vdir.db), events(vdir.db)
    dry = vdir.gc(dry_run=True)
    assert (dry.tombstones_purged, dry.events_deleted, dry.tombstones_kept) == (7, total - 1, 1)
    assert dry.dry_run
    assert (rows(vdir.db), events(vdir.db)) == (before, total)
    assert vdir.gc_if_due() is not None  # a dry run is not a gc: one is still due
    assert rows(vdir.db) == AFTER_GC


def test_retention_from_the_settings_and_the_arguments(vdir: Any, tmp_path: Path) -> None:
    churn(vdir, tmp_path)
    vdir.settings.tombstone_days, vdir.settings.event_days = 200, 200
    rep = vdir.gc()
    assert (rep.tombstones_purged, rep.events_deleted, rep.tombstones_kept) == (0, 0, 0)
    rep = vdir.gc(older_than=0)  # every tombstone is old enough, even /young's
    assert (rep.tombstones_purged, rep.events_deleted, rep.tombstones_kept) == (9, 0, 1)
    assert set(rows(vdir.db)) == {"/live", "/live/l.txt", "/keep", "/keep/sub", "/keep/sub/x.txt"}
    total = events(vdir.db)  # 8 (the older ones are 100 days old) and gc's own
    assert vdir.gc(events_older_than=0).events_deleted == total
    assert events(vdir.db) == 1  # the last gc's


def test_a_tombstoned_directory_with_a_live_entry_below_is_kept(vdir: Any, tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"d/e/f.txt": "F", "d/g.txt": "G"})
    vdir.put([f"{src}/d"], "/", recursive=True, progress=False)
    vdir.rm(["/d"], recursive=True, progress=False)
    age(vdir.db)
    with vdir.db.transaction(write=True) as s:  # a state no command makes, but gc must not orphan
        s.execute(update(ENTRY).where(ENTRY.c.basename == "f.txt").values(deleted_at=None))
    rep = vdir.gc()
    assert (rep.tombstones_purged, rep.tombstones_kept) == (1, 0)  # /d/g.txt only
    assert rows(vdir.db) == {"/d": (True, 0), "/d/e": (True, 0), "/d/e/f.txt": (False, 0)}


def test_gc_is_set_based(vdir: Any, tmp_path: Path) -> None:
    """The number of statements does not grow with the number of tombstones."""
    vdir.gc()  # the first one also creates gc's row in catalog_state
    counts = []
    for n in (3, 120):
        src = make_tree(tmp_path / f"src{n}", {f"t{n}/d{i % 7}/f{i}.txt": "x" for i in range(n)})
        vdir.put([f"{src}/t{n}"], "/", recursive=True, progress=False)
        vdir.rm([f"/t{n}"], recursive=True, progress=False)
        age(vdir.db)
        with statements(vdir.db) as seen:
            assert vdir.gc().tombstones_purged == n + min(n, 7) + 1
        counts.append(len(seen))
    assert counts[0] == counts[1] <= 10


def test_gc_if_due_runs_at_most_once_a_day_and_costs_one_read_otherwise(
    vdir: Any, tmp_path: Path
) -> None:
    assert vdir.gc_if_due() is not None  # never ran
    churn(vdir, tmp_path)
    with statements(vdir.db) as seen:
        assert vdir.gc_if_due() is None  # ran a moment ago
    assert len(seen) == 1 and "catalog_state" in seen[0]
    assert rows(vdir.db) != AFTER_GC
    with vdir.db.transaction(write=True) as s:
        then = utcnow() - timedelta(hours=25)
        maintenance.set_state(s, maintenance.LAST_GC, then.isoformat())
    rep = vdir.gc_if_due()
    assert rep is not None and rep.tombstones_purged == 7
    assert rows(vdir.db) == AFTER_GC
    assert vdir.gc_if_due() is None


def test_retention_settings_come_from_the_environment(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdir.config import Settings

    assert (Settings().tombstone_days, Settings().event_days) == (90, 90)
    monkeypatch.setenv("CDIR_TOMBSTONE_DAYS", "30")
    monkeypatch.setenv("CDIR_EVENT_DAYS", "7.5")
    assert (Settings().tombstone_days, Settings().event_days) == (30, 7.5)
    rows = json.loads(cli("config", "list", "-o", "json").out)
    assert {r["key"]: r["value"] for r in rows if r["key"].endswith("_days")} == {
        "tombstone_days": "30",
        "event_days": "7.5",
    }
    monkeypatch.setenv("CDIR_EVENT_DAYS", "-1")
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Settings()


def test_a_version_1_catalog_gets_the_gc_table_and_index(catalog_url: str) -> None:
    db = Database(catalog_url)
    with db.engine.begin() as conn:  # back to what version 1 made
        conn.execute(text("DROP TABLE lease"))
        conn.execute(text("DROP TABLE catalog_state"))
        conn.execute(text("DROP INDEX ix_entry_tombstone"))
        conn.execute(text("DELETE FROM schema_version WHERE version > 1"))
    db.close()
    db = Database(catalog_url)
    assert SCHEMA_VERSION == 5
    insp = inspect(db.engine)
    assert {"catalog_state", "lease"} <= set(insp.get_table_names())
    assert "ix_entry_tombstone" in {i["name"] for i in insp.get_indexes("entry")}
    with db.transaction() as s:
        assert s.execute(text("SELECT max(version) FROM schema_version")).scalar() == 5
    db.close()


# --- mv and tombstones in its way ----------------------------------------------------------------
def _failed_delete_at_old(v: Any, tmp_path: Path) -> None:
    """/old.txt removed, but laptop failed to delete it; /new.txt on archive only."""
    (tmp_path / "old.txt").write_text("old")
    (tmp_path / "new.txt").write_text("new")
    v.put([str(tmp_path / "old.txt")], "/old.txt", progress=False)
    v.put([str(tmp_path / "new.txt")], "/new.txt", to=["archive"], progress=False)
    stuck = tmp_path / "laptop/old.txt"
    stuck.unlink()
    stuck.mkdir()
    assert v.rm(["/old.txt"], progress=False).failed == 1


def test_undeleted_names_the_tombstones_whose_replicas_remain(vdir: Any, tmp_path: Path) -> None:
    _failed_delete_at_old(vdir, tmp_path)
    with vdir.db.transaction() as s:
        assert maintenance.undeleted(s, "/old.txt") == ["/old.txt"]
        assert maintenance.undeleted(s, "/") == ["/old.txt"]
        assert maintenance.undeleted(s, "/new.txt") == []


def test_mv_onto_a_failed_delete_does_not_forget_it(vdir: Any, tmp_path: Path) -> None:
    _failed_delete_at_old(vdir, tmp_path)
    with pytest.raises(
        Conflict,
        match=r"^cannot move onto /old.txt: /old.txt was removed but is not deleted on every provider yet \(finish with `cdir rm /old.txt`\)$",
    ):
        vdir.mv("/new.txt", "/old.txt", progress=False)
    with vdir.db.transaction() as s:
        assert maintenance.undeleted(s, "/old.txt") == ["/old.txt"]  # still tracked


# --- CLI -----------------------------------------------------------------------------------------
def test_the_gc_report_line() -> None:
    from cdir.cli.upkeep import _gc_line

    now = utcnow()
    rep = GcReport(
        tombstones_purged=27230,
        events_deleted=48000,
        tombstones_kept=12,
        tombstones_before=now,
        events_before=now,
    )
    assert _gc_line(rep) == (
        "gc: purged 27,230 tombstone(s) and 48,000 event(s); "
        "kept 12 tombstone(s) whose replicas are not all deleted"
    )
    rep.tombstones_kept = 0
    assert _gc_line(rep) == "gc: purged 27,230 tombstone(s) and 48,000 event(s)"


def test_cdir_gc(cli: Any, catalog_url: str, tmp_path: Path) -> None:
    def run(*args: str) -> Any:
        r = cli(*args, "--catalog", catalog_url)
        assert r.code == 0, r.err
        return r

    for name in ("laptop", "archive"):
        run("provider", "add", name, "--kind", "local", "--root", str(tmp_path / name))
    db = Database(catalog_url)
    try:
        src = make_tree(tmp_path / "src", CHURN)
        run("put", "-r", f"{src}/", "/")
        run("rm", "-r", "/proj")
        stuck = tmp_path / "laptop/keep/sub/x.txt"
        stuck.unlink()
        stuck.mkdir()
        assert cli("rm", "/keep/sub/x.txt", "--catalog", catalog_url).code == 1
        run("rm", "-r", "/keep")
        age(db)
        run("rm", "-r", "/young")
        old = events(db) - 1
        assert run("gc", "--dry-run").out == (
            f"gc (dry run): would purge 7 tombstone(s) and {old} event(s); "
            "would keep 1 tombstone(s) whose replicas are not all deleted\n"
        )
        assert run("gc").out == (
            f"gc: purged 7 tombstone(s) and {old} event(s); "
            "kept 1 tombstone(s) whose replicas are not all deleted\n"
        )
        assert rows(db) == AFTER_GC
        out = json.loads(run("gc", "-o", "json").out)
        assert (out["tombstones_purged"], out["events_deleted"], out["tombstones_kept"]) == (
            0,
            0,
            1,
        )
        assert run("gc", "--older-than", "0").out == (
            "gc: purged 2 tombstone(s) and 0 event(s); "
            "kept 1 tombstone(s) whose replicas are not all deleted\n"
        )
        assert run("gc", "-q").out == ""
        bad = cli("gc", "--older-than", "-1", "--catalog", catalog_url)
        assert bad.code == 2 and "Invalid value for '--older-than'" in bad.err
    finally:
        db.close()


def test_write_commands_run_gc_once_a_day(cli: Any, home: Path, tmp_path: Path) -> None:
    def run(*args: str) -> Any:
        r = cli(*args)
        assert r.code == 0, r.err
        return r

    run("provider", "add", "laptop", "--kind", "local", "--root", str(tmp_path / "laptop"))
    src = make_tree(tmp_path / "src", {"a/f.txt": "F", "b/g.txt": "G"})
    run("put", "-r", f"{src}/a", "/")  # the first write command: gc ran (nothing to do)
    run("rm", "-r", "/a")
    db = Database(f"sqlite:///{home / 'catalog.db'}")
    try:
        age(db)
        run("put", "-r", f"{src}/b", "/")  # gc ran a moment ago: not due
        assert rows(db)["/a/f.txt"] == (True, 0)
        with db.transaction(write=True) as s:
            then = utcnow() - timedelta(days=2)
            maintenance.set_state(s, maintenance.LAST_GC, then.isoformat())
        r = run("put", "-r", f"{src}/b", "/")  # due: the put is followed by a gc pass
        assert r.out.startswith("put: 0 file(s)") and r.err == ""
        assert set(rows(db)) == {"/b", "/b/g.txt"}
    finally:
        db.close()


def test_gc_after_a_write_command_does_not_fail_it(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cdir.errors import CatalogError
    from cdir.vdir.gc import GcOps

    def busy(self: Any) -> None:
        raise CatalogError("the catalog is busy: try again", retryable=True)

    monkeypatch.setattr(GcOps, "gc_if_due", busy)
    cli("provider", "add", "laptop", "--kind", "local", "--root", str(tmp_path / "laptop"))
    (tmp_path / "f").write_text("f")
    r = cli("put", str(tmp_path / "f"), "/f")
    assert r.code == 0
    assert r.err == "cdir: warning: gc skipped: the catalog is busy: try again\n"
