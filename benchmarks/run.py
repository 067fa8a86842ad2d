"""Run the benchmarks: `python -m benchmarks.run [--only NAME] [--quick] [--list]`.

Writes benchmarks/results/<UTC timestamp>.json and regenerates the tables in
docs/benchmarks.md. Run from the repository root (the server fixtures are imported from
tests/servers/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import (  # noqa: F401 - registers the cases
    cases_api,
    cases_catalog,
    cases_churn,
    cases_cloud,
    cases_put,
    cases_startup,
    cases_sync,
)
from benchmarks.harness import Case, Context, Row, Skip, find_tool, ordered_cases
from benchmarks.report import RESULTS, CaseResult, RunInfo, load_results, update_doc

FULL_REPEATS = 3


def machine_info(cdir: str, rclone: str, python: str) -> dict[str, str]:
    def first_line(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            return done.stdout.splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unknown"

    cpu = "unknown"
    ram = "unknown"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"model name\s*:\s*(.+)", cpuinfo).group(1).strip()  # type: ignore[union-attr]
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
        ram = f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "ram": ram,
        "kernel": platform.release(),
        "python": first_line([python, "-c", "import platform; print(platform.python_version())"]),
        "rclone": first_line([rclone, "version"]),
        "cdir": first_line([cdir, "--version"]),
    }


def select(only: list[str]) -> list[Case]:
    cases = ordered_cases()
    if not only:
        return cases
    wanted = {n.strip() for item in only for n in item.split(",") if n.strip()}
    unknown = wanted - {c.name for c in cases} - {c.group.key for c in cases}
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))} (see --list)")
    return [c for c in cases if c.name in wanted or c.group.key in wanted]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="a case or group (repeatable, or comma-separated); see --list",
    )
    ap.add_argument("--quick", action="store_true", help="one repetition instead of 3")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--no-docs", action="store_true", help="write the JSON only")
    ap.add_argument(
        "--tmp",
        type=Path,
        default=None,
        help="scratch directory (default: the system temp dir); needs ~2.5 GB free",
    )
    ap.add_argument(
        "--render",
        type=Path,
        metavar="RESULTS_JSON",
        help="regenerate docs/benchmarks.md from a results file; run nothing",
    )
    args = ap.parse_args(argv)
    order = list(dict.fromkeys(c.group.key for c in ordered_cases()))
    if args.render:
        loaded, loaded_info = load_results(args.render)
        update_doc(loaded, loaded_info, order)
        print(f"docs: docs/benchmarks.md regenerated from {args.render}")
        return 0
    if args.list:
        for c in ordered_cases():
            print(f"{c.name:20} {c.group.key:16} {c.help}")
        return 0
    cases = select(args.only)
    cdir, rclone, python = find_tool("cdir"), find_tool("rclone"), sys.executable
    started = datetime.now(UTC)
    repeats = 1 if args.quick else FULL_REPEATS
    info = RunInfo(
        started=started.strftime("%Y-%m-%d %H:%M UTC"),
        quick=args.quick,
        repeats=repeats,
        machine=machine_info(cdir, rclone, python),
        argv=["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])],
    )
    print(
        f"benchmarks: {len(cases)} case(s), {repeats} repetition(s); "
        f"{info.machine['cdir']}, {info.machine['rclone']}",
        flush=True,
    )
    results: list[CaseResult] = []
    root = Path(tempfile.mkdtemp(prefix="cdir-bench-", dir=args.tmp))
    try:
        for c in cases:
            res = CaseResult(
                c, load_before=os.getloadavg()[0], measured=info.started, quick=args.quick
            )
            work = root / c.name
            work.mkdir()
            ctx = Context(
                repeats=repeats,
                quick=args.quick,
                work=work,
                cdir=cdir,
                rclone=rclone,
                python=python,
                log=lambda msg: print(msg, flush=True),
            )
            print(f"[{c.name}] {c.help}", flush=True)
            t0 = time.perf_counter()
            try:
                res.rows = c.fn(ctx)
            except Skip as exc:
                res.skipped = str(exc)
                print(f"[{c.name}] skipped: {exc}", flush=True)
            except Exception as exc:
                # one broken case (or a cdir mid-edit) must not lose the others' figures
                res.error = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                print(f"[{c.name}] FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            res.seconds = time.perf_counter() - t0
            for row in res.rows:
                print(f"    {_line(row)}", flush=True)
            results.append(res)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(
        json.dumps(
            {
                "started": started.isoformat(),
                "finished": datetime.now(UTC).isoformat(),
                "quick": args.quick,
                "repeats": repeats,
                "argv": info.argv,
                "machine": info.machine,
                "cases": [r.to_json() for r in results],
            },
            indent=2,
        )
        + "\n"
    )
    print(f"results: {out}")
    if not args.no_docs:
        update_doc(results, info, order)
        print("docs: docs/benchmarks.md updated")
    return 1 if any(r.error for r in results) else 0


def _line(row: Row) -> str:
    """A row for the console: its timings, or its figures, or its notes."""
    if row.kind == "note":
        return f"{row.case}: {'; '.join(row.notes)}"
    line = f"{row.case}:"
    if row.cdir or row.rclone:
        line += f" cdir {_fmt(row.cdir)}  rclone {_fmt(row.rclone)}"
    if row.ratio is not None:
        line += f"  ratio {row.ratio:.2f}"
    if row.values:
        line += "  " + " ".join(f"{k}={v}" for k, v in row.values.items())
    if row.error:
        line += f"  FAILED: {row.error}"
    return line


def _fmt(series: object) -> str:
    from benchmarks.harness import Series

    if not isinstance(series, Series) or not series.samples:
        return "-"
    return f"{series.median:.3f}s (min {series.min:.3f})"


if __name__ == "__main__":
    sys.exit(main())
