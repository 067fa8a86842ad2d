"""Results as JSON (benchmarks/results/) and as tables in docs/benchmarks.md.

The doc is regenerated in place: the machine block and each group's table sit between
`<!-- benchmarks:… -->` markers and are replaced; everything else (the intro, the "Why"
section) is hand-written and kept. A run of some groups (`--only`) leaves the other tables
as they were; each table says when it was measured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    REGISTRY,
    Case,
    Column,
    Group,
    Row,
    Sample,
    Series,
    ordered_cases,
)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class CaseResult:
    case: Case
    rows: list[Row] = field(default_factory=list)
    seconds: float = 0.0
    load_before: float = 0.0  # 1-minute load average when the case started
    error: str | None = None
    skipped: str | None = None
    measured: str = ""  # start of the run that measured it, "YYYY-MM-DD HH:MM UTC"
    quick: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.case.name,
            "group": self.case.group.key,
            "help": self.case.help,
            "seconds": round(self.seconds, 2),
            "load_before": round(self.load_before, 2),
            "error": self.error,
            "skipped": self.skipped,
            "measured": self.measured,
            "quick": self.quick,
            "rows": [r.to_json() for r in self.rows],
        }


def _series(d: dict[str, Any] | None) -> Series | None:
    if not d:
        return None
    return Series(d["command"], [Sample(**s) for s in d["samples"]])


def case_result(d: dict[str, Any], measured: str = "", quick: bool = False) -> CaseResult | None:
    """A CaseResult from its JSON; None when the case is no longer registered."""
    if d["name"] not in REGISTRY:
        return None
    rows = [
        Row(
            r["case"],
            _series(r["cdir"]),
            _series(r["rclone"]),
            r["notes"],
            r["error"],
            r.get("values") or {},
            r.get("kind", "row"),
        )
        for r in d["rows"]
    ]
    return CaseResult(
        REGISTRY[d["name"]],
        rows,
        d["seconds"],
        d["load_before"],
        d["error"],
        d["skipped"],
        d.get("measured") or measured,
        d.get("quick", quick),
    )


@dataclass
class RunInfo:
    started: str  # UTC, ISO 8601
    quick: bool
    repeats: int
    machine: dict[str, str]
    argv: list[str]


def _secs(x: float) -> str:
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


def seconds_cell(s: Series | None) -> str:
    """Median seconds, the min in brackets when there were several runs; "-" for none."""
    if not s or not s.samples:
        return "-"
    if len(s.samples) == 1:
        return _secs(s.median)
    return f"{_secs(s.median)} ({_secs(s.min)})"


def value_cell(key: str, fmt: str = "{}") -> Callable[[Row], str]:
    """A column showing `row.values[key]` formatted with `fmt`; "-" when the row has none."""

    def cell(row: Row) -> str:
        value = row.values.get(key)
        return "-" if value is None else fmt.format(value)

    return cell


def _ratio(row: Row) -> str:
    return "-" if row.ratio is None else f"{row.ratio:.2f}"


STANDARD_COLUMNS = (
    Column("cdir seconds", lambda row: seconds_cell(row.cdir)),
    Column("rclone seconds", lambda row: seconds_cell(row.rclone)),
    Column("ratio cdir/rclone", _ratio),
)


def _esc(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _notes(row: Row) -> str:
    notes = "; ".join(n for n in row.notes if n)
    return f"failed: {row.error}; {notes}" if row.error else notes


def _table(group: Group, results: list[CaseResult]) -> list[str]:
    """The group's table, then the list of its "note" rows (if any) under it."""
    columns = group.columns or STANDARD_COLUMNS
    out = [
        "| " + " | ".join([group.first, *(c.header for c in columns), "notes"]) + " |",
        "|" + "|".join(["---", *("--:" if c.right else "---" for c in columns), "---"]) + "|",
    ]
    listed: list[str] = []
    for res in results:
        if res.skipped or res.error:
            status = f"not run: {res.skipped}" if res.skipped else f"failed: {res.error}"
            dashes = " | ".join("-" for _ in columns)
            out.append(f"| {_esc(res.case.help)} | {dashes} | {_esc(status)} |")
            continue
        for row in res.rows:
            if row.kind == "note":
                listed.append(
                    f"- {_esc(row.case)}" + (f": {_esc(_notes(row))}" if row.notes else "")
                )
                continue
            cells = " | ".join(_esc(c.cell(row)) for c in columns)
            out.append(f"| {_esc(row.case)} | {cells} | {_esc(_notes(row))} |")
    return [*out, "", *listed] if listed else out


def group_block(group: Group, results: list[CaseResult]) -> str:
    loads = ", ".join(f"{r.load_before:.1f}" for r in results)
    counts = {
        len(s.samples)
        for r in results
        for row in r.rows
        for s in (row.cdir, row.rclone)
        if s and s.samples
    }
    n = "/".join(str(c) for c in sorted(counts)) or "0"
    reps = "1 run" if counts == {1} else f"median of {n} runs"
    reps += " (min in brackets)" if group.shows_min and counts != {1} else ""
    reps += " (--quick)" if any(r.quick for r in results) else ""
    times = list(dict.fromkeys(r.measured for r in results if r.measured))
    when = (
        times[0]
        if len(times) == 1
        else ", ".join(f"{r.case.name} {r.measured or '?'}" for r in results)
        if times
        else "?"
    )
    # the cases' results ride along, invisible, so a later `--only` run of one case can redraw
    # the table with the others' last figures instead of dropping them
    data = json.dumps([r.to_json() for r in results], separators=(",", ":"), ensure_ascii=False)
    data = data.replace("-->", "--\\u003e")  # a JSON string escape; "-->" would end the comment
    lines = [
        f"## {group.title[0].upper()}{group.title[1:]}",
        "",
        group.about,
        "",
        *_table(group, results),
        "",
        f"_Measured {when}, {reps}; 1-minute load average when each case started: {loads}._",
        f"<!-- benchmarks:data {data} -->",
    ]
    return "\n".join(lines)


def machine_block(info: RunInfo) -> str:
    m = info.machine
    return "\n".join(
        [
            "## Machine and method",
            "",
            f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['ram']} RAM, Linux {m['kernel']}; "
            f"Python {m['python']}, {m['rclone']}, {m['cdir']}. **A shared 2-core machine**: "
            "other engineers ran tests at the same time, so absolute figures are noisy; the "
            "ratios, taken in the same run with both tools alternating, are the figures to read.",
            f"- Last run: {info.started} (`{' '.join(info.argv)}`).",
            "- Every timed command is a real subprocess: the `cdir` CLI as a user runs it (Python "
            "start-up included) and the rclone binary. Wall time from spawn to exit, peak RSS and "
            "CPU time of that process alone, read with `os.wait4` by a tiny launcher "
            "(`benchmarks/_launch.py`): Linux keeps a process's peak RSS across `execve`, so a "
            "command spawned straight from the runner would report the runner's peak.",
            "- Same parallelism: `cdir … --parallel 4` against `rclone … --transfers 4 "
            "--checkers 4`. Each repetition uses a fresh destination (and for cdir a fresh "
            "CDIR_HOME: catalog and vault); the two tools alternate which goes first; "
            "`os.sync()` runs (untimed) before each timed command so one command's writeback is "
            "not billed to the next. Sources are random bytes made once per case, so both tools "
            "read them from the page cache.",
            "- Each copy is checked afterwards with `rclone size` (file count and bytes); a re-run "
            "must leave every destination file untouched (same inode, mtime, ctime).",
            "- Seconds: median (min) of the repetitions; the ratio is median/median — lower is "
            "better, below 1 cdir is faster.",
        ]
    )


def _marked(key: str, body: str) -> str:
    return f"<!-- benchmarks:{key}:begin -->\n{body}\n<!-- benchmarks:{key}:end -->"


def _block_re(key: str) -> re.Pattern[str]:
    k = re.escape(key)
    return re.compile(rf"<!-- benchmarks:{k}:begin -->\n.*?\n<!-- benchmarks:{k}:end -->", re.S)


SKELETON = """# Benchmarks

How fast the `cdir` CLI is next to rclone doing the same job on the same machine, in the same
run. Regenerate everything with `.venv/bin/python -m benchmarks.run` from the repository root
(add `--quick` for one repetition, `--only NAME` for one case or group, `--list` for the
names). Raw samples go to `benchmarks/results/<UTC time>.json` (not committed).

{machine}

## Why

Profiles of the cases where cdir is slower go here.
"""


def update_doc(
    results: list[CaseResult], info: RunInfo, group_order: list[str], doc: Path = DOC
) -> None:
    text = doc.read_text() if doc.exists() else SKELETON.format(machine=_marked("machine", ""))
    text = _replace_or_insert(text, "machine", machine_block(info), None)
    by_group: dict[str, list[CaseResult]] = {}
    for r in results:
        by_group.setdefault(r.case.group.key, []).append(r)
    rank = {c.name: i for i, c in enumerate(ordered_cases())}
    for key in group_order:
        if key not in by_group:
            continue
        group = by_group[key][0].case.group
        fresh = {r.case.name for r in by_group[key]}
        kept = [r for r in _previous(text, key) if r.case.name not in fresh]
        merged = sorted([*kept, *by_group[key]], key=lambda r: rank.get(r.case.name, 0))
        block = group_block(group, merged)
        # a new group goes after the last table of a group listed before it
        before = [f"group:{k}" for k in group_order[: group_order.index(key)]]
        text = _replace_or_insert(text, f"group:{key}", block, before)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def _previous(text: str, key: str) -> list[CaseResult]:
    """The case results stored in the doc's current table for group `key`, if any."""
    m = _block_re(f"group:{key}").search(text)
    data = re.search(r"<!-- benchmarks:data (.*) -->", m.group(0)) if m else None
    if not data:
        return []
    try:
        found = [case_result(d) for d in json.loads(data.group(1))]
    except (ValueError, KeyError, TypeError):
        return []  # hand-edited or from an older format: just redraw what this run has
    return [r for r in found if r is not None and r.case.group.key == key]


def _replace_or_insert(text: str, key: str, body: str, after_keys: list[str] | None) -> str:
    new = _marked(key, body)
    pat = _block_re(key)
    if pat.search(text):
        return pat.sub(lambda _: new, text, count=1)
    anchor_end = -1
    for k in ["machine", *(after_keys or [])]:
        m = _block_re(k).search(text)
        if m:
            anchor_end = max(anchor_end, m.end())
    if anchor_end < 0:
        return text.rstrip("\n") + "\n\n" + new + "\n"
    return text[:anchor_end] + "\n\n" + new + text[anchor_end:]


def load_results(path: Path) -> tuple[list[CaseResult], RunInfo]:
    """A results JSON back into objects, to re-render the doc without re-running
    (`--render`). Cases no longer registered are dropped."""
    data = json.loads(path.read_text())
    started = datetime.fromisoformat(data["started"]).strftime("%Y-%m-%d %H:%M UTC")
    found = [case_result(c, started, data["quick"]) for c in data["cases"]]
    info = RunInfo(started, data["quick"], data["repeats"], data["machine"], data["argv"])
    return [r for r in found if r is not None], info
