"""`cdir put` against `rclone copy` into the same kind of destination, fresh each time.

A destination is a context manager giving, per tool, the environment and the target of the
timed command and where `rclone size` can check the result; it removes everything after, so a
case's disk use is its source plus one copy.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    BenchError,
    Context,
    Row,
    Sample,
    Series,
    Skip,
    alternate,
    removed_after,
    rss_note,
)

PARALLEL = "4"


@dataclass(frozen=True)
class Dest:
    env: dict[str, str]  # environment of the timed command
    target: str  # cdir: the provider name for --to; rclone: the destination path or remote
    check: str  # what `rclone size` should find holding the copy
    check_env: dict[str, str]


Destination = Callable[[Context, str], AbstractContextManager[Dest]]


@contextmanager
def local_destination(ctx: Context, tool: str) -> Iterator[Dest]:
    """A new local folder; for cdir also a new CDIR_HOME with provider `localdst` on it."""
    dst = ctx.scratch(f"{tool}-dst")
    with removed_after(dst):
        if tool == "rclone":
            env = ctx.rclone_env()
            yield Dest(env, str(dst), str(dst), env)
            return
        home = ctx.scratch("cdir-home")
        with removed_after(home):
            env = ctx.cdir_env(home)
            add = ("provider", "add", "localdst", "-k", "local", "--root", str(dst))
            ctx.setup(ctx.cdir_cmd(*add), env)
            yield Dest(env, "localdst", str(dst / "bench"), ctx.rclone_env())


def server_fixture(kind: str) -> Any:
    """tests/servers/<kind>.py when it offers a plain context manager `<kind>_server_running`
    plus `provider_config` and `rclone_env` (pytest fixtures alone cannot be used here)."""
    try:
        mod = importlib.import_module(f"tests.servers.{kind}")
    except ImportError as exc:
        raise Skip(f"tests/servers/{kind}.py cannot be imported: {exc}") from None
    needed = (f"{kind}_server_running", "provider_config", "rclone_env")
    missing = [n for n in needed if not callable(getattr(mod, n, None))]
    if missing:
        raise Skip(f"tests/servers/{kind}.py has no {', '.join(missing)} yet")
    return mod


def server_destination(kind: str) -> Destination:
    """A server of `kind` started for this one run (a fresh store: disk is freed after)."""
    mod = server_fixture(kind)

    @contextmanager
    def dest(ctx: Context, tool: str) -> Iterator[Dest]:
        with getattr(mod, f"{kind}_server_running")() as server:
            cfg = mod.provider_config(server)
            extra: dict[str, Any] = {}
            if "hashcheck" in inspect.signature(mod.rclone_env).parameters:
                # rclone's sftp runs a remote md5sum per file by default; cdir runs no remote
                # command, so both do the same work only with that check off
                extra["hashcheck"] = False
            remote_env = mod.rclone_env(server, "BENCHDST", **extra)
            remote = f"BENCHDST:{cfg['root']}"
            check_env = ctx.rclone_env(**remote_env)
            if tool == "rclone":
                yield Dest(check_env, remote, remote, check_env)
                return
            home = ctx.scratch("cdir-home")
            with removed_after(home):
                env = ctx.cdir_env(home)
                add_provider(ctx, env, "dst", cfg)
                yield Dest(env, "dst", f"{remote}/bench", check_env)

    return dest


def add_provider(ctx: Context, env: dict[str, str], name: str, cfg: dict[str, Any]) -> None:
    """`cdir provider add` from a fixture's provider_config(); secrets go in as -O options,
    which cdir routes to its vault (no prompt in a benchmark)."""
    opts = [a for k, v in {**cfg["options"], **cfg["secrets"]}.items() for a in ("-O", f"{k}={v}")]
    ctx.setup(
        ctx.cdir_cmd("provider", "add", name, "-k", cfg["kind"], "--root", cfg["root"], *opts), env
    )


def check_copy(
    ctx: Context, where: str, env: dict[str, str], files: int, size: int, who: str
) -> None:
    """The copy is complete (file count and bytes), by rclone as an independent lister."""
    got = json.loads(ctx.setup(ctx.rclone_cmd("size", "--json", where), env))
    if (got.get("count"), got.get("bytes")) != (files, size):
        raise BenchError(
            f"{who} left {got.get('count')} files / {got.get('bytes')} bytes at "
            f"{where}, expected {files} / {size}"
        )


def _check(ctx: Context, d: Dest, files: int, size: int, who: str) -> None:
    check_copy(ctx, d.check, d.check_env, files, size, who)


def record(series: Series, ctx: Context, cmd: list[str], sample: Sample) -> None:
    if not series.command:
        series.command = [a.replace(str(ctx.work), "$WORK") for a in cmd]
    series.samples.append(sample)


def _snapshot(where: str) -> dict[str, tuple[int, int, int]] | None:
    """(inode, mtime, ctime) of every file below a local `where`: a skipped file keeps all three.
    None for a remote, where the tool's own report has to do."""
    if not os.path.isdir(where):
        return None
    out = {}
    for dirpath, _dirs, names in os.walk(where):
        for n in names:
            st = os.stat(os.path.join(dirpath, n))
            out[os.path.join(dirpath, n)] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    return out


def put_rows(
    ctx: Context,
    src: Path,
    expected: tuple[int, int],
    destination: Destination,
    label: str,
    *,
    rerun: bool,
    notes: list[str] | None = None,
) -> list[Row]:
    """Time `cdir put SRC/ /bench -r --to P --parallel 4` against `rclone copy SRC DST
    --transfers 4 --checkers 4`, each into a fresh destination, ctx.repeats times; with
    `rerun` also the same command again right after (nothing changed: both must skip all)."""
    files, size = expected
    cdir1, rclone1, cdir2, rclone2 = Series([]), Series([]), Series([]), Series([])
    first = Row(f"put {label}", cdir1, rclone1, list(notes or []))
    again = Row(f"re-run, nothing changed: {label}", cdir2, rclone2)

    def run(
        tool: str, what: str, command: Callable[[Any], list[str]], one: Series, two: Series
    ) -> None:
        with destination(ctx, tool) as d:
            cmd = command(d)
            record(one, ctx, cmd, ctx.measure(cmd, d.env).sample)
            _check(ctx, d, files, size, what)
            if rerun:
                before = _snapshot(d.check)
                r = ctx.measure(cmd, d.env)
                if before is not None and _snapshot(d.check) != before:
                    raise BenchError(f"{tool} re-run rewrote files that had not changed")
                if tool == "cdir" and not re.search(rf"\b0 file\(s\).*skipped {files}\b", r.stdout):
                    raise BenchError(f"cdir re-run did not skip every file: {r.stdout.strip()}")
                record(two, ctx, cmd, r.sample)

    def run_cdir() -> None:
        run(
            "cdir",
            "cdir put",
            lambda d: ctx.cdir_cmd(
                "put", f"{src}/", "/bench", "-r", "--to", d.target, "--parallel", PARALLEL
            ),
            cdir1,
            cdir2,
        )

    def run_rclone() -> None:
        run(
            "rclone",
            "rclone copy",
            lambda d: ctx.rclone_cmd(
                "copy", str(src), d.target, "--transfers", PARALLEL, "--checkers", PARALLEL
            ),
            rclone1,
            rclone2,
        )

    for i in range(ctx.repeats):
        ctx.log(f"  {label}: repetition {i + 1}/{ctx.repeats}")
        alternate(i, run_cdir, run_rclone)
    rows = [first, again] if rerun else [first]
    for row in rows:
        row.notes.append(rss_note(row))
    return rows
