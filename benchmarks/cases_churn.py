"""Catalog growth under churn: an afternoon of put / mv / rm -r in one catalog, then the same put
timed in that catalog and in a fresh one (and after `cdir gc`, where cdir has it)."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.data import make_small_files
from benchmarks.harness import (
    BenchError,
    Column,
    Context,
    Group,
    KiB,
    Row,
    Series,
    case,
    human_bytes,
    removed_after,
    tree_stats,
    usage_note,
)
from benchmarks.puts import PARALLEL, check_copy, record
from benchmarks.report import seconds_cell, value_cell

FILES, SIZE = 3000, 4 * KiB
SEED = 3000
ROUNDS = 10
PROVIDER = "churn"
# what is run as the garbage collection: the churn is minutes old, and the default retention
# (90 days) would keep all of it, so gc is told to take every tombstone and event it may
GC = ("gc", "--older-than", "0", "--events-older-than", "0")


def _bytes_cell(row: Row) -> str:
    n = row.values.get("bytes")
    return "-" if n is None else human_bytes(n)


CHURN = Group(
    "catalog-churn",
    "catalog growth under churn",
    f"An afternoon's use of one CDIR_HOME with one local provider, untimed: {ROUNDS} rounds of "
    f"`cdir put SRC/ /churn/rNN -r` ({FILES:,} x 4 KiB in 20 dirs), `cdir mv /churn/rNN/dir00 "
    "/churn/moved-rNN` (a quarter of the tree), `cdir rm -r /churn/rNN`, the same put again "
    "and `cdir rm -r /churn/rNN /churn/moved-rNN`. Then the same tree is put into a path never "
    f"used (`cdir put SRC/ /put-N -r --parallel {PARALLEL}`, timed, checked with `rclone "
    "size`) in that churned catalog and in a fresh one (a new CDIR_HOME each time), in "
    "turns; the churned catalog is restored from a copy before each of its puts, so every "
    "repetition starts from the same state. When `cdir gc --help` works, `cdir gc` runs on a "
    "copy of the churned CDIR_HOME and the put is timed there too. The catalog columns are "
    "read with sqlite3 just before the timed put: the database file (+ its WAL), entries "
    "alive, tombstones (entries with `deleted_at`), replicas and journal events. rclone keeps "
    "no catalog, so there is no rclone column: the ratio is to the fresh catalog.",
    rank=35,
    first="catalog",
    columns=(
        Column("put seconds", lambda row: seconds_cell(row.cdir)),
        Column("ratio to fresh", value_cell("ratio", "{:.2f}")),
        Column("catalog file", _bytes_cell),
        Column("live entries", value_cell("live", "{:,}")),
        Column("tombstones", value_cell("tombstones", "{:,}")),
        Column("replicas", value_cell("replicas", "{:,}")),
        Column("events", value_cell("events", "{:,}")),
    ),
)


def catalog_stats(db: Path) -> dict[str, Any]:
    """Size and row counts of a SQLite catalog that no process is using."""
    size = sum(p.stat().st_size for p in _db_files(db))
    con = sqlite3.connect(db)
    try:
        live, tombstones = con.execute(
            "SELECT count(*) - count(deleted_at), count(deleted_at) FROM entry"
        ).fetchone()
        replicas = con.execute("SELECT count(*) FROM replica").fetchone()[0]
        events = con.execute("SELECT count(*) FROM event").fetchone()[0]
        jobs = con.execute("SELECT count(*) FROM job").fetchone()[0]
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        free = con.execute("PRAGMA freelist_count").fetchone()[0]
    finally:
        con.close()
    return {
        "bytes": size,
        "live": live,
        "tombstones": tombstones,
        "replicas": replicas,
        "events": events,
        "jobs": jobs,
        "pages": pages,
        "free_pages": free,
    }


def _db_files(db: Path) -> list[Path]:
    return [p for p in (db, db.with_name(db.name + "-wal")) if p.exists()]


@dataclass
class Catalog:
    """A CDIR_HOME whose catalog is put back to a saved copy before each timed put."""

    home: Path
    saved: Path

    @property
    def db(self) -> Path:
        return self.home / "catalog.db"

    def save(self) -> None:
        self.saved.mkdir(parents=True, exist_ok=True)
        for p in _db_files(self.db):
            shutil.copy2(p, self.saved / p.name)

    def restore(self) -> None:
        for suffix in ("-wal", "-shm"):
            self.db.with_name(self.db.name + suffix).unlink(missing_ok=True)
        for p in self.saved.iterdir():
            shutil.copy2(p, self.home / p.name)


def _churn(ctx: Context, src: Path, env: dict[str, str]) -> float:
    """The untimed afternoon: ROUNDS rounds of put, mv, rm -r, put, rm -r. Its seconds."""
    t0 = time.perf_counter()
    put = ("-r", "--to", PROVIDER, "--parallel", PARALLEL, "-q")
    for r in range(ROUNDS):
        ctx.log(f"  churn: round {r + 1}/{ROUNDS}")
        tree, moved = f"/churn/r{r:02d}", f"/churn/moved-r{r:02d}"
        for args in (
            ("put", f"{src}/", tree, *put),
            ("mv", f"{tree}/dir00", moved, "-q"),
            ("rm", "-r", tree, "-q"),
            ("put", f"{src}/", tree, *put),
            ("rm", "-r", tree, moved, "-q"),
        ):
            ctx.setup(ctx.cdir_cmd(*args), env)
    return time.perf_counter() - t0


def _has_gc(ctx: Context, env: dict[str, str]) -> bool:
    try:
        ctx.setup(ctx.cdir_cmd(GC[0], "--help"), env)
    except BenchError:
        return False
    return True


def _rotate(i: int, fns: list[Callable[[], None]]) -> None:
    """Each repetition starts with the next one: none always runs on a warmer machine."""
    k = i % len(fns)
    for fn in fns[k:] + fns[:k]:
        fn()


@case(
    "catalog-churn", CHURN, f"put {FILES:,} files in a fresh vs a churned catalog ({ROUNDS} rounds)"
)
def catalog_churn(ctx: Context) -> list[Row]:
    src = ctx.scratch("src")
    churned_root = ctx.scratch("churn-dst")
    churned = Catalog(ctx.scratch("churn-home"), ctx.scratch("churn-saved"))
    gced = Catalog(ctx.scratch("gc-home"), ctx.scratch("gc-saved"))
    with removed_after(src, churned_root, churned.home, churned.saved, gced.home, gced.saved):
        files, size = make_small_files(src, FILES, SIZE, seed=SEED)
        label = f"{FILES:,} x 4 KiB"
        env = ctx.cdir_env(churned.home)
        ctx.setup(
            ctx.cdir_cmd("provider", "add", PROVIDER, "-k", "local", "--root", str(churned_root)),
            env,
        )
        churn_s = _churn(ctx, src, env)
        left, _ = tree_stats(churned_root)
        if left:
            raise BenchError(f"the churn left {left} files on the provider; rm -r should not")
        churned.save()
        fresh_row = Row("fresh: a new CDIR_HOME, one local provider", Series([]))
        churn_row = Row(
            f"churned: {ROUNDS} rounds of put, mv, rm -r, put, rm -r of the {label} tree",
            Series([]),
            values=catalog_stats(churned.db),
        )
        churn_row.notes.append(
            f"the churn: {ROUNDS * 2 * FILES:,} files put in {ROUNDS * 5} commands, "
            f"{churn_s:.0f} s (untimed)"
        )
        gc_row = Row("churned, then `cdir gc`", Series([]))
        runs: list[Callable[[], None]] = []
        n = 0

        def put(row: Row, env: dict[str, str], root: Path, who: str) -> None:
            nonlocal n
            n += 1
            cmd = ctx.cdir_cmd(
                "put", f"{src}/", f"/put-{n}", "-r", "--to", PROVIDER, "--parallel", PARALLEL
            )
            assert row.cdir is not None
            record(row.cdir, ctx, cmd, ctx.measure(cmd, env).sample)
            check_copy(ctx, str(root / f"put-{n}"), ctx.rclone_env(), files, size, who)
            shutil.rmtree(root / f"put-{n}")  # disk stays bounded; the catalog is reset anyway

        def run_fresh() -> None:
            home, root = ctx.scratch("fresh-home"), ctx.scratch("fresh-dst")
            with removed_after(home, root):
                fenv = ctx.cdir_env(home)
                add = ("provider", "add", PROVIDER, "-k", "local", "--root", str(root))
                ctx.setup(ctx.cdir_cmd(*add), fenv)
                if not fresh_row.values:
                    fresh_row.values = catalog_stats(home / "catalog.db")
                put(fresh_row, fenv, root, "cdir put (fresh catalog)")

        def run_churned() -> None:
            churned.restore()
            put(churn_row, env, churned_root, "cdir put (churned catalog)")

        runs += [run_fresh, run_churned]
        if _has_gc(ctx, env):
            shutil.rmtree(gced.home)
            shutil.copytree(churned.home, gced.home)
            genv = ctx.cdir_env(gced.home)
            try:
                gc = ctx.measure(ctx.cdir_cmd(*GC), genv)
            except BenchError as exc:
                gc_row.error = f"cdir {' '.join(GC)}: {str(exc).splitlines()[0]}"
            else:
                gced.save()
                gc_row.values = catalog_stats(gced.db)
                gc_row.notes.append(f"`cdir gc` took {gc.sample.seconds:.2f} s")

                def run_gced() -> None:
                    gced.restore()
                    put(gc_row, genv, churned_root, "cdir put (after cdir gc)")

                runs.append(run_gced)
        else:
            gc_row.cdir = None
            gc_row.notes.append("not run: this cdir has no `cdir gc` (`cdir gc --help` failed)")
        for i in range(ctx.repeats):
            ctx.log(f"  {label} into a fresh path: repetition {i + 1}/{ctx.repeats}")
            _rotate(i, runs)
        rows = [fresh_row, churn_row, gc_row]
        assert fresh_row.cdir is not None
        for row in rows:
            if row.cdir and row.cdir.samples:
                row.values["ratio"] = round(row.cdir.median / fresh_row.cdir.median, 3)
                row.notes.append(usage_note(row.cdir))
            if row.values.get("pages"):
                row.notes.append(
                    f"{row.values['pages']:,} pages, {row.values['free_pages']:,} free; "
                    f"{row.values['jobs']:,} jobs"
                )
        return rows
