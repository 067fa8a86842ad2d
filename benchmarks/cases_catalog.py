"""Catalog reads on a generated 1 M-entry catalog, and the CLI's cold start."""

from __future__ import annotations

from benchmarks.data import (
    BIG_DIR,
    BIG_DIR_FILES,
    EXACT_DIR,
    EXACT_NAME,
    SEARCH_PATTERN,
    generate_catalog,
)
from benchmarks.harness import (
    BenchError,
    Context,
    Group,
    Row,
    Series,
    case,
    human_bytes,
    removed_after,
)

CATALOG = Group(
    "catalog",
    "catalog of 1,000,000 entries",
    "A SQLite catalog generated with cdir's own schema: 100 top dirs x 100 subdirs x ~98 files, "
    f"plus `{BIG_DIR}` holding exactly {BIG_DIR_FILES:,} files, one current replica per file. "
    "Each command is a fresh `cdir` process (stdout to /dev/null) after one untimed run that "
    "checks its output and warms the page cache. There is no rclone equivalent: rclone has no "
    'catalog, so the ratio is "-"; `rclone lsf` of a local folder is a reference only.',
    rank=30,
)

STARTUP = Group(
    "startup",
    "CLI cold start",
    "A fresh process each time on a tiny catalog (two directories): what every command pays "
    "before doing anything. The interpreter alone and `rclone version` are references.",
    rank=40,
)


def _timed(ctx: Context, cmd: list[str], env: dict[str, str], series: Series) -> None:
    """One timed run, stdout to /dev/null (the terminal is not what is measured)."""
    series.command = series.command or [a.replace(str(ctx.work), "$WORK") for a in cmd]
    series.samples.append(ctx.measure(cmd, env, discard_output=True).sample)


def _rss(series: Series | None) -> str:
    if not series or not series.samples:
        return ""
    return f"peak RSS {human_bytes(series.max_rss_kib * 1024)}, {series.cpu_median:.2f} s CPU"


@case("catalog", CATALOG, "search and ls on a generated 1 M-entry catalog (+ rclone lsf reference)")
def catalog_reads(ctx: Context) -> list[Row]:
    home = ctx.scratch("cdir-home")
    ref = ctx.scratch("lsf-dir")
    with removed_after(home, ref):
        ctx.log("  generating the catalog (not timed)…")
        shape = generate_catalog(f"sqlite:///{home / 'catalog.db'}")
        ctx.log(f"  {shape.entries:,} entries in {shape.seconds:.0f} s")
        env = ctx.cdir_env(home)
        lines_ls_l = BIG_DIR_FILES + 1  # + the table header
        plan: list[tuple[str, list[str], int, str]] = [
            (
                f"search / '{SEARCH_PATTERN}' -r",
                ["search", "/", SEARCH_PATTERN, "-r"],
                shape.pattern_matches,
                f"{shape.pattern_matches} matches",
            ),
            (
                f"search / '{EXACT_NAME}' -r",
                ["search", "/", EXACT_NAME, "-r"],
                1,
                f"1 match ({EXACT_DIR}/{EXACT_NAME})",
            ),
            (f"ls {BIG_DIR}", ["ls", BIG_DIR], BIG_DIR_FILES, f"{BIG_DIR_FILES:,} names"),
            (
                f"ls -l {BIG_DIR}",
                ["ls", "-l", BIG_DIR],
                lines_ls_l,
                f"{BIG_DIR_FILES:,} rows with replicas",
            ),
        ]
        rows = {label: Row(f"cdir {label}", Series([])) for label, *_ in plan}
        for label, args, lines, _note in plan:
            out = ctx.setup(ctx.cdir_cmd(*args), env)  # untimed: checks the answer, warms up
            got = len(out.splitlines())
            if got != lines:
                raise BenchError(f"cdir {label}: {got} lines of output, expected {lines}")
        # the reference: rclone listing a real folder of as many (empty) files
        for k in range(BIG_DIR_FILES):
            (ref / f"file-{k:05d}.dat").touch()
        lsf = Row(
            f"reference: rclone lsf of a local folder of {BIG_DIR_FILES:,} files", None, Series([])
        )
        assert lsf.rclone is not None
        lsf_cmd = ctx.rclone_cmd("lsf", str(ref))
        ctx.setup(lsf_cmd, ctx.rclone_env())
        for i in range(ctx.repeats):
            ctx.log(f"  catalog reads: repetition {i + 1}/{ctx.repeats}")
            for label, args, _lines, _note in plan:  # interleaved: load drifts hit all alike
                series = rows[label].cdir
                assert series is not None
                _timed(ctx, ctx.cdir_cmd(*args), env, series)
            _timed(ctx, lsf_cmd, ctx.rclone_env(), lsf.rclone)
        for label, _args, _lines, note in plan:
            rows[label].notes += [note, _rss(rows[label].cdir)]
        first = rows[plan[0][0]]
        first.notes.append(
            f"catalog: {shape.entries:,} entries, {shape.replicas:,} replicas, "
            f"generated in {shape.seconds:.0f} s (untimed)"
        )
        lsf.notes.append(_rss(lsf.rclone).replace("peak", "rclone peak"))
        return [*rows.values(), lsf]


@case("startup", STARTUP, "cdir --version and cdir ls / on a tiny catalog, 10 times each")
def startup(ctx: Context) -> list[Row]:
    repeats = 1 if ctx.quick else 10
    home = ctx.scratch("cdir-home")
    with removed_after(home):
        ctx.setup(ctx.cdir_cmd("mkdir", "/docs", "/photos"), ctx.cdir_env(home))
        plan: list[tuple[Row, list[str], dict[str, str], str]] = []
        for label, cmd, tool in (
            ("cdir --version", ctx.cdir_cmd("--version"), "cdir"),
            ("cdir ls / (tiny catalog)", ctx.cdir_cmd("ls", "/"), "cdir"),
            (
                "reference: python -c pass (the interpreter alone)",
                [ctx.python, "-c", "pass"],
                "cdir",
            ),
            ("reference: rclone version", ctx.rclone_cmd("version"), "rclone"),
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
        for i in range(repeats):
            if i == 0:
                ctx.log(f"  startup: {repeats} repetitions")
            for row, cmd, e, tool in plan:
                series = row.cdir if tool == "cdir" else row.rclone
                assert series is not None
                _timed(ctx, cmd, e, series)
        for row, _cmd, _e, tool in plan:
            row.notes.append(_rss(row.cdir if tool == "cdir" else row.rclone))
        return [row for row, *_ in plan]
