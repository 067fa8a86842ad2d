"""The benchmark harness's own logic (no benchmark is run): import-time parsing, the catalog
counts and tables of their own shape in docs/benchmarks.md."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from benchmarks import run  # noqa: F401 - registers the cases
from benchmarks.cases_churn import CHURN, catalog_stats
from benchmarks.cases_startup import IMPORTS, import_rows, parse_importtime
from benchmarks.harness import REGISTRY, Row, Sample, Series
from benchmarks.report import CaseResult, case_result, group_block

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 |   _c
import time:       200 |        300 | pkg.sub
import time:        50 |        350 | pkg
import time:       400 |        400 |     leaf
import time:       100 |        500 |   app.inner
import time:        10 |        510 | app
some other line on stderr
"""


def test_importtime_lines_get_their_depth_and_parent() -> None:
    mods = {m.name: m for m in parse_importtime(IMPORTTIME)}
    assert list(mods) == ["_c", "pkg.sub", "pkg", "leaf", "app.inner", "app"]
    assert (mods["_c"].depth, mods["_c"].parent) == (1, "pkg.sub")
    assert (mods["pkg.sub"].depth, mods["pkg.sub"].parent) == (0, None)
    assert (mods["leaf"].depth, mods["leaf"].parent) == (2, "app.inner")
    assert (mods["app.inner"].parent, mods["app"].parent) == ("app", None)
    assert mods["app"].cumulative_us == 510


def test_import_rows_total_shares_and_package_split() -> None:
    parsed = parse_importtime(IMPORTTIME)
    rows = import_rows([parsed, parsed])
    total, *table = [r for r in rows if r.kind == "row"]
    assert total.values["ms"] == 1.16  # 300 + 350 + 510 us: the top-level imports
    by_name = {r.case: r for r in table}
    assert by_name["app"].values["share"] == round(510 / 1160, 4)
    assert by_name["leaf"].values["parent"] == "app.inner"  # a package, found where imported
    assert "app.inner" not in by_name  # neither top level, nor a package, nor watched
    split = next(r for r in rows if r.kind == "note" and "by package" in r.case).notes[0]
    # self time summed by first name, largest first: leaf 400 us, pkg 250, app 110, _c 100
    assert split == "leaf 0 ms (34%), pkg 0 ms (22%), app 0 ms (9%), _c 0 ms (9%)"
    heavy = next(r for r in rows if r.kind == "note" and "heavy" in r.case).notes[0]
    assert heavy.startswith("not imported: boto3")


def _result(name: str, rows: list[Row]) -> CaseResult:
    return CaseResult(REGISTRY[name], rows, measured="2026-01-01 00:00 UTC")


def test_a_group_of_its_own_shape_renders_its_columns_and_notes() -> None:
    rows = import_rows([parse_importtime(IMPORTTIME)])
    block = group_block(IMPORTS, [_result("startup-imports", rows)])
    assert "| module | imported by | cumulative ms | share of total | self ms | notes |" in block
    assert "|---|---|--:|--:|--:|---|" in block
    assert "| app | (top level) | 0.5 | 44.0% | 0.0 |  |" in block
    assert "\n- own code by package" in block
    assert "(min in brackets)" not in block


def test_values_and_note_rows_survive_the_docs_data_comment() -> None:
    s = Series(["cdir", "put"], [Sample(1.5, 1.0, 1000), Sample(1.0, 1.0, 1000)])
    rows = [Row("churned", s, values={"ratio": 1.25, "live": 3, "bytes": 2048})]
    rows.append(Row("a note", notes=["text"], kind="note"))
    back = case_result(_result("catalog-churn", rows).to_json())
    assert back is not None
    assert back.rows[0].values == {"ratio": 1.25, "live": 3, "bytes": 2048}
    assert back.rows[1].kind == "note"
    block = group_block(CHURN, [back])
    assert "| churned | 1.25 (1.00) | 1.25 | 2.0 KiB | 3 | - | - | - |" in block
    assert "(min in brackets)" in block


def test_standard_tables_keep_their_shape() -> None:
    s = Series(["x"], [Sample(2.0, 1.0, 1000)])
    block = group_block(
        REGISTRY["put-local-many"].group,
        [_result("put-local-many", [Row("put", s, Series(["y"], [Sample(1.0, 1.0, 1)]))])],
    )
    assert "| case | cdir seconds | rclone seconds | ratio cdir/rclone | notes |" in block
    assert "| put | 2.00 | 1.00 | 2.00 |  |" in block


def test_catalog_stats_counts_tombstones(tmp_path: Path) -> None:
    db = tmp_path / "catalog.db"
    con = sqlite3.connect(db)
    con.executescript(
        "CREATE TABLE entry (id INTEGER PRIMARY KEY, deleted_at TEXT);"
        "CREATE TABLE replica (id INTEGER PRIMARY KEY);"
        "CREATE TABLE event (id INTEGER PRIMARY KEY);"
        "CREATE TABLE job (id INTEGER PRIMARY KEY);"
        "INSERT INTO entry (deleted_at) VALUES (NULL), ('2026-01-01'), ('2026-01-02');"
        "INSERT INTO event DEFAULT VALUES;"
    )
    con.commit()
    con.close()
    got = catalog_stats(db)
    assert (got["live"], got["tombstones"], got["replicas"], got["events"]) == (1, 2, 0, 1)
    assert got["bytes"] == db.stat().st_size
