"""Faults, with `cdir` as real processes: several at once on one catalog, real signals
(SIGINT, SIGTERM; SIGSTOP/SIGCONT to hold a command at a chosen point), provider roots that
vanished. Local providers in folders of their own; nothing sleeps for timing — each test
waits on a condition (files seen below a provider folder) with a deadline. Each test checks
the exact words a user sees."""

from __future__ import annotations

import filecmp
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PG_URL, pg_schema
from tests.processes import (
    DEADLINE_S,
    INTERRUPTED,
    TMP_PREFIX,
    Cdir,
    Summary,
    catalog_rows,
    count_files,
    files_below,
    finish,
    inconsistencies,
    make_files,
    summary,
    wait_until,
)

QUICK_S = 10.0  # an interrupted command is gone within this
BOTH = ("laptop", "archive")


def missing_root(name: str, root: Path) -> str:
    return (
        f"{name}: root {root} is missing (an unmounted disk?); not recreated — mount it, "
        "or re-add the provider"
    )


@pytest.fixture
def make_cdir() -> Iterator[type[Cdir]]:
    """Cdir, with what each one started ended at teardown."""
    made: list[Cdir] = []

    class Made(Cdir):
        def __post_init__(self) -> None:
            made.append(self)

    yield Made
    for c in made:
        c.close()


@pytest.fixture
def two(make_cdir: type[Cdir], tmp_path: Path) -> Cdir:
    """A home on SQLite with local providers `laptop` and `archive`."""
    c = make_cdir(tmp_path / "home")
    for name in BOTH:
        c.add_local(name, tmp_path / name)
    return c


def current_on(c: Cdir, name: str) -> set[str]:
    """Remote paths of `name`'s current replicas of live entries."""
    return {
        r.remote_path
        for r in catalog_rows(c)
        if r.provider == name and r.alive and r.state == "current" and r.held == r.generation
    }


def sizes_below(root: Path) -> Iterator[int]:
    """Sizes of the files below `root` (those removed while looking are left out)."""
    for rel in files_below(root):
        try:
            yield (root / rel).stat().st_size
        except FileNotFoundError:
            continue


# --- 1. puts of one tree at once ------------------------------------------------------------
@pytest.mark.parametrize("procs", [2, 4])
def test_puts_of_one_tree_at_once_merge(
    make_cdir: type[Cdir], tmp_path: Path, catalog_url: str, procs: int
) -> None:
    """`procs` times `cdir put big/tree/ /same -r --to laptop,archive` started together on one
    catalog: every one succeeds, the catalog has one entry per path, every replica current
    at generation 1, and the folders hold exactly the tree."""
    c = make_cdir(tmp_path / "home", catalog_url)
    for name in BOTH:
        c.add_local(name, tmp_path / name)
    files = make_files(tmp_path / "big" / "tree", 700, size=300, dirs=7)  # two batches of 500
    puts = [
        c.start("put", "big/tree/", "/same", "-r", "--to", "laptop,archive") for _ in range(procs)
    ]
    for p in puts:
        code, out, err = finish(p, 120)
        assert (code, err) == (0, ""), (out, err)
        s = summary(out)
        assert (s.action, s.files + s.skipped, s.failed) == ("put", len(files), 0)

    st = c.status("/same")
    assert sorted(st) == sorted(f"/same/{rel}" for rel in files)
    for e in st.values():
        assert e["generation"] == 1
        assert {n: (r["state"], r["generation"]) for n, r in e["replicas"].items()} == {
            "laptop": ("current", 1),
            "archive": ("current", 1),
        }
    tree = c.tree("/")
    assert len(tree) == len(set(tree))  # each directory once as well
    dirs = {f"/same/{rel.rsplit('/', 1)[0]}/" for rel in files}
    dirs |= {d.rsplit("/", 2)[0] + "/" for d in dirs}
    assert sorted(tree) == sorted({"/same/", *dirs, *(f"/same/{rel}" for rel in files)})
    for name in BOTH:
        assert set(files_below(tmp_path / name)) == {f"same/{rel}" for rel in files}
    assert inconsistencies(c, lambda r: files[r.path.removeprefix("/same/")]) == []


# --- 2. a signal during a 3,000-file put ------------------------------------------------------
@pytest.mark.parametrize(
    ("sig", "seen"),
    [
        (signal.SIGINT, 1),
        (signal.SIGINT, 700),
        (signal.SIGINT, 1800),
        (signal.SIGTERM, 300),
        (signal.SIGTERM, 1500),
    ],
    ids=["SIGINT-1", "SIGINT-700", "SIGINT-1800", "SIGTERM-300", "SIGTERM-1500"],
)
def test_a_signal_during_a_big_put(two: Cdir, tmp_path: Path, sig: int, seen: int) -> None:
    """Ctrl-C (or SIGTERM) once `seen` files landed on laptop: the command lets what is in
    flight finish, records it, says what it did and exits 130 at once. Every file in a
    provider folder is then a current replica the catalog knows, no temporary is left, and
    the same command again puts exactly the rest."""
    files = make_files(tmp_path / "src", 3000)
    args = ("put", f"{tmp_path / 'src'}/", "/tree", "-r", "--to", "laptop,archive")
    put = two.start(*args)
    wait_until(lambda: count_files(tmp_path / "laptop") >= seen, f"{seen} files on laptop", put)
    sent = time.monotonic()
    put.send_signal(sig)
    code, out, err = finish(put, QUICK_S)
    assert time.monotonic() - sent < QUICK_S
    assert code == 130
    assert err.splitlines() == [INTERRUPTED]
    first = summary(out)
    assert (first.action, first.skipped, first.failed) == ("put", 0, 0)
    assert first.files < len(files)  # it was stopped

    rows = catalog_rows(two)
    assert {r.state for r in rows} <= {"current"}  # nothing in error, pending or stale
    for name in BOTH:  # every file on a provider is a current replica, and no temporary
        assert set(files_below(tmp_path / name)) == current_on(two, name)
    complete = {r.path for r in rows if r.provider == "laptop"} & {
        r.path for r in rows if r.provider == "archive"
    }
    assert first.files == len(complete)  # the summary counts what a re-run skips
    assert inconsistencies(two, lambda r: files[r.path.removeprefix("/tree/")]) == []

    again = two.run(*args)
    assert again.stderr == ""
    assert summary(again.stdout) == Summary("put", len(files) - first.files, first.files, 0)
    for name in BOTH:
        assert current_on(two, name) == {f"tree/{rel}" for rel in files}
    assert inconsistencies(two, lambda r: files[r.path.removeprefix("/tree/")]) == []


# --- 3. a signal during one big file ----------------------------------------------------------
def test_a_signal_during_one_big_file(two: Cdir, tmp_path: Path) -> None:
    """Ctrl-C while a 300 MiB file is on its way to two providers: the copies in flight
    finish and are recorded (exit 130); a copy that did not finish leaves no replica and no
    temporary. The same command again uploads nothing that finished."""
    big = tmp_path / "big.bin"
    with big.open("wb") as f:
        for _ in range(300):
            f.write(os.urandom(1 << 20))
    args = ("put", str(big), "/big.bin", "--to", "laptop,archive")
    put = two.start(*args)

    def uploading() -> bool:
        return any(TMP_PREFIX in rel for rel in files_below(tmp_path / "laptop"))

    wait_until(uploading, "an upload in flight to laptop", put)
    put.send_signal(signal.SIGINT)
    code, out, err = finish(put, QUICK_S)
    assert code == 130
    assert err.splitlines() == [INTERRUPTED]
    e = two.status("/big.bin")["/big.bin"]
    done = {n for n, r in e["replicas"].items() if r["state"] == "current"}
    assert set(e["replicas"]) == done  # a copy that did not finish has no replica at all
    assert summary(out) == Summary("put", int(done == set(BOTH)), 0, 0)
    for name in BOTH:
        here = set(files_below(tmp_path / name))
        assert here == ({"big.bin"} if name in done else set())
        if name in done:
            assert filecmp.cmp(big, tmp_path / name / "big.bin", shallow=False)

    before = {n: r["fingerprint"] for n, r in e["replicas"].items()}
    again = two.run(*args)
    assert summary(again.stdout) == Summary(
        "put", int(done != set(BOTH)), int(done == set(BOTH)), 0
    )
    e = two.status("/big.bin")["/big.bin"]
    assert {n: r["state"] for n, r in e["replicas"].items()} == dict.fromkeys(BOTH, "current")
    for name in done:  # not uploaded again: the very same file (inode, ctime) is there
        assert e["replicas"][name]["fingerprint"] == before[name]


# --- 5. a put that fails on every target --------------------------------------------------
@pytest.mark.parametrize("fault", ["vanished", "a file"])
def test_a_put_that_fails_everywhere_leaves_the_catalog_as_it_was(
    two: Cdir, tmp_path: Path, fault: str
) -> None:
    """Both providers' roots are gone (an unmounted disk) or a file stands in their place:
    the put fails on every target, each lane after one file (the rest are not tried), exit 1,
    and the catalog is as it was — no directory, no entry; no root recreated."""
    two.run("mkdir", "/keep")
    files = make_files(tmp_path / "src", 20)
    causes = {}
    for name in BOTH:
        root = tmp_path / name
        root.rmdir()
        if fault == "a file":
            root.write_text("not a folder")
            causes[name] = (
                f"{name}: root {root} is not a directory; not replaced — move what is there, "
                "or re-add the provider"
            )
        else:
            causes[name] = missing_root(name, root)

    r = two.run("put", str(tmp_path / "src"), "/new", "-r", "--to", "laptop,archive", code=1)
    assert summary(r.stdout) == Summary("put", 0, 0, len(files))
    assert "  archive: 0 file(s), 20 failed, laptop: 0 file(s), 20 failed" in r.stdout
    shown = r.stderr.splitlines()
    for name, cause in causes.items():  # the one file that was tried, then one line for the rest
        assert shown.count(f"cdir: error: {cause}") == 1
        [rest] = [x for x in shown if x.startswith(f"cdir: error: {name} is down (")]
        assert rest == f"cdir: error: {name} is down ({cause}): {len(files) - 1} file(s) not tried"
    assert len(shown) == 4

    assert two.tree("/") == ["/keep/"]
    assert two.status("/") == {}
    for name in BOTH:
        root = tmp_path / name
        assert (root.read_text() == "not a folder") if fault == "a file" else not root.exists()


# --- 6. one provider's root vanished ------------------------------------------------------------
def test_a_vanished_root_fails_that_provider_only(two: Cdir, tmp_path: Path) -> None:
    laptop = tmp_path / "laptop"
    laptop.rmdir()
    data = tmp_path / "data.csv"
    data.write_bytes(b"a,b\n1,2\n")
    args = ("put", str(data), "/data.csv", "--to", "laptop,archive")
    r = two.run(*args, code=1)
    assert summary(r.stdout) == Summary("put", 1, 0, 1)
    cause = missing_root("laptop", laptop)
    assert r.stderr.splitlines() == [f"cdir: error: {cause}"]
    assert not laptop.exists()  # not recreated on the disk below the mount point

    e = two.status("/data.csv")["/data.csv"]
    assert {
        n: (x["state"], x["generation"], x["last_error"]) for n, x in e["replicas"].items()
    } == {
        "archive": ("current", 1, None),
        "laptop": ("error", 0, cause),
    }
    table = two.run("status", "/data.csv").stdout.splitlines()
    assert [line.split()[:5] for line in table[1:]] == [
        ["/data.csv", "1", "archive", "current", "1"],
        ["/data.csv", "1", "laptop", "error", "0"],
    ]
    assert table[2].endswith(cause)
    assert (tmp_path / "archive" / "data.csv").read_bytes() == data.read_bytes()

    laptop.mkdir()  # the disk is back: the same command finishes the job
    again = two.run(*args)
    assert summary(again.stdout) == Summary("put", 1, 0, 0)
    e = two.status("/data.csv")["/data.csv"]
    assert {n: x["state"] for n, x in e["replicas"].items()} == dict.fromkeys(BOTH, "current")
    assert (laptop / "data.csv").read_bytes() == data.read_bytes()


# --- races between two commands on one tree ---------------------------------------------------
def _held(
    c: Cdir, args: tuple[str, ...], ready: Callable[[], bool], other: tuple[str, ...]
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """Start `args` and stop it (SIGSTOP) once `ready()` holds; start `other`, which must
    say it waits for the first (the first holds the tree); let the first go on (SIGCONT) and
    wait for both: their (code, out, err)."""
    first = c.start(*args)
    wait_until(ready, "the first command half way", first)
    first.send_signal(signal.SIGSTOP)
    try:
        second = c.start(*other)
        said = first_line(second)
    finally:
        first.send_signal(signal.SIGCONT)
    verb = args[0]
    assert re.fullmatch(
        rf"cdir: waiting for `{verb} /t[^`]*` \(pid {first.pid} on \S+\) to finish with /\w+\n",
        said,
    ), said
    code, out, err = finish(second)
    return finish(first), (code, out, said + err)


def first_line(proc: subprocess.Popen[str]) -> str:
    """The first line `proc` writes to stderr (read unbuffered, so `finish` gets the rest)."""
    assert proc.stderr is not None
    fd, got = proc.stderr.fileno(), b""
    end = time.monotonic() + DEADLINE_S
    while not got.endswith(b"\n"):
        wait = end - time.monotonic()
        assert wait > 0 and select.select([fd], [], [], wait)[0], f"no line on stderr: {got!r}"
        chunk = os.read(fd, 1)
        assert chunk, f"stderr closed after {got!r}"
        got += chunk
    return got.decode()


def test_two_mv_of_one_tree_at_once(two: Cdir, tmp_path: Path) -> None:
    """The second `mv /t /moved` starts while the first is half way: it waits until the
    first has finished, then finds no /t and says so. Every replica is current at its new
    path."""
    files = make_files(tmp_path / "src", 400, size=10)
    two.run("put", f"{tmp_path / 'src'}/", "/t", "-r")
    (code, out, err), (code2, _, err2) = _held(
        two,
        ("mv", "/t", "/moved"),
        lambda: count_files(tmp_path / "laptop" / "moved") >= 100,
        ("mv", "/t", "/moved"),
    )
    assert (code, err) == (0, ""), (out, err)
    assert summary(out) == Summary("mv", len(files), 0, 0)
    assert (code2, err2.splitlines()[1:]) == (1, ["cdir: error: no such file or directory: /t"])
    tree = two.tree("/")
    assert "/moved/" in tree and not [p for p in tree if p.startswith("/t/")]
    for name in BOTH:
        assert current_on(two, name) == {f"moved/{rel}" for rel in files}
        assert set(files_below(tmp_path / name)) == {f"moved/{rel}" for rel in files}
    assert inconsistencies(two, lambda r: files[r.path.removeprefix("/moved/")]) == []


@pytest.mark.parametrize("other", [("rm", "-r", "/t"), ("mv", "/t", "/moved")], ids=["rm", "mv"])
def test_a_command_on_the_tree_a_put_is_writing(
    two: Cdir, tmp_path: Path, other: tuple[str, ...]
) -> None:
    """What the stress test used to hit: a put of a new version of 400 files is held
    (SIGSTOP) once half of them landed on laptop; `rm -r` (or `mv`) of the tree waits for
    it (it used to delete or move files the put then recorded current), then runs. The
    put finishes whole; the rm (mv) then removes (moves) all of it; the catalog and the
    folders agree."""
    src = tmp_path / "src"
    files = make_files(src, 400, size=1)
    args = ("put", f"{src}/", "/t", "-r", "--to", "laptop,archive")
    two.run(*args)
    for f in src.rglob("*.bin"):  # version 2: two bytes, "yy"
        f.write_bytes(b"yy")

    def half() -> bool:  # 200 files of version 2 on laptop
        return sum(size == 2 for size in sizes_below(tmp_path / "laptop" / "t")) >= 200

    (code, out, err), (code2, _, err2) = _held(two, args, half, other)
    assert (code, err) == (0, "")
    assert summary(out) == Summary("put", len(files), 0, 0)
    assert (code2, err2.count("\n")) == (0, 1), err2
    left = {"rm": set(), "mv": {f"moved/{rel}" for rel in files}}[other[0]]
    for name in BOTH:
        assert set(files_below(tmp_path / name)) == left
        assert current_on(two, name) == left
    assert inconsistencies(two, lambda r: b"yy" if r.size == 2 else None) == []


# --- the catalog under writers that lock rows in opposite orders --------------------------------
def test_a_deadlock_between_two_writers_runs_the_loser_again() -> None:
    """PostgreSQL: `Database.write` holds row a and wants row b while another writer holds b
    and wants a. The server picks this writer as the victim (the other waits longer before
    it checks for deadlocks) and rolls it back; that is a Conflict, so the work runs again,
    after the other committed, and succeeds. (It was "lost the catalog …: deadlock detected"
    and the command failed: seen with four `cdir put` of one tree at once.)"""
    import threading

    import psycopg
    from sqlalchemy import text

    from cdir.catalog import Database, Provider

    with pg_schema() as url:
        db = Database(url)
        db.write(
            lambda s: s.add_all(
                [Provider(name=n, kind="memory", root="m", priority=0) for n in ("a", "b")]
            )
        )
        schema = url.rsplit("%3D", 1)[1]
        other_has_b = threading.Event()
        other_done: list[BaseException | None] = []

        def other() -> None:
            try:
                with psycopg.connect(PG_URL) as conn:
                    conn.execute(f"SET search_path = {schema}")
                    conn.execute("SET deadlock_timeout = '20s'")  # the other checks late
                    conn.execute("UPDATE provider SET priority = 2 WHERE name = 'b'")
                    other_has_b.set()
                    conn.execute("UPDATE provider SET priority = 2 WHERE name = 'a'")
                other_done.append(None)
            except BaseException as exc:
                other_done.append(exc)

        def waiting_on_a_lock() -> bool:
            with psycopg.connect(PG_URL, autocommit=True) as admin:
                row = admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'UPDATE provider SET priority = 2%'"
                ).fetchone()
            return bool(row and row[0])

        attempts: list[int] = []
        thread = threading.Thread(target=other)

        def work(s: Any) -> None:
            attempts.append(1)
            s.execute(text("UPDATE provider SET priority = 1 WHERE name = 'a'"))
            if len(attempts) == 1:
                thread.start()
                assert other_has_b.wait(DEADLINE_S)
                wait_until(waiting_on_a_lock, "the other writer waiting for row a")
            s.execute(text("UPDATE provider SET priority = 1 WHERE name = 'b'"))

        db.write(work)
        thread.join(DEADLINE_S)
        assert other_done == [None]
        assert len(attempts) == 2  # rolled back once as the deadlock's victim, then run again
        with db.transaction() as s:
            got = dict(s.execute(text("SELECT name, priority FROM provider")).all())
        assert got == {"a": 1, "b": 1}  # this writer's second attempt came after the other
        db.close()


def test_a_deadlock_is_a_one_line_conflict() -> None:
    from sqlalchemy.exc import OperationalError

    from cdir.catalog.db import translate_db_error
    from cdir.errors import Conflict

    class Orig(Exception):
        sqlstate = "40P01"

        def __str__(self) -> str:
            return "deadlock detected\nDETAIL:  Process 1 waits for ShareLock on transaction 2"

    err = translate_db_error(OperationalError("UPDATE …", {}, Orig()), "postgresql://x/y")
    assert isinstance(err, Conflict)
    assert (
        str(err) == "the catalog changed under this command (another writer won): deadlock detected"
    )


def test_a_command_that_waits_too_long_gives_up_in_one_line(two: Cdir, tmp_path: Path) -> None:
    """With CDIR_LEASE_WAIT=0, an rm of the tree a (stopped) put is writing gives up at once:
    one line naming the put, exit 1, nothing removed; the put then finishes."""
    make_files(tmp_path / "src", 400, size=10)
    put = two.start("put", f"{tmp_path / 'src'}/", "/t", "-r")
    wait_until(lambda: count_files(tmp_path / "laptop" / "t") >= 100, "100 files on laptop", put)
    put.send_signal(signal.SIGSTOP)
    try:
        rm = subprocess.run(
            two.argv("rm", "-r", "/t"),
            env=two.env | {"CDIR_LEASE_WAIT": "0"},
            capture_output=True,
            text=True,
            timeout=DEADLINE_S,
        )
    finally:
        put.send_signal(signal.SIGCONT)
    assert rm.returncode == 1
    assert re.fullmatch(
        rf"cdir: error: /t is busy: `put /t` \(pid {put.pid} on \S+\) is working on it; try "
        r"again when it has finished \(waited 0 s, see CDIR_LEASE_WAIT\)\n",
        rm.stderr,
    ), rm.stderr
    code, out, err = finish(put)
    assert (code, err, summary(out)) == (0, "", Summary("put", 400, 0, 0))


def test_rm_of_the_tree_a_mv_is_moving(two: Cdir, tmp_path: Path) -> None:
    """`mv /t /moved` of 400 files is held (SIGSTOP) once 100 of them are at moved/ on
    laptop; `rm -r /t` waits for it (it used to leave the copies the mv had made untracked),
    then finds no /t. The mv finishes whole."""
    files = make_files(tmp_path / "src", 400, size=10)
    two.run("put", f"{tmp_path / 'src'}/", "/t", "-r")
    (code, out, err), (code2, _, err2) = _held(
        two,
        ("mv", "/t", "/moved"),
        lambda: count_files(tmp_path / "laptop" / "moved") >= 100,
        ("rm", "-r", "/t"),
    )
    assert (code, err) == (0, "")
    assert summary(out) == Summary("mv", len(files), 0, 0)
    assert (code2, err2.splitlines()[1:]) == (1, ["cdir: error: no such file or directory: /t"])
    for name in BOTH:
        assert current_on(two, name) == {f"moved/{rel}" for rel in files}
    assert inconsistencies(two, lambda r: files.get(r.path.split("/", 2)[-1])) == []


# --- SIGKILL: nothing can be held --------------------------------------------------------------
def test_a_killed_put_converges_when_run_again(two: Cdir, tmp_path: Path) -> None:
    """SIGKILL half way through a 3,000-file put: the batches recorded so far stay, the
    files written since are on the providers but unknown to the catalog, and an upload in
    flight leaves its temporary. The same command again puts what is not recorded and the
    catalog and the folders agree, and the temporaries the killed put left are gone (the
    re-run writes into their folders and removes what a dead process left there)."""
    files = make_files(tmp_path / "src", 3000)
    args = ("put", f"{tmp_path / 'src'}/", "/tree", "-r", "--to", "laptop,archive")
    put = two.start(*args)
    wait_until(lambda: count_files(tmp_path / "laptop") >= 1200, "1200 files on laptop", put)
    put.send_signal(signal.SIGKILL)
    code, out, err = finish(put, QUICK_S)
    assert (code, out, err) == (-signal.SIGKILL, "", "")
    recorded = len({r.path for r in catalog_rows(two)})
    assert recorded % 500 == 0 and recorded < len(files)  # whole batches only

    again = two.run(*args)
    assert again.stderr == ""
    s = summary(again.stdout)
    assert s == Summary("put", len(files) - recorded, recorded, 0)  # a batch is whole files
    for name in BOTH:
        assert current_on(two, name) == {f"tree/{rel}" for rel in files}
    assert inconsistencies(two, lambda r: files[r.path.removeprefix("/tree/")]) == []
