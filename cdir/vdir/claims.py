"""Claims on subtrees for the length of a command (catalog.leases says why): a command that
meets another's claim in its way waits for it — saying so once — up to `CDIR_LEASE_WAIT`
seconds, then fails in one line. While held, a thread renews the claim so that a holder on
another host is not taken for dead."""

from __future__ import annotations

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
    ids = _take(db, sorted(set(paths)), exclusive, holder, wait_s, notice)
    stop = threading.Event()
    beat = threading.Thread(target=_renew, args=(db, ids, stop), daemon=True)
    beat.start()
    try:
        yield
    finally:
        stop.set()
        beat.join()
        db.write(lambda s: leases.release(s, ids))


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


def _renew(db: Database, ids: list[int], stop: threading.Event) -> None:
    while not stop.wait(RENEW_S):
        try:
            db.write(lambda s: leases.renew(s, ids, TTL))
        except Exception as exc:  # the next beat tries again; the claim lasts TTL
            log.warning("could not renew a claim: %s", exc)
