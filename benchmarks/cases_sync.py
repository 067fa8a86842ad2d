"""Sync passes (the sync issue's benchmarks): a pass that finds nothing changed, against
`rclone check` on the same data, as a command and inside a running process (what the daemon
pays: no start-up); and its time and peak RSS as the catalog grows."""

from __future__ import annotations

import json
import os
from pathlib import Path

from benchmarks.data import make_small_files
from benchmarks.harness import (
    BenchError,
    Column,
    Context,
    Group,
    KiB,
    Row,
    Sample,
    Series,
    alternate,
    case,
    human_bytes,
    removed_after,
    rss_note,
    timed,
)
from benchmarks.puts import add_provider, record, server_fixture

SYNC = Group(
    "sync",
    "sync passes",
    "10,000 x 4 KiB files put on a local provider and on S3 (SeaweedFS), untimed; then a sync "
    "pass that finds nothing changed: `cdir sync` (lists both, compares with the catalog in "
    "bulk) against `rclone check LOCAL S3:…` (lists both, compares sizes and hashes). The "
    "second row is the same pass inside a running process, as the daemon runs it (no start-up: "
    "a Python process opens the virtual directory once, runs one pass untimed, then times the "
    "next). Goals: the command no slower than rclone, the daemon's pass at most 0.3x.",
    rank=27,
)

# In-process pass: one untimed (opens everything), then the timed one; prints its seconds.
IN_PROCESS = """
import sys, time
from cdir.vdir import VDir
v = VDir()
v.sync(progress=False)
t0 = time.perf_counter()
rep = v.sync(progress=False)
print(time.perf_counter() - t0, rep.checked, rep.changed, rep.copied)
"""


@case("sync-nochange", SYNC, "no-change pass over 10,000 files on local + S3 vs rclone check")
def sync_nochange(ctx: Context) -> list[Row]:
    s3mod = server_fixture("s3")
    files = 2000 if ctx.quick else 10_000
    src, lap, home = ctx.scratch("src"), ctx.scratch("lap"), ctx.scratch("cdir-home")
    with removed_after(src, lap, home), s3mod.s3_server_running() as s3:
        make_small_files(src, files, 4 * KiB, seed=7)
        cfg = s3mod.provider_config(s3)
        env = ctx.cdir_env(home)
        ctx.setup(ctx.cdir_cmd("provider", "add", "lap", "-k", "local", "--root", str(lap)), env)
        add_provider(ctx, env, "s3", cfg)
        ctx.setup(ctx.cdir_cmd("put", f"{src}/", "/bench", "-r", "--parallel", "4"), env)
        renv = ctx.rclone_env(**s3mod.rclone_env(s3, "S3B"))
        check = ctx.rclone_cmd("check", str(lap / "bench"), f"S3B:{cfg['root']}/bench")
        cmd = ctx.cdir_cmd("sync", "/bench")
        label = f"{files:,} x 4 KiB"
        row = Row(f"sync, nothing changed: {label}", Series([]), Series([]))
        daemon = Row(f"the same pass inside a running process: {label}", Series([]), row.rclone)

        def run_cdir() -> None:
            run = ctx.measure(cmd, env)
            if f"checked {2 * files} file(s)" not in run.stdout or "0 changed" not in run.stdout:
                raise BenchError(f"cdir sync did not find {files} unchanged files: {run.stdout}")
            record(row.cdir, ctx, cmd, run.sample)  # type: ignore[arg-type]
            inproc = [ctx.python, "-c", IN_PROCESS]
            got = ctx.measure(inproc, env)
            seconds, checked, changed, copied = got.stdout.split()
            if (int(checked), int(changed), int(copied)) != (2 * files, 0, 0):
                raise BenchError(f"the in-process pass was not a no-change pass: {got.stdout}")
            s = got.sample
            sample = Sample(float(seconds), s.cpu_seconds, s.max_rss_kib)
            record(daemon.cdir, ctx, ["VDir.sync()", "(in a running process)"], sample)  # type: ignore[arg-type]

        def run_rclone() -> None:
            timed(ctx, check, renv, row.rclone)  # type: ignore[arg-type]

        for i in range(ctx.repeats):
            ctx.log(f"  {label}: repetition {i + 1}/{ctx.repeats}")
            alternate(i, run_cdir, run_rclone)
    row.notes += ["goal ≤ 1.0x rclone", rss_note(row)]
    daemon.notes += ["goal ≤ 0.3x rclone; peak RSS and CPU are the whole process's"]
    return [row, daemon]


SCALE = Group(
    "sync-scale",
    "a no-change sync pass as the catalog grows",
    "One local provider holding N one-byte files in 100 x 100 directories, known to the catalog "
    "(an untimed `cdir scan`); then `cdir sync` that finds nothing changed. Time and peak RSS of "
    "that process: the listing goes to a temporary table in batches of 2,000 and is compared "
    "in SQL, so memory must stay bounded as N grows (goal: under 200 MiB at 1,000,000). No "
    "rclone counterpart.",
    rank=28,
    columns=(
        Column("files", lambda r: f"{r.values['files']:,}"),
        Column("seconds", lambda r: f"{r.cdir.median:.2f}" if r.cdir else "-"),
        Column("peak RSS", lambda r: human_bytes(r.cdir.max_rss_kib * KiB) if r.cdir else "-"),
    ),
    shows_min=False,
)


def _one_byte_files(root: Path, n: int) -> None:
    """`n` files of one byte below `root`, in 100 x 100 directories (fast: os.open/write)."""
    per = max(n // 10_000, 1)
    made = 0
    for top in range(100):
        for sub in range(100):
            d = root / f"d{top:02d}" / f"s{sub:02d}"
            d.mkdir(parents=True)
            for i in range(min(per, n - made)):
                fd = os.open(d / f"f{i:04d}", os.O_WRONLY | os.O_CREAT, 0o644)
                os.write(fd, b"x")
                os.close(fd)
                made += 1
    if made != n:
        raise BenchError(f"made {made} files, not {n}")


@case("sync-scale", SCALE, "no-change sync pass, local provider, 100,000 and 1,000,000 files")
def sync_scale(ctx: Context) -> list[Row]:
    rows = []
    for n in (100_000,) if ctx.quick else (100_000, 1_000_000):
        lap, home = ctx.scratch("lap"), ctx.scratch("cdir-home")
        with removed_after(lap, home):
            ctx.log(f"  making {n:,} files and scanning them (not timed)…")
            _one_byte_files(lap, n)
            env = ctx.cdir_env(home)
            add = ("provider", "add", "lap", "-k", "local", "--root", str(lap))
            ctx.setup(ctx.cdir_cmd(*add), env)
            ctx.setup(ctx.cdir_cmd("scan", "lap"), env)
            row = Row(f"sync, nothing changed: {n:,} files", Series([]), None, values={"files": n})
            cmd = ctx.cdir_cmd("sync", "-o", "json")
            for _ in range(1 if n >= 1_000_000 else ctx.repeats):
                run = ctx.measure(cmd, env)
                got = json.loads(run.stdout)
                if (got["checked"], got["changed"], got["copied"]) != (n, 0, 0):
                    raise BenchError(f"not a no-change pass over {n} files: {run.stdout[:500]}")
                record(row.cdir, ctx, cmd, run.sample)  # type: ignore[arg-type]
            row.notes.append(f"{row.cdir.cpu_median:.1f} s CPU")  # type: ignore[union-attr]
            rows.append(row)
    return rows


LATENCY = Group(
    "sync-latency",
    "a change on a local provider, until every replica is current",
    "`cdir daemon start` on two local providers (poll 1 h: only the file watcher reacts) "
    "holding 1,000 files; then, 20 times, a file is rewritten inside laptop's folder and the "
    "clock runs until archive holds the new bytes (polled every 5 ms). The watcher waits for "
    "1 s of quiet before a pass (CDIR_DAEMON_DEBOUNCE), which is most of the latency. Goal: "
    "p50 ≤ 1 s plus the transfer. No rclone counterpart (rclone has no watcher).",
    rank=29,
    columns=(
        Column("p50 s", lambda r: f"{r.values['p50']:.2f}"),
        Column("p95 s", lambda r: f"{r.values['p95']:.2f}"),
        Column("max s", lambda r: f"{r.values['max']:.2f}"),
    ),
    shows_min=False,
)


@case("sync-latency", LATENCY, "daemon + watcher: a local change until every replica is current")
def sync_latency(ctx: Context) -> list[Row]:
    import statistics
    import subprocess
    import time

    lap, arc, home, src = (ctx.scratch(n) for n in ("lap", "arc", "cdir-home", "src"))
    with removed_after(lap, arc, home, src):
        make_small_files(src, 1000, 4 * KiB, seed=9)
        env = ctx.cdir_env(home)
        for name, root in (("laptop", lap), ("archive", arc)):
            ctx.setup(ctx.cdir_cmd("provider", "add", name, "-k", "local", "--root", str(root),
                                   "--poll", "1h"), env)  # fmt: skip
        ctx.setup(ctx.cdir_cmd("put", f"{src}/", "/b", "-r"), env)
        ctx.setup(ctx.cdir_cmd("daemon", "start"), env)
        waits = []
        try:
            files = sorted(p.relative_to(lap) for p in lap.rglob("*.bin"))
            for i in range(5 if ctx.quick else 20):
                rel = files[i * 37 % len(files)]
                data = os.urandom(4096)
                t0 = time.perf_counter()
                (lap / rel).write_bytes(data)
                while (arc / rel).read_bytes() != data:
                    if time.perf_counter() - t0 > 60:
                        raise BenchError(f"archive did not get {rel} within 60 s")
                    time.sleep(0.005)
                waits.append(time.perf_counter() - t0)
        finally:
            subprocess.run(ctx.cdir_cmd("daemon", "stop"), env=env, capture_output=True)
    waits.sort()
    p95 = waits[max(0, round(0.95 * len(waits)) - 1)]
    row = Row(
        f"rewrite one 4 KiB file of 1,000 ({len(waits)} times)",
        None,
        None,
        values={"p50": statistics.median(waits), "p95": p95, "max": waits[-1]},
    )
    return [row]
