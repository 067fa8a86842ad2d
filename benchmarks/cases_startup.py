"""The CLI's cold start: light commands timed as processes, and where `cdir ls /` spends it."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.harness import (
    BenchError,
    Column,
    Context,
    Group,
    Row,
    Series,
    case,
    removed_after,
    timed,
    usage_note,
)
from benchmarks.report import value_cell

STARTUP = Group(
    "startup",
    "CLI cold start",
    "A fresh process each time, stdout to /dev/null, after one untimed warm-up run of each "
    "command: what every command pays before doing anything. `--help`, `--version` and `pwd` "
    "need no catalog; `ls /` opens one, empty (created by the warm-up) or tiny (two "
    "directories). The interpreter alone and `rclone version` are references.",
    rank=40,
)

IMPORTS = Group(
    "startup-imports",
    "where the start-up of `cdir ls /` goes",
    "`python -X importtime -m cdir ls /` on an empty catalog, after an untimed warm-up; each "
    "figure is the median over the runs. A module's cumulative time is its own import plus "
    "everything it imported first. Listed: the top-level imports (made by the interpreter and "
    "by cdir's code itself, including those done lazily inside a function) above 1 % of the "
    "total, and the heavy packages wherever they were first imported, with the module that "
    "imported them. A nested row is part of its parent's time, so the shares overlap; the total "
    "is the sum of the top-level imports, and the list under the table splits it by package "
    "(self time, which adds up). `-X importtime` itself slows imports a little.",
    rank=45,
    first="module",
    shows_min=False,
    columns=(
        Column("imported by", value_cell("parent"), right=False),
        Column("cumulative ms", value_cell("ms", "{:.1f}")),
        Column("share of total", value_cell("share", "{:.1%}")),
        Column("self ms", value_cell("self_ms", "{:.1f}")),
    ),
)

# shown wherever they are imported (when they are)
WATCHED = (
    "cdir.cli.main",
    "cdir.config",
    "cdir.vdir.facade",
    "cdir.catalog.db",
    "cdir.catalog.models",
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlmodel",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "typer",
    "click",
    "rich",
)
# `cdir ls /` should not import these (tests/test_startup.py); the list says which it did not
HEAVY = (
    "boto3",
    "botocore",
    "paramiko",
    "azure.storage.blob",
    "google.cloud.storage",
    "httpx",
    "rich",
    "fastapi",
)
TOP_LEVEL_SHARE = 0.01  # top-level imports below this share of the total are left out
PACKAGE_SHARE = 0.02  # so are packages (first-level names) imported deeper down
BY_PACKAGE = 8  # packages named in the self-time list; the rest is summed


@case(
    "startup",
    STARTUP,
    "cdir --help, --version, pwd and ls / (empty and tiny catalog), 10 times each",
)
def startup(ctx: Context) -> list[Row]:
    repeats = 1 if ctx.quick else 10
    empty = ctx.scratch("cdir-home-empty")
    tiny = ctx.scratch("cdir-home")
    with removed_after(empty, tiny):
        ctx.setup(ctx.cdir_cmd("mkdir", "/docs", "/photos"), ctx.cdir_env(tiny))
        plan: list[tuple[Row, list[str], dict[str, str], str]] = []
        for label, cmd, home, tool in (
            ("cdir --help", ctx.cdir_cmd("--help"), empty, "cdir"),
            ("cdir --version", ctx.cdir_cmd("--version"), empty, "cdir"),
            ("cdir pwd", ctx.cdir_cmd("pwd"), empty, "cdir"),
            ("cdir ls / (empty catalog)", ctx.cdir_cmd("ls", "/"), empty, "cdir"),
            ("cdir ls / (tiny catalog)", ctx.cdir_cmd("ls", "/"), tiny, "cdir"),
            (
                "reference: python -c pass (the interpreter alone)",
                [ctx.python, "-c", "pass"],
                empty,
                "cdir",
            ),
            ("reference: rclone version", ctx.rclone_cmd("version"), empty, "rclone"),
        ):
            row = Row(
                label,
                Series([]) if tool == "cdir" else None,
                Series([]) if tool == "rclone" else None,
            )
            env = ctx.cdir_env(home) if tool == "cdir" else ctx.rclone_env()
            plan.append((row, cmd, env, tool))
        for _row, cmd, e, _tool in plan:
            ctx.setup(cmd, e)  # untimed warm-up: imports and binaries in the page cache
        if ctx.setup(ctx.cdir_cmd("ls", "/"), ctx.cdir_env(empty)).strip():
            raise BenchError("cdir ls / on the empty catalog printed entries")
        for i in range(repeats):
            if i == 0:
                ctx.log(f"  startup: {repeats} repetitions")
            for row, cmd, e, tool in plan:  # interleaved: load drifts hit all alike
                series = row.cdir if tool == "cdir" else row.rclone
                assert series is not None
                timed(ctx, cmd, e, series)
        for row, _cmd, _e, tool in plan:
            row.notes.append(usage_note(row.cdir if tool == "cdir" else row.rclone))
        return [row for row, *_ in plan]


@dataclass(frozen=True)
class Imported:
    """One line of `python -X importtime`."""

    name: str
    self_us: int
    cumulative_us: int
    depth: int  # 0: imported by the top-level code, not while another module was imported
    parent: str | None  # the module whose import imported this one; None at depth 0


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


def parse_importtime(stderr: str) -> list[Imported]:
    """The modules of an `-X importtime` report, in its order (a module after those it
    imported), each with its parent: the first line below it that is one level less deep."""
    lines = [
        (m[4], int(m[1]), int(m[2]), len(m[3]) // 2)
        for m in map(_IMPORT_LINE.match, stderr.splitlines())
        if m
    ]
    out: list[Imported] = []
    stack: list[str] = []  # walking backwards: the open parent at each depth
    for name, self_us, cum_us, depth in reversed(lines):
        del stack[depth:]
        out.append(Imported(name, self_us, cum_us, depth, stack[depth - 1] if depth else None))
        stack.append(name)
    out.reverse()
    return out


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def import_rows(runs: list[list[Imported]]) -> list[Row]:
    """The table's rows (total first, then by cumulative time) and its two notes."""
    totals = [sum(m.cumulative_us for m in run if m.depth == 0) for run in runs]
    total_ms = _median(totals) / 1000
    first = {m.name: m for m in runs[0]}
    cum: dict[str, list[float]] = defaultdict(list)
    own: dict[str, list[float]] = defaultdict(list)
    by_package: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        package_us: dict[str, int] = defaultdict(int)
        for m in run:
            cum[m.name].append(m.cumulative_us / 1000)
            own[m.name].append(m.self_us / 1000)
            package_us[m.name.split(".")[0]] += m.self_us
        for pkg in {m.name.split(".")[0] for r in runs for m in r}:
            by_package[pkg].append(package_us.get(pkg, 0) / 1000)

    def share(ms: float) -> float:
        return ms / total_ms if total_ms else 0.0

    chosen = [
        m.name
        for m in runs[0]
        if m.name in WATCHED
        or (m.depth == 0 and share(_median(cum[m.name])) >= TOP_LEVEL_SHARE)
        or ("." not in m.name and share(_median(cum[m.name])) >= PACKAGE_SHARE)
    ]
    rows = [
        Row(
            "all imports (the top-level ones summed)",
            values={"parent": "-", "ms": round(total_ms, 2), "share": 1.0},
        )
    ]
    for name in sorted(chosen, key=lambda n: -_median(cum[n])):
        ms = _median(cum[name])
        rows.append(
            Row(
                name,
                values={
                    "parent": first[name].parent or "(top level)",
                    "ms": round(ms, 2),
                    "share": round(share(ms), 4),
                    "self_ms": round(_median(own[name]), 2),
                },
            )
        )
    packages = sorted(by_package, key=lambda p: -_median(by_package[p]))
    named = packages[:BY_PACKAGE]
    rest = sum(_median(by_package[p]) for p in packages[BY_PACKAGE:])
    parts = [
        f"{p} {_median(by_package[p]):.0f} ms ({share(_median(by_package[p])):.0%})" for p in named
    ]
    if len(packages) > len(named):
        parts.append(f"{len(packages) - len(named)} others {rest:.0f} ms ({share(rest):.0%})")
    rows.append(
        Row(
            "own code by package (self time of all its modules; adds up to the total)",
            notes=[", ".join(parts)],
            kind="note",
        )
    )
    absent = [h for h in HEAVY if h not in first]
    present = [h for h in HEAVY if h in first]
    rows.append(
        Row(
            "provider SDKs and other heavy modules",
            notes=[
                f"not imported: {', '.join(absent) or 'none'}"
                + (f"; IMPORTED: {', '.join(present)}" if present else "")
            ],
            kind="note",
        )
    )
    return rows


@case("startup-imports", IMPORTS, "python -X importtime -m cdir ls / (empty catalog), by module")
def startup_imports(ctx: Context) -> list[Row]:
    repeats = 3 if ctx.quick else 7
    home = ctx.scratch("cdir-home")
    with removed_after(home):
        env = ctx.cdir_env(home)
        cmd = [ctx.python, "-X", "importtime", "-m", "cdir", "ls", "/"]
        # run where no cdir/ folder is: `-m` puts the working directory first on sys.path
        ctx.setup(ctx.cdir_cmd("ls", "/"), env)  # untimed: creates the catalog, warms up
        wall = Series([a.replace(str(ctx.work), "$WORK") for a in cmd])
        runs: list[list[Imported]] = []
        ctx.log(f"  startup-imports: {repeats} runs")
        for _ in range(repeats):
            run = ctx.measure(cmd, env, discard_output=True, cwd=home)
            wall.samples.append(run.sample)
            parsed = parse_importtime(run.stderr)
            if not any(m.name == "cdir.cli.main" for m in parsed):
                raise BenchError(f"no import times in the output of {' '.join(cmd)}")
            runs.append(parsed)
        rows = import_rows(runs)
        rows[0].cdir = wall
        rows[0].notes.append(
            f"the whole command took {_median([s.seconds for s in wall.samples]):.3f} s "
            f"under -X importtime; {usage_note(wall)}"
        )
        return rows
