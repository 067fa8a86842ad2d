"""The catalog's one transactional helper (`Database.transaction` / `Database.write`) and how
it turns database errors into cdir's: a held write lock, a unique-key race between writers,
a lost or unreachable PostgreSQL server. Real parts only: a SQLite file locked by another
process, the PostgreSQL server of the test suite, a TCP proxy in front of it that is cut."""

from __future__ import annotations

import contextlib
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlmodel import Session

from cdir.catalog import Database, Provider, writes
from cdir.catalog import db as catalog_db
from cdir.config import Settings
from cdir.errors import CatalogError, Conflict
from tests.conftest import PG_URL, pg_schema

DEADLINE_S = 30.0

# Holds the write lock of the SQLite file argv[1] until its stdin is closed.
LOCK_HOLDER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


@contextlib.contextmanager
def write_lock_held(db_file: Path) -> Iterator[None]:
    """Another process holding `db_file`'s write lock for as long as the block runs."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(db_file)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "locked"  # it holds the lock from here on
        yield
    finally:
        holder.stdin.close()
        assert holder.wait(DEADLINE_S) == 0


def one_line(exc: pytest.ExceptionInfo[Exception]) -> str:
    message = str(exc.value)
    assert message and "\n" not in message
    return message


def count(db: Database, model: Any) -> int:
    with db.transaction() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


# --- a write lock held too long -----------------------------------------------------------
def test_busy_timeout_is_read_when_an_engine_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_db, "BUSY_TIMEOUT_S", 7)
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 7000
    db.close()


def test_a_held_write_lock_is_a_one_line_busy_error_in_the_cli(
    cli: Any, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("mkdir", "/before").code == 0  # the catalog exists (in WAL mode)
    monkeypatch.setattr(catalog_db, "BUSY_TIMEOUT_S", 1)
    with write_lock_held(home / "catalog.db"):
        t0 = time.monotonic()
        r = cli("mkdir", "/x")
        waited = time.monotonic() - t0
        assert cli("ls", "/").out.split() == ["before/"]  # readers are not blocked (WAL)
    assert r.code == 1
    assert r.err.splitlines() == [
        "cdir: error: the catalog is busy: another cdir process held it for over 1 s; try again"
    ]
    assert "Traceback" not in r.err and r.out == ""
    assert 1 <= waited < DEADLINE_S  # it waited for the lock, then gave up
    # once the lock is released the same command works
    assert cli("mkdir", "/x").code == 0
    assert cli("ls", "/").out.split() == ["before/", "x/"]


def test_a_held_write_lock_is_a_retryable_catalog_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_db, "BUSY_TIMEOUT_S", 1)
    db = Database(f"sqlite:///{tmp_path / 'c.db'}")
    with write_lock_held(tmp_path / "c.db"), pytest.raises(CatalogError) as err:
        db.write(lambda s: s.add(Provider(name="p", kind="memory", root="m")))
    assert err.value.retryable
    assert one_line(err).startswith("the catalog is busy: ")
    assert count(db, Provider) == 0
    db.close()


# --- unique-key races ----------------------------------------------------------------------
def test_an_integrity_error_through_transaction_is_a_one_line_conflict(catalog_url: str) -> None:
    db = Database(catalog_url)
    with db.transaction(write=True) as s:
        s.add(Provider(name="dup", kind="memory", root="m"))
    with pytest.raises(Conflict) as err, db.transaction(write=True) as s:
        s.add(Provider(name="other", kind="memory", root="m"))
        s.flush()
        s.add(Provider(name="dup", kind="memory", root="m"))
    message = one_line(err)
    assert message.startswith("the catalog changed under this command (another writer won): ")
    assert not err.value.retryable
    # rolled back as a whole: the first insert of that transaction is gone too
    with db.transaction() as s:
        assert list(s.execute(select(Provider.name)).scalars()) == ["dup"]
    db.close()


def test_write_runs_the_work_again_after_losing_a_race() -> None:
    """PostgreSQL: the first attempt loses a unique-key race (another writer commits the row
    after this one looked); the second attempt re-reads and merges with it. (SQLite writers
    take the write lock up front, so they cannot race: see the put race below.)"""
    with pg_schema() as url:
        db, other = Database(url), Database(url)
        attempts: list[int] = []

        def work(s: Session) -> int:
            attempts.append(1)
            found = s.execute(select(Provider.id).where(Provider.name == "p")).scalar()
            if found is not None:
                return int(found)
            if len(attempts) == 1:  # another writer wins in between
                other.write(lambda o: o.add(Provider(name="p", kind="memory", root="m")))
            row = Provider(name="p", kind="memory", root="m")
            s.add(row)
            s.flush()
            assert row.id is not None
            return row.id

        pid = db.write(work)
        assert len(attempts) == 2
        with db.transaction() as s:
            assert list(s.execute(select(Provider.id).where(Provider.name == "p")).scalars()) == [
                pid
            ]
        db.close()
        other.close()


def test_write_gives_up_after_its_attempts(catalog_url: str) -> None:
    db = Database(catalog_url)
    db.write(lambda s: s.add(Provider(name="p", kind="memory", root="m")))
    calls: list[int] = []

    def always_conflicting(s: Session) -> None:
        calls.append(1)
        s.add(Provider(name="p", kind="memory", root="m"))
        s.flush()

    with pytest.raises(Conflict) as err:
        db.write(always_conflicting, attempts=3)
    assert len(calls) == 3
    one_line(err)
    db.close()


def test_two_puts_of_one_file_at_once_both_succeed_and_merge(
    home: Path, catalog_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers (separate engines, as two processes have) put the same file to the same
    path at the same time. On PostgreSQL both read "no entry" before either inserts, so the
    second hits the unique key, Database.write runs it again and it merges; on SQLite the
    write lock is taken up front, so the second waits and merges at once. Either way: both
    succeed, one entry, every replica current at generation 1."""
    from cdir.vdir import VDir

    src = tmp_path / "data.csv"
    src.write_bytes(b"a,b\n1,2\n")
    vdirs = [VDir(Settings(catalog_url=catalog_url)) for _ in range(2)]
    for name in ("laptop", "archive"):
        vdirs[0].add_provider(name, "local", str(tmp_path / name), {})
    is_pg = vdirs[0].db.is_postgres

    in_write = threading.Barrier(2, timeout=DEADLINE_S)  # both writers are in Database.write
    read_done = threading.Barrier(2, timeout=DEADLINE_S)  # both read "no entry" (PostgreSQL)
    first = threading.local()
    real_write, real_entries_at = Database.write, writes.entries_at
    recorded: list[str] = []
    real_record = writes.record_versions

    def write(self: Database, work: Callable[[Session], Any], attempts: int = 5) -> Any:
        if not getattr(first, "write", False):
            first.write = True
            in_write.wait()
        return real_write(self, work, attempts)

    def entries_at(s: Session, paths: Any) -> Any:
        paths = list(paths)
        found = real_entries_at(s, paths)
        if is_pg and paths == ["/data.csv"] and not getattr(first, "read", False):
            first.read = True
            read_done.wait()
        return found

    def record_versions(s: Session, versions: Any, action: str, actor: str) -> Any:
        recorded.append(threading.current_thread().name)
        return real_record(s, versions, action, actor)

    monkeypatch.setattr(Database, "write", write)
    monkeypatch.setattr(writes, "entries_at", entries_at)
    monkeypatch.setattr(writes, "record_versions", record_versions)

    reports: dict[int, Any] = {}
    errors: list[BaseException] = []

    def put(i: int) -> None:
        try:
            reports[i] = vdirs[i].put([str(src)], "/data.csv", progress=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(i,), name=f"w{i}") for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S)
    assert not any(t.is_alive() for t in threads) and errors == []
    for r in reports.values():
        assert (r.files, r.failed, r.errors) == (1, 0, [])
    # PostgreSQL: one writer lost the race and ran again; SQLite: no race, no retry
    assert len(recorded) == (3 if is_pg else 2)
    assert sorted(set(recorded)) == ["w0", "w1"]

    st = vdirs[0].status("/", recursive=True)
    assert [e.path for e in st] == ["/data.csv"]
    assert vdirs[0].stat("/data.csv").generation == 1
    assert {r.provider: (r.state, r.generation) for r in st[0].replicas} == {
        "laptop": ("current", 1),
        "archive": ("current", 1),
    }
    for name in ("laptop", "archive"):
        assert (tmp_path / name / "data.csv").read_bytes() == src.read_bytes()
    for v in vdirs:
        v.close()


# --- a lost or unreachable PostgreSQL server -------------------------------------------------
class Proxy:
    """A TCP proxy to the PostgreSQL server on a loopback port of its own; `cut()` closes it
    and every connection through it, as a server that went away would."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ)
        self._peer: dict[socket.socket, socket.socket] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    client, _ = sock.accept()
                    server = socket.create_connection(self._target)
                    self._peer[client], self._peer[server] = server, client
                    self._sel.register(client, selectors.EVENT_READ)
                    self._sel.register(server, selectors.EVENT_READ)
                    continue
                data = b""
                with contextlib.suppress(OSError):
                    data = sock.recv(65536)
                peer = self._peer.get(sock)
                if data and peer is not None:
                    peer.sendall(data)
                else:
                    self._drop(sock)
        for sock in list(self._peer):
            self._drop(sock)
        self._sel.unregister(self._listener)
        self._listener.close()

    def _drop(self, sock: socket.socket) -> None:
        for s in (sock, self._peer.pop(sock, None)):
            if s is not None:
                self._peer.pop(s, None)
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(s)
                s.close()

    def cut(self) -> None:
        self._stop.set()
        self._thread.join(DEADLINE_S)
        assert not self._thread.is_alive()


def pg_host_port() -> tuple[str, int]:
    from sqlalchemy.engine import make_url

    u = make_url(PG_URL)
    return u.host or "127.0.0.1", u.port or 5432


def test_a_connection_killed_by_the_server_is_a_retryable_catalog_error() -> None:
    import psycopg

    with pg_schema() as url:
        db = Database(url)
        with pytest.raises(CatalogError) as err, db.transaction() as s:
            pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
            with psycopg.connect(PG_URL, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            s.execute(text("SELECT 1"))
        assert err.value.retryable
        assert one_line(err).startswith("lost the catalog postgresql://")
        # the pool drops the dead connection: the next transaction works
        with db.transaction() as s:
            assert s.execute(text("SELECT 1")).scalar() == 1
        db.close()


def test_a_server_that_goes_away_is_a_retryable_catalog_error() -> None:
    host, port = pg_host_port()
    with pg_schema() as url:
        proxy = Proxy(host, port)
        db = Database(url.replace(f"{host}:{port}", f"127.0.0.1:{proxy.port}"))
        db.write(lambda s: s.add(Provider(name="p", kind="memory", root="m")))
        assert count(db, Provider) == 1
        proxy.cut()
        for op in (
            lambda: count(db, Provider),
            lambda: db.write(lambda s: s.add(Provider(name="q", kind="memory", root="m"))),
        ):
            with pytest.raises(CatalogError) as err:
                op()
            assert err.value.retryable
            assert one_line(err).startswith(
                f"lost the catalog postgresql://postgres@127.0.0.1:{proxy.port}/"
            )
        db.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def test_an_unreachable_server_is_a_retryable_one_line_error(refused_port: int) -> None:
    url = f"postgresql://cdir:s3cret-pw@127.0.0.1:{refused_port}/catalog"
    with pytest.raises(CatalogError) as err:
        Database(url)
    assert err.value.retryable
    message = one_line(err)
    assert message.startswith(
        f"cannot open the catalog postgresql://cdir:***@127.0.0.1:{refused_port}/catalog: "
    )
    assert "s3cret-pw" not in message


def test_an_unreachable_server_in_the_cli(
    cli: Any, refused_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "CDIR_CATALOG_URL", f"postgresql://cdir:s3cret-pw@127.0.0.1:{refused_port}/catalog"
    )
    for args in (("ls", "/"), ("mkdir", "/x")):
        r = cli(*args)
        assert r.code == 1
        lines = r.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "cdir: error: cannot open the catalog postgresql://cdir:***@"
        )
        assert "s3cret-pw" not in r.err and "Traceback" not in r.err


def test_psycopg_warnings_never_reach_the_terminal() -> None:
    """A batch that fails in a race (a unique key another writer took) makes psycopg log
    "error ignored terminating <Pipeline…>: pipeline aborted" while Database.write runs the
    batch again; seen on stderr of a `cdir put` that succeeded. In a process of its own
    (pytest would catch the record), with no handler of cdir's logging's last resort would
    print it."""
    from tests.conftest import pg_schema

    script = (
        "import logging, sys\n"
        "from cdir.catalog import Database\n"
        "db = Database(sys.argv[1])\n"
        "logging.getLogger('psycopg').warning('error ignored terminating <Pipeline>: aborted')\n"
        "db.close()\n"
    )
    with pg_schema() as url:
        r = subprocess.run([sys.executable, "-c", script, url], capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")
