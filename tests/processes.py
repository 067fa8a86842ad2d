"""`cdir` as real processes, for the fault and stress tests: one home (catalog, vault, state)
per test, local providers in folders of their own, and what the catalog says read back
through `cdir status -o json` — the same way a user would see it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEADLINE_S = 30.0
TMP_PREFIX = ".cdir-tmp-"
INTERRUPTED = (
    "cdir: interrupted (what the providers confirmed is recorded; run the same command again "
    "to finish)"
)
# "put: 12 file(s), 4.0 KiB in 0.31 s, 12.9 KiB/s (skipped 3, failed 0)"
SUMMARY = re.compile(
    r"(?P<action>[a-z]+): (?P<files>\d+) file\(s\), [\d.]+ (?:B|KiB|MiB|GiB|TiB) in [\d.]+ s"
    r"(?:, [\d.]+ (?:B|KiB|MiB|GiB|TiB)/s)? \(skipped (?P<skipped>\d+), failed (?P<failed>\d+)\)"
)


@dataclass(frozen=True)
class Summary:
    action: str
    files: int
    skipped: int
    failed: int


def summary(out: str) -> Summary:
    """The one summary line a transfer command prints on stdout (below it, when some files
    failed on some providers, one indented line of counts per provider)."""
    lines = [x for x in out.splitlines() if not x.startswith("  ")]
    assert len(lines) == 1, out
    m = SUMMARY.fullmatch(lines[0])
    assert m, lines[0]
    return Summary(m["action"], int(m["files"]), int(m["skipped"]), int(m["failed"]))


def cdir_env(home: Path, catalog_url: str | None = None) -> dict[str, str]:
    """The environment of a `cdir` process: this home, a vault passphrase (local providers
    never open the vault), the catalog given or the home's SQLite file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDIR_")}
    env |= {"CDIR_HOME": str(home), "CDIR_VAULT_PASSPHRASE": "test passphrase"}
    if catalog_url:
        env["CDIR_CATALOG_URL"] = catalog_url
    return env


@dataclass
class Cdir:
    """`cdir` commands against one home and catalog."""

    home: Path
    catalog_url: str | None = None
    providers: dict[str, Path] = field(default_factory=dict)
    started: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return cdir_env(self.home, self.catalog_url)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cdir", *args]

    def run(self, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        """Run to the end; `code` is the exit code expected (None: any)."""
        r = subprocess.run(
            self.argv(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DEADLINE_S * 4,
            cwd=self.home.parent,
        )
        if code is not None:
            assert r.returncode == code, (args, r.returncode, r.stdout, r.stderr)
        return r

    def start(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.argv(*args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.home.parent,
        )
        self.started.append(proc)
        return proc

    def close(self) -> None:
        """End what a failed test left running (stopped ones too)."""
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()

    def add_local(self, name: str, root: Path) -> Path:
        out = self.run("provider", "add", name, "--kind", "local", "--root", str(root)).stdout
        assert out == f"added provider {name} (local: {root})\n", out
        self.providers[name] = root
        return root

    def status(self, path: str = "/") -> dict[str, dict[str, Any]]:
        """path → the entry as `cdir status -r -o json` gives it, its replicas by provider."""
        entries = json.loads(self.run("status", path, "-r", "-o", "json").stdout)
        out = {}
        for e in entries:
            assert e["path"] not in out, f"two entries for {e['path']}"
            e["replicas"] = {r["provider"]: r for r in e["replicas"]}
            out[e["path"]] = e
        return out

    def tree(self, path: str = "/") -> list[str]:
        """Every live path below `path` (directories end with '/'), from `cdir ls -r`."""
        return self.run("ls", path, "-r").stdout.splitlines()


def make_files(root: Path, count: int, size: int = 100, dirs: int = 10) -> dict[str, bytes]:
    """`count` files of random bytes in `dirs` folders (two levels) below `root`; rel → bytes."""
    files = {}
    for i in range(count):
        rel = f"d{i % dirs}/e{i % 3}/f{i:05d}.bin"
        data = os.urandom(size)
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        files[rel] = data
    return files


def files_below(root: Path) -> Iterator[str]:
    """Relative paths of every file below `root` (temporaries of uploads in flight too)."""
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            yield os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/")


def count_files(root: Path) -> int:
    return sum(1 for rel in files_below(root) if TMP_PREFIX not in rel)


def wait_until(
    cond: Callable[[], bool],
    what: str,
    proc: subprocess.Popen[str] | None = None,
    deadline_s: float = DEADLINE_S,
) -> None:
    """Poll `cond` until it holds; fail after the deadline, or when `proc` ended first."""
    end = time.monotonic() + deadline_s
    while not cond():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the process ended before {what}: {proc.returncode} {out} {err}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.002)  # a poll interval, not a timing assumption


def finish(proc: subprocess.Popen[str], deadline_s: float = DEADLINE_S) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=deadline_s)
    return proc.returncode, out, err


def no_traceback(err: str) -> None:
    assert not any(line.startswith("Traceback") for line in err.splitlines()), err


@dataclass(frozen=True)
class Row:
    """One replica as the catalog holds it, with its entry (a tombstone too)."""

    path: str
    alive: bool
    size: int | None
    generation: int
    provider: str
    remote_path: str
    state: str
    held: int  # the generation the replica holds
    last_error: str | None


def catalog_rows(c: Cdir) -> list[Row]:
    """Every replica row of the catalog, read from the database itself: tombstoned entries'
    replicas (an `rm` that failed on a provider) are known to the catalog, though no command
    lists them."""
    from sqlalchemy import text

    from cdir.catalog import Database
    from cdir.catalog.queries import path_of

    db = Database(c.catalog_url or f"sqlite:///{c.home / 'catalog.db'}")
    try:
        with db.transaction() as s:
            rows = s.execute(
                text(
                    "SELECT e.dirname, e.basename, e.deleted_at, e.size, e.generation, "
                    "p.name, r.remote_path, r.state, r.generation AS held, r.last_error "
                    "FROM replica r JOIN entry e ON e.id = r.entry_id "
                    "JOIN provider p ON p.id = r.provider_id"
                )
            ).all()
    finally:
        db.close()
    return [
        Row(
            path_of(r),
            r.deleted_at is None,
            r.size,
            r.generation,
            r.name,
            r.remote_path,
            r.state,
            r.held,
            r.last_error,
        )
        for r in rows
    ]


def inconsistencies(c: Cdir, source: Callable[[Row], bytes | None] | None = None) -> list[str]:
    """Where the catalog and the provider folders disagree: a replica of a live entry marked
    current (at its entry's generation) whose file is missing, is not the entry's size, or is
    not the bytes `source(row)` gives; a file on a provider folder that no replica row names;
    an upload temporary left behind. [] when they agree."""
    problems = []
    known: dict[str, set[str]] = {name: set() for name in c.providers}
    for r in catalog_rows(c):
        known[r.provider].add(r.remote_path)
        if not r.alive or r.state != "current" or r.held != r.generation:
            continue
        f = c.providers[r.provider] / r.remote_path
        want = source(r) if source else None
        if not f.is_file():
            problems.append(f"{r.provider}:{r.path}: current, but no file at {r.remote_path}")
        elif f.stat().st_size != r.size:
            problems.append(
                f"{r.provider}:{r.path}: current, but {f.stat().st_size} bytes, not {r.size}"
            )
        elif want is not None and f.read_bytes() != want:
            problems.append(f"{r.provider}:{r.path}: current, but other bytes")
    for name, root in c.providers.items():
        for rel in files_below(root):
            if TMP_PREFIX in rel:
                problems.append(f"{name}: an upload temporary left behind: {rel}")
            elif rel not in known[name]:
                problems.append(f"{name}: {rel} is on the provider, unknown to the catalog")
    return sorted(problems)
