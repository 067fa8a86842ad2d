"""Catalog reads on a generated 1 M-entry catalog."""

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
    removed_after,
    timed,
    usage_note,
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
                timed(ctx, ctx.cdir_cmd(*args), env, series)
            timed(ctx, lsf_cmd, ctx.rclone_env(), lsf.rclone)
        for label, _args, _lines, note in plan:
            rows[label].notes += [note, usage_note(rows[label].cdir)]
        first = rows[plan[0][0]]
        first.notes.append(
            f"catalog: {shape.entries:,} entries, {shape.replicas:,} replicas, "
            f"generated in {shape.seconds:.0f} s (untimed)"
        )
        lsf.notes.append(usage_note(lsf.rclone).replace("peak", "rclone peak"))
        return [*rows.values(), lsf]
