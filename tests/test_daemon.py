"""The sync daemon (`cdir daemon …`, cdir/syncd), with `cdir` as real processes: local
providers in folders of their own, files changed there behind cdir's back, and what the user
sees checked word for word. Nothing sleeps for timing: each test waits on a condition (bytes
in a folder, a line in the log, a registration in the catalog) with a deadline."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import pg_schema
from tests.processes import Cdir, no_traceback, wait_until

DEADLINE_S = 20.0
HOST = socket.gethostname()
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (INFO|WARNING|ERROR) .+")


@dataclass
class Home(Cdir):
    """`cdir` processes on one home, and a VDir of this test's own on its catalog: what is
    not under test (setting up providers, reading registrations) costs no process start."""

    v: Any = None

    def vdir(self) -> Any:
        if self.v is None:
            from cdir.config import Settings
            from cdir.vdir import VDir

            self.v = VDir(Settings(home=self.home, catalog_url=self.catalog_url))
        return self.v

    def close(self) -> None:
        super().close()
        if self.v is not None:
            self.v.close()


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[list[Home]]:
    """Homes; at teardown, whatever daemon a home still runs is killed by its pid."""
    made: list[Home] = []
    yield made
    for c in made:
        c.close()
        pid = pid_file(c)
        if pid and running(pid):
            os.kill(pid, signal.SIGKILL)


def new_home(homes: list[Home], path: Path, catalog_url: str | None = None) -> Home:
    c = Home(path, catalog_url)
    homes.append(c)
    return c


def two(homes: list[Home], tmp_path: Path, poll: str, catalog_url: str | None = None) -> Home:
    """A home with `laptop` and `archive` polled every `poll`, and /f.txt on both."""
    c = new_home(homes, tmp_path / "home", catalog_url)
    v = c.vdir()
    for name in ("laptop", "archive"):
        v.add_provider(name, "local", str(tmp_path / name), {})
        v.set_poll(name, poll)
        c.providers[name] = tmp_path / name
    (tmp_path / "f.txt").write_bytes(b"first version")
    v.put([str(tmp_path / "f.txt")], "/f.txt", progress=False)
    return c


def daemons(c: Home) -> list[tuple[int, bool]]:
    """(pid, alive) of each daemon registered in the catalog."""
    return [(d.pid, d.alive) for d in c.vdir().daemons()]


def start(c: Home) -> int:
    r = c.run("daemon", "start")
    m = re.fullmatch(r"cdir: daemon started \(pid (\d+)\); log: (.+)\n", r.stdout)
    assert m and m[2] == str(c.home / "daemon.log"), r.stdout
    assert r.stderr == ""
    return int(m[1])


def stop(c: Home, pid: int) -> None:
    r = c.run("daemon", "stop")
    assert (r.stdout, r.stderr) == (f"cdir: daemon stopped (pid {pid})\n", "")
    assert not running(pid)


def status(c: Home) -> dict[str, Any]:
    return json.loads(c.run("daemon", "status", "-o", "json").stdout)  # type: ignore[no-any-return]


def log_of(c: Home) -> str:
    path = c.home / "daemon.log"
    return path.read_text() if path.exists() else ""


def edit(c: Home, provider: str, data: bytes) -> None:
    """Change /f.txt inside a provider's folder, behind cdir's back."""
    (c.providers[provider] / "f.txt").write_bytes(data)


def holds(c: Home, provider: str, data: bytes) -> bool:
    try:
        return (c.providers[provider] / "f.txt").read_bytes() == data
    except FileNotFoundError:
        return False


def pid_file(c: Home) -> int | None:
    try:
        return int((c.home / "daemon.pid").read_text())
    except (OSError, ValueError):
        return None


def running(pid: int) -> bool:
    from cdir import pids

    return pids.alive(pid)


def refused(since: datetime, pid: int) -> str:
    when = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"cdir: error: a sync daemon already runs on this catalog (pid {pid} on {HOST} since "
        f"{when}); stop it with `cdir daemon stop`\n"
    )


# --- (a) (b) a change made behind cdir's back reaches the other provider ------------------------
def test_a_change_in_a_folder_reaches_the_other_provider(homes: list[Home], tmp_path: Path) -> None:
    c = two(homes, tmp_path, "1s")
    pid = start(c)
    edit(c, "laptop", b"edited on the laptop, behind cdir's back")
    wait_until(
        lambda: holds(c, "archive", b"edited on the laptop, behind cdir's back"),
        "the edit on archive",
        deadline_s=DEADLINE_S,
    )
    wait_until(
        lambda: (
            {(r.state, r.generation) for r in c.vdir().status("/f.txt")[0].replicas}
            == {("current", 2)}
        ),
        "both replicas current at generation 2",
        deadline_s=DEADLINE_S,
    )
    stop(c, pid)


def test_the_watcher_alone_brings_a_change_across(homes: list[Home], tmp_path: Path) -> None:
    """Polled every hour (a full pass every 10 h): only the watcher can start the pass."""
    c = two(homes, tmp_path, "1h")
    pid = start(c)
    wait_until(lambda: "pass all (full)" in log_of(c), "the first full pass", deadline_s=DEADLINE_S)
    edit(c, "archive", b"saved into the archive folder")
    wait_until(
        lambda: holds(c, "laptop", b"saved into the archive folder"),
        "the edit on laptop",
        deadline_s=DEADLINE_S,
    )
    watched = re.compile(r"INFO pass archive \(watch\): checked 1, changed 1, .*copied 1, failed 0")
    wait_until(lambda: watched.search(log_of(c)), "the watched pass's line", deadline_s=DEADLINE_S)
    stop(c, pid)


# --- (c) one daemon per SQLite catalog ----------------------------------------------------------
def test_cli_writes_while_the_daemon_runs_never_see_a_locked_catalog(
    homes: list[Home], tmp_path: Path
) -> None:
    """SQLite: the daemon passes every second (and on every change the puts make in the
    folders) while 12 `cdir put` run one after another; each waits for a pass holding the
    tree if it must, and none fails or says the database is locked."""
    c = two(homes, tmp_path, "1s")
    pid = start(c)
    try:
        for i in range(12):
            src = tmp_path / f"w{i}.txt"
            src.write_text(f"write {i}")
            edit(c, "laptop", f"laptop {i}".encode())  # something for each pass to do
            r = c.run("-q", "put", str(src), f"/w/w{i}.txt", code=None)
            no_traceback(r.stderr)
            assert (r.returncode, r.stderr) == (0, ""), r.stderr
        wait_until(lambda: holds(c, "archive", b"laptop 11"), "the last change on archive")
    finally:
        stop(c, pid)
    assert "locked" not in log_of(c) and "busy" not in log_of(c)


def test_a_second_daemon_on_one_sqlite_catalog_is_refused(
    homes: list[Home], tmp_path: Path
) -> None:
    c = two(homes, tmp_path, "1m")
    pid = start(c)
    [d] = c.vdir().daemons()
    line = refused(d.since, pid)
    for args in (["daemon", "start"], ["daemon", "run"]):  # refused before, and by, the child
        r = c.run(*args, code=1)
        assert (r.stdout, r.stderr) == ("", line)
    # another home on the same catalog: its child refuses, start reports the child's line
    other = new_home(homes, tmp_path / "other", f"sqlite:///{c.home / 'catalog.db'}")
    r = other.run("daemon", "start", code=1)
    assert (r.stdout, r.stderr) == ("", line)
    assert pid_file(c) == pid and pid_file(other) is None
    stop(c, pid)


# --- (d) a killed daemon is taken over -----------------------------------------------------------
def test_after_sigkill_a_new_daemon_takes_over_and_converges(
    homes: list[Home], tmp_path: Path
) -> None:
    c = two(homes, tmp_path, "1s")
    first = c.start("daemon", "run")  # a child of this test: reaped when killed
    wait_until(lambda: pid_file(c) == first.pid, "the first daemon up", first, DEADLINE_S)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert pid_file(c) == first.pid  # left behind, with its registration
    assert daemons(c) == [(first.pid, False)]  # taken for dead: its pid is gone
    edit(c, "laptop", b"changed while no daemon ran")
    pid = start(c)
    assert daemons(c) == [(pid, True)]
    wait_until(
        lambda: holds(c, "archive", b"changed while no daemon ran"),
        "the change across",
        deadline_s=DEADLINE_S,
    )
    stop(c, pid)


# --- (e) what stop, status and logs say -------------------------------------------------------------
def test_status_logs_and_stop_say_what_runs(homes: list[Home], tmp_path: Path) -> None:
    c = two(homes, tmp_path, "1s")
    r = c.run("daemon", "logs", code=1)
    assert r.stderr == (
        f"cdir: error: no daemon log at {c.home / 'daemon.log'} (a daemon run in the foreground "
        "logs to its standard error)\n"
    )
    c.vdir().set_poll("archive", "5m")
    pid = start(c)
    wait_until(lambda: c.vdir().recent_passes(), "a pass in the journal", deadline_s=DEADLINE_S)
    status_says_it_runs(c, pid)
    logs_say_what_it_did(c, pid)
    stop(c, pid)
    assert not (c.home / "daemon.pid").exists()
    assert log_of(c).splitlines()[-1].endswith("INFO daemon stopped")
    r = c.run("daemon", "stop", code=1)
    assert (r.stdout, r.stderr) == ("", "cdir: no daemon running\n")
    st = status(c)
    assert (st["running"], st["daemons"]) == (False, [])
    assert c.run("daemon", "status").stdout.startswith("daemon: not running\n\nname ")
    no_traceback(log_of(c))


def status_says_it_runs(c: Home, pid: int) -> None:
    st = status(c)
    assert st["running"] is True
    assert [(d["host"], d["pid"], d["alive"]) for d in st["daemons"]] == [(HOST, pid, True)]
    assert [(p["name"], p["poll"], p["poll_s"], p["watched"]) for p in st["providers"]] == [
        ("archive", "5m", 300, True),
        ("laptop", "1s", 1, True),
    ]
    assert st["passes"][0]["checked"] >= 1 and st["passes"][0]["path"] == "/"
    lines = c.run("daemon", "status").stdout.splitlines()
    assert re.fullmatch(
        rf"daemon: running, pid {pid} on {re.escape(HOST)} since \d{{4}}-\d\d-\d\d "
        r"\d\d:\d\d:\d\d UTC \(heartbeat \d+ s ago\)",
        lines[0],
    ), lines[0]
    assert lines[1:5] == [
        "",
        "name     kind   poll  watched",
        "archive  local  5m    yes",
        "laptop   local  1s    yes",
    ]
    assert lines[6] == "last passes:"
    heads = "at path checked changed new conflicts restored deleted copied"
    assert lines[7].split() == heads.split()


def logs_say_what_it_did(c: Home, pid: int) -> None:
    wait_until(lambda: "INFO pass laptop (poll)" in log_of(c), "a poll", deadline_s=DEADLINE_S)
    tail = c.run("daemon", "logs", "-n", "2").stdout.splitlines()
    assert len(tail) == 2 and all(LOG_LINE.fullmatch(x) for x in tail), tail
    head = log_of(c).splitlines()[0]
    assert head.endswith(
        f"INFO daemon started: pid {pid} on {HOST}, catalog sqlite:///{c.home / 'catalog.db'}"
    )


def test_sigterm_to_a_foreground_daemon_exits_0(homes: list[Home], tmp_path: Path) -> None:
    c = two(homes, tmp_path, "1s")
    proc = c.start("daemon", "run")
    wait_until(lambda: pid_file(c) == proc.pid, "the daemon up", proc, DEADLINE_S)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=DEADLINE_S)
    assert (proc.returncode, out) == (0, "")
    assert err.splitlines()[-1].endswith("INFO daemon stopped"), err
    assert "INFO stopping: the pass in progress finishes first" in err
    assert daemons(c) == [] and pid_file(c) is None


# --- (f) --poll -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("poll", "message"),
    [
        ("5x", "--poll takes seconds, or a number with s, m or h (90, 90s, 5m, 1h), not '5x'"),
        ("1.5m", "--poll takes seconds, or a number with s, m or h (90, 90s, 5m, 1h), not '1.5m'"),
        ("-5", "--poll takes seconds, or a number with s, m or h (90, 90s, 5m, 1h), not '-5'"),
        ("0", "--poll must be at least 1s, not '0'"),
    ],
)
def test_a_bad_poll_is_one_line_and_changes_nothing(
    cli: Any, tmp_path: Path, poll: str, message: str
) -> None:
    r = cli(
        "provider", "add", "p", "--kind", "local", "--root", str(tmp_path / "p"), "--poll", poll
    )
    assert (r.code, r.out, r.err) == (2, "", f"cdir: error: {message}\n")
    assert cli("provider", "list", "-o", "json").out == "[]\n"
    assert cli("provider", "add", "p", "--kind", "local", "--root", str(tmp_path / "p")).code == 0
    r = cli("provider", "set", "p", "--poll", poll)
    assert (r.code, r.out, r.err) == (2, "", f"cdir: error: {message}\n")


def test_poll_intervals_are_kept_shown_and_dropped(cli: Any, tmp_path: Path) -> None:
    root = tmp_path / "p"
    r = cli("provider", "add", "p", "--kind", "local", "--root", str(root), "--poll", "90")
    assert r.out == f"added provider p (local: {root})\n  poll = 90s\n"
    for given, shown in (("120s", "2m"), ("5m", "5m"), ("1h", "1h"), ("90S", "90s")):
        r = cli("provider", "set", "p", "--poll", given)
        assert r.out == f"updated provider p (local: {root})\n  poll = {shown}\n", r.err
    assert cli("provider", "show", "p").out.splitlines() == [
        "name  kind   root" + " " * (len(str(root)) - 2) + "priority  location  enabled  poll"
        "  options  secrets",
        f"p     local  {root}  0         -         True     90s",
    ]
    assert cli("provider", "list").out.splitlines()[1].split()[5] == "90s"
    cli("provider", "remove", "p")  # its interval goes with it
    cli("provider", "add", "p", "--kind", "local", "--root", str(root))
    [p] = json.loads(cli("daemon", "status", "-o", "json").out)["providers"]
    assert (p["poll"], p["default"]) == ("1m", True)


# --- (g) two daemons on one PostgreSQL catalog ---------------------------------------------------
def test_two_daemons_on_postgresql_copy_a_change_once(homes: list[Home], tmp_path: Path) -> None:
    with pg_schema() as url:
        a = two(homes, tmp_path, "1s", url)
        b = new_home(homes, tmp_path / "home-b", url)
        b.providers = a.providers
        pids = [start(a), start(b)]
        assert sorted(daemons(a)) == sorted((pid, True) for pid in pids)
        for c in (a, b):
            wait_until(
                lambda c=c: "pass all (full)" in log_of(c), "a first pass", deadline_s=DEADLINE_S
            )
        since = last_event(url)
        offsets = [len(log_of(c)) for c in (a, b)]
        edit(a, "laptop", b"one change, copied once")
        wait_until(
            lambda: holds(a, "archive", b"one change, copied once"),
            "the change across",
            deadline_s=DEADLINE_S,
        )
        inode = (a.providers["archive"] / "f.txt").stat().st_ino
        for c, at in zip((a, b), offsets, strict=True):  # each daemon passed over laptop since
            wait_until(
                lambda c=c, at=at: log_of(c)[at:].count("INFO pass laptop (") >= 2,
                "passes after the change",
                deadline_s=DEADLINE_S,
            )
        stop(a, pids[0])
        stop(b, pids[1])
        passes, copies = journal_since(url, since)
        assert sum(p["copied"] for p in passes) == 1, passes
        assert len(copies) == 1, copies  # the one batch of copies that wrote to archive
        assert (a.providers["archive"] / "f.txt").stat().st_ino == inode


def test_a_daemon_killed_mid_pass_leaves_its_work_to_the_other(
    homes: list[Home], tmp_path: Path
) -> None:
    """PostgreSQL, two daemons: 300 of 600 files rewritten in laptop's folder (half: under
    the safety rail); once 30 reached archive both daemons are frozen (SIGSTOP), the one
    whose pass holds the tree (its claim names it) is killed, the other goes on: it breaks
    the dead daemon's claim and brings every file across."""
    with pg_schema() as url:
        a = two(homes, tmp_path, "1s", url)
        src = tmp_path / "src"
        src.mkdir()
        for i in range(600):
            (src / f"g{i:03d}.bin").write_bytes(b"old")
        a.vdir().put([f"{src}/"], "/t", recursive=True, progress=False)
        b = new_home(homes, tmp_path / "home-b", url)
        b.providers = a.providers
        pids = [start(a), start(b)]
        for c in (a, b):
            wait_until(lambda c=c: "pass all (full)" in log_of(c), "a first pass")
        # the pass may end between "30 arrived" and the freeze: then the daemons go on and
        # the same is tried with new versions (a size of their own each time), a few times
        for attempt in range(5):
            size = 256 * 1024 + attempt
            new = {f"g{i:03d}.bin": os.urandom(size) for i in range(300)}
            for name, data in new.items():
                (a.providers["laptop"] / "t" / name).write_bytes(data)

            def on_archive(size: int = size, names: tuple[str, ...] = tuple(new)) -> int:
                # by size: each round's versions have a size of their own
                return sum(_size(a.providers["archive"] / "t" / n) == size for n in names)

            wait_until(lambda: on_archive() >= 30, "30 files on archive", deadline_s=60)
            for pid in pids:
                os.kill(pid, signal.SIGSTOP)
            holders = {r.pid for r in query(url, "SELECT pid FROM lease WHERE command = 'sync /'")}
            if holders:
                break
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
            wait_until(lambda: on_archive() == 300, "that round on archive", deadline_s=60)
        assert len(holders) == 1 and holders <= set(pids), holders
        [dead] = holders
        [survivor] = [p for p in pids if p != dead]
        os.kill(dead, signal.SIGKILL)
        os.kill(survivor, signal.SIGCONT)
        wait_until(lambda: on_archive() == len(new), "every file on archive", deadline_s=60)
        stop(a if survivor == pids[0] else b, survivor)
        for n, data in new.items():
            assert (a.providers["archive"] / "t" / n).read_bytes() == data, n


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return -1


def last_event(url: str) -> int:
    return max((i for i, _ in events(url)), default=0)


def journal_since(url: str, since: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The sync passes, and the batches of copies to archive, journaled after `since`."""
    found = [d for i, d in events(url) if i > since]
    archive = provider_id(url, "archive")
    return [d for d in found if "checked" in d], [d for d in found if d.get("to") == [archive]]


def events(url: str) -> list[tuple[int, dict[str, Any]]]:
    return [
        (r.id, r.detail) for r in query(url, "SELECT id, detail FROM event WHERE action = 'sync'")
    ]


def provider_id(url: str, name: str) -> int:
    [r] = query(url, f"SELECT id FROM provider WHERE name = '{name}'")
    return int(r.id)


def query(url: str, sql: str) -> list[Any]:
    from sqlalchemy import text

    from cdir.catalog import Database

    db = Database(url)
    try:
        with db.transaction() as s:
            return list(s.execute(text(sql)).all())
    finally:
        db.close()


# --- the parts, in process ----------------------------------------------------------------------
def test_the_watcher_ignores_upload_temporaries_and_reads() -> None:
    from watchdog.events import (
        DirModifiedEvent,
        FileClosedNoWriteEvent,
        FileCreatedEvent,
        FileMovedEvent,
        FileOpenedEvent,
    )

    from cdir.syncd.watcher import _Handler

    class Count:
        n = 0

        def poke(self) -> None:
            self.n += 1

    count = Count()
    h = _Handler(count)  # type: ignore[arg-type]
    for ignored in (
        FileCreatedEvent("/r/d/.cdir-tmp-42-host-abc"),
        FileOpenedEvent("/r/d/f.txt"),
        FileClosedNoWriteEvent("/r/d/f.txt"),
        DirModifiedEvent("/r/d"),
    ):
        h.dispatch(ignored)
    assert count.n == 0
    h.dispatch(FileMovedEvent("/r/d/.cdir-tmp-42-host-abc", "/r/d/f.txt"))  # a new file in place
    h.dispatch(FileCreatedEvent("/r/d/g.txt"))
    assert count.n == 2


def test_debounce_fires_once_after_the_last_poke() -> None:
    from cdir.syncd.watcher import Debounce

    fired = threading.Event()
    calls: list[int] = []
    d = Debounce(0.05, lambda: (calls.append(1), fired.set()))
    for _ in range(5):
        d.poke()
    assert fired.wait(DEADLINE_S)
    assert calls == [1]
    d.cancel()


def test_a_failing_provider_backs_off_up_to_the_cap(home: Path, tmp_path: Path) -> None:
    """Doubling, jittered delays (half to all of 2 s, 4 s, 8 s, …), never past max_backoff;
    a pass that succeeds resets it."""
    from datetime import UTC, timedelta

    from cdir.config import Settings
    from cdir.syncd.passes import Passes
    from cdir.syncd.schedule import Schedule
    from cdir.syncd.settings import DaemonSettings
    from cdir.syncd.watcher import Watchers
    from cdir.vdir import VDir

    v = VDir(Settings())
    v.add_provider("x", "local", str(tmp_path / "x"), {})
    v.set_poll("x", "1h")
    s = Schedule(v, Passes(v), Watchers(1.0, lambda n: None), DaemonSettings(max_backoff=20))
    s.refresh()
    for n, top in enumerate([2, 4, 8, 16, 20, 20], 1):
        before = datetime.now(UTC)
        s._settle(["x"], {"x"})
        when = s.scheduler.get_job("poll:x").next_run_time
        assert s.failures["x"] == n
        assert before + timedelta(seconds=top / 2) <= when
        assert when <= datetime.now(UTC) + timedelta(seconds=top)
    s._settle(["x"], set())
    assert "x" not in s.failures
    s.watchers.stop()
    v.close()
