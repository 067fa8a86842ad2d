"""Claims on subtrees for the length of a command (catalog.leases says why): a command that
meets another's claim in its way waits for it — saying so once — up to `CDIR_LEASE_WAIT`
seconds, then fails in one line. While held, a thread renews the claim so that a holder on
another host is not taken for dead."""

from __future__ import annotations

import functools
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from cdir import pids
from cdir.catalog import Database, leases
from cdir.errors import Busy

TTL = timedelta(seconds=60)  # a claim not renewed for this long is broken by the next command
RENEW_S = 15.0
log = logging.getLogger(__name__)


@contextmanager
def claim(
    db: Database,
    paths: list[str],
    *,
    exclusive: bool,
    command: str,
    wait_s: float,
    notice: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold `paths` (exclusively for removals) while the block runs."""
    holder = leases.Holder(socket.gethostname(), os.getpid(), command)
    wanted = sorted(set(paths))
    deadline = time.monotonic() + wait_s
    with _THREADS.hold(wanted, exclusive, command, deadline, wait_s, notice):
        ids = _take(db, wanted, exclusive, holder, max(deadline - time.monotonic(), 0), notice)
        _RENEWER.add(db, ids)
        try:
            yield
        finally:
            _RENEWER.drop(ids)
            db.write(lambda s: leases.release(s, ids))


class _ThreadClaims:
    """Claims between the threads of this process. A lease names a process (host, pid), and
    one process's leases never stand in each other's way, so that a command's nested claims
    do not wait for itself; the service runs many requests in one process, so its threads
    are kept apart here — the same thread may claim again."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held: list[tuple[str, bool, int, str]] = []  # path, exclusive, thread, command

    @contextmanager
    def hold(
        self,
        paths: list[str],
        exclusive: bool,
        command: str,
        deadline: float,
        wait_s: float,
        notice: Callable[[str], None] | None,
    ) -> Iterator[None]:
        me, told = threading.get_ident(), False
        with self._cond:
            while (other := self._in_way(paths, exclusive, me)) is not None:
                left = deadline - time.monotonic()
                who = f"`{other[3]}` (pid {os.getpid()} on {socket.gethostname()})"
                if left <= 0:
                    raise Busy(
                        f"{other[0]} is busy: {who} is working on it; try again when it has "
                        f"finished (waited {wait_s:g} s, see CDIR_LEASE_WAIT)"
                    )
                if notice is not None and not told:
                    notice(f"waiting for {who} to finish with {other[0]}")
                    told = True
                self._cond.wait(min(left, 1.0))
            mine = [(p, exclusive, me, command) for p in paths]
            self._held += mine
        try:
            yield
        finally:
            with self._cond:
                for m in mine:
                    self._held.remove(m)
                self._cond.notify_all()

    def _in_way(
        self, paths: list[str], exclusive: bool, me: int
    ) -> tuple[str, bool, int, str] | None:
        for held in self._held:
            path, excl, thread, _ = held
            if (
                thread != me
                and (exclusive or excl)
                and any(leases.overlaps(p, path) for p in paths)
            ):
                return held
        return None


_THREADS = _ThreadClaims()


def _take(
    db: Database,
    paths: list[str],
    exclusive: bool,
    holder: leases.Holder,
    wait_s: float,
    notice: Callable[[str], None] | None,
) -> list[int]:
    deadline = time.monotonic() + wait_s
    pause, told = 0.02, False
    while True:
        got = db.write(lambda s: leases.take(s, paths, exclusive, holder, TTL, pids.alive))
        if isinstance(got, list):
            return got
        who = f"`{got.command}` (pid {got.pid} on {got.host})"
        if time.monotonic() >= deadline:
            raise Busy(
                f"{got.path} is busy: {who} is working on it; try again when it has finished "
                f"(waited {wait_s:g} s, see CDIR_LEASE_WAIT)"
            )
        if notice is not None and not told:
            notice(f"waiting for {who} to finish with {got.path}")
            told = True
        time.sleep(min(pause * (0.5 + random.random()), max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, 1.0)


class _Renewer:
    """One thread renews every claim this process holds, every RENEW_S (started with the
    first claim): a thread per claim cost ~0.7 ms to start and join, a third of a claim, and
    the service takes one per PUT (measured)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, tuple[Database, list[int]]] = {}  # first id → (db, ids)
        self._thread: threading.Thread | None = None

    def add(self, db: Database, ids: list[int]) -> None:
        with self._lock:
            self._held[ids[0]] = (db, ids)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cdir-claims", daemon=True)
                self._thread.start()

    def drop(self, ids: list[int]) -> None:
        with self._lock:
            self._held.pop(ids[0], None)

    def _run(self) -> None:
        while True:
            time.sleep(RENEW_S)  # a period, not a wait for a condition
            with self._lock:
                held = list(self._held.values())
            for db, ids in held:
                try:
                    db.write(functools.partial(leases.renew, ids=ids, ttl=TTL))
                except Exception as exc:  # the next round tries again; the claim lasts TTL
                    log.warning("could not renew a claim: %s", exc)


_RENEWER = _Renewer()
