"""Leases (catalog/leases.py, vdir/claims.py): which claims conflict, when a holder's claim is
broken, and what a command that waits says. On SQLite and PostgreSQL. The real-process races
they settle are in tests/test_faults.py and tests/test_stress.py."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest

from cdir.catalog import Database, leases
from cdir.errors import Busy
from cdir.vdir import claims

TTL = timedelta(seconds=60)
ME = leases.Holder("here", 100, "put /t")
OTHER = leases.Holder("here", 200, "rm -r /t")
ELSEWHERE = leases.Holder("there", 200, "rm -r /t")


@pytest.fixture
def db(catalog_url: str) -> Iterator[Database]:
    d = Database(catalog_url)
    yield d
    d.close()


def take(
    db: Database,
    paths: list[str],
    exclusive: bool,
    holder: leases.Holder,
    alive: bool = True,
    ttl: timedelta = TTL,
) -> list[int] | leases.Held:
    return db.write(lambda s: leases.take(s, paths, exclusive, holder, ttl, lambda _pid: alive))


@pytest.mark.parametrize(
    ("held", "held_x", "wanted", "wanted_x", "conflict"),
    [
        ("/t", False, "/t", False, False),  # two writers share
        ("/t", False, "/t/a/b", False, False),
        ("/t", False, "/t", True, True),  # a removal waits for a writer
        ("/t", False, "/", True, True),  # … above it
        ("/t/a", False, "/t", True, True),
        ("/t", True, "/t/a/b", False, True),  # a writer waits for a removal above it
        ("/t", True, "/", False, True),
        ("/t", True, "/u", True, False),  # disjoint subtrees never conflict
        ("/t", True, "/tt", False, False),  # a prefix of a name is not a parent
    ],
)
def test_which_claims_conflict(
    db: Database, held: str, held_x: bool, wanted: str, wanted_x: bool, conflict: bool
) -> None:
    assert isinstance(take(db, [held], held_x, OTHER), list)
    got = take(db, [wanted], wanted_x, ME)
    if conflict:
        assert got == leases.Held(held, held_x, "rm -r /t", "here", 200)
    else:
        assert isinstance(got, list) and len(got) == 1


def test_a_holder_does_not_wait_for_itself(db: Database) -> None:
    assert isinstance(take(db, ["/t"], True, ME), list)
    assert isinstance(take(db, ["/t/a"], False, ME), list)  # a command's nested claim


def test_a_dead_holder_on_this_host_is_broken(db: Database) -> None:
    take(db, ["/t"], True, OTHER)
    assert isinstance(take(db, ["/t"], True, ME, alive=False), list)
    assert isinstance(take(db, ["/t"], True, OTHER), leases.Held)  # ME holds it now


def test_a_holder_elsewhere_is_broken_only_when_its_claim_expired(db: Database) -> None:
    take(db, ["/t"], True, ELSEWHERE, ttl=timedelta(seconds=-1))  # expired at once
    take(db, ["/u"], True, ELSEWHERE)
    # its pid is not ours to check: "dead" on this host says nothing about it
    assert isinstance(take(db, ["/t"], True, ME, alive=False), list)
    assert isinstance(take(db, ["/u"], True, ME, alive=False), leases.Held)


def test_a_released_claim_frees_the_subtree(db: Database) -> None:
    ids = take(db, ["/t"], True, OTHER)
    assert isinstance(ids, list)
    db.write(lambda s: leases.release(s, ids))
    assert isinstance(take(db, ["/t"], True, ME), list)


def test_a_claim_that_waits_too_long_is_one_busy_line(db: Database) -> None:
    take(db, ["/t"], False, leases.Holder("there", 200, "put /t"))
    heard: list[str] = []
    with (
        pytest.raises(Busy) as err,
        claims.claim(
            db, ["/t/a"], exclusive=True, command="rm /t/a", wait_s=0, notice=heard.append
        ),
    ):
        pass
    assert str(err.value) == (
        "/t is busy: `put /t` (pid 200 on there) is working on it; try again when it has "
        "finished (waited 0 s, see CDIR_LEASE_WAIT)"
    )
    assert err.value.retryable


def test_a_waiting_claim_says_so_once_and_goes_on_when_released(db: Database) -> None:
    ids = take(db, ["/t"], False, OTHER)
    assert isinstance(ids, list)
    heard: list[str] = []
    released = threading.Event()

    def notice(msg: str) -> None:
        heard.append(msg)
        if not released.is_set():  # the holder finishes once the waiter has said it waits
            db.write(lambda s: leases.release(s, ids))
            released.set()

    with claims.claim(db, ["/t"], exclusive=True, command="rm -r /t", wait_s=30, notice=notice):
        assert isinstance(take(db, ["/t"], False, OTHER), leases.Held)
    assert heard == ["waiting for `rm -r /t` (pid 200 on here) to finish with /t"]
    assert isinstance(take(db, ["/t"], True, OTHER), list)  # released at the end


def test_threads_of_one_process_take_turns(db: Database) -> None:
    """The service runs requests as threads of one process, whose leases never conflict in
    the catalog: an exclusive claim there waits for another thread's claim all the same, and
    one thread may claim again inside its own claim."""
    order: list[str] = []
    waiting = threading.Event()

    def second() -> None:
        def notice(msg: str) -> None:
            order.append("second waits")
            waiting.set()

        with claims.claim(
            db, ["/t/a"], exclusive=True, command="rm /t/a", wait_s=30, notice=notice
        ):
            order.append("second holds")

    with claims.claim(db, ["/t"], exclusive=False, command="put /t", wait_s=30):
        with claims.claim(db, ["/t"], exclusive=True, command="sync /t", wait_s=0):
            order.append("first again")  # its own thread: no wait
        t = threading.Thread(target=second)
        t.start()
        assert waiting.wait(30), "the second thread never waited"
        order.append("first ends")
    t.join(30)
    assert order == ["first again", "second waits", "first ends", "second holds"]


def test_another_threads_claim_in_the_way_is_one_busy_line(db: Database) -> None:
    inside, done = threading.Event(), threading.Event()

    def holder() -> None:
        with claims.claim(db, ["/t"], exclusive=True, command="mv /t /u", wait_s=0):
            inside.set()
            done.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    assert inside.wait(30)
    try:
        busy = r"^/t is busy: `mv /t /u` \(pid \d+ on .+\) is working"
        with (
            pytest.raises(Busy, match=busy),
            claims.claim(db, ["/t/x"], exclusive=False, command="put /t/x", wait_s=0),
        ):
            pass
    finally:
        done.set()
        t.join(30)


def test_held_claims_are_renewed(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a command works, its claims are renewed (one thread for all of a process's),
    so a holder on another host is never taken for dead; a released claim is not."""
    import time

    from sqlalchemy import select

    from cdir.catalog.leases import LEASE

    monkeypatch.setattr(claims, "RENEW_S", 0.05)
    monkeypatch.setattr(claims, "_RENEWER", claims._Renewer())

    def expiry() -> list[object]:
        with db.transaction() as s:
            return [r.expires_at for r in s.execute(select(LEASE)).all()]

    with claims.claim(db, ["/t"], exclusive=False, command="put /t", wait_s=0):
        first = expiry()
        deadline = time.monotonic() + 30
        while expiry() == first:
            assert time.monotonic() < deadline, "the claim was never renewed"
            time.sleep(0.01)  # polling the catalog for the renewal, with a deadline
    assert expiry() == []
