"""The sync planner (vdir/syncplan.py): a table of cases, one per rule, and properties over
random observations — no version is ever lost, nothing is copied from a replica that was
not listed, and the order providers were listed in does not matter."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdir.vdir.syncplan import (
    Adopt,
    ConflictCopy,
    Context,
    DeleteReplica,
    Forget,
    Listed,
    MarkCurrent,
    MarkMissing,
    NewVersion,
    Problem,
    Seen,
    Tombstone,
    conflict_name,
    decide,
)

T = 1_700_000_000 * 10**9  # the entry's mtime
P = {
    i: SimpleNamespace(id=i, name=n, priority=0, enabled=True)
    for i, n in ((1, "a"), (2, "b"), (3, "c"))
}
NOW = datetime(2026, 12, 6, 1, 2, 3, tzinfo=UTC)
HOME = frozenset({1, 2})


def ctx(propagate: bool = False) -> Context:
    return Context(P, frozenset(P), HOME, propagate, NOW)  # type: ignore[arg-type]


def entry(gen: int = 2, *, deleted: bool = False, kind: str = "file") -> Any:
    return SimpleNamespace(
        id=7, size=5, mtime_ns=T, hash=None, generation=gen, kind=kind,
        deleted_at="2026-12-01" if deleted else None,
    )  # fmt: skip


def rep(pid: int, gen: int = 2, state: str = "current") -> Any:
    return SimpleNamespace(id=100 + pid, provider_id=pid, remote_path="p/f.txt", generation=gen, state=state)  # fmt: skip


def listed(size: int = 6, dt_s: int = 10, h: str | None = None) -> Listed:
    return Listed("p/f.txt", size, T + dt_s * 10**9, f"fp{size}{dt_s}", h)


REPS = {1: rep(1), 2: rep(2)}
CATALOG_VERSION = Listed("", 5, T, "", None)  # the entry's version, as the planner sees it
F = "/p/f.txt"
CONFLICT_A = "/p/f.conflict-20231114T221330Z-a.txt"  # T + 10 s, on a
CONFLICT_CAT_A = "/p/f.conflict-20231114T221320Z-a.txt"  # T (the catalog's), held by a


CASES: list[tuple[str, Any, dict[int, Any], dict[int, Seen], bool, list[Any]]] = [
    ("nothing differs", entry(), REPS, {}, False, []),
    (
        "changed on one",
        entry(), REPS, {1: Seen("changed", listed(), rep(1))}, False,
        [NewVersion(F, 1, listed(), {}, HOME)],
    ),
    (
        "changed on two, the newer wins, the other is kept",
        entry(), REPS,
        {1: Seen("changed", listed(6, 10), rep(1)), 2: Seen("changed", listed(7, 20), rep(2))},
        False,
        [NewVersion(F, 2, listed(7, 20), {}, HOME), ConflictCopy(F, 1, "p/f.txt", CONFLICT_A, listed(6, 10), HOME)],
    ),
    (
        "changed on two to the same bytes",
        entry(), REPS,
        {1: Seen("changed", listed(6, 10, "md5:x"), rep(1)), 2: Seen("changed", listed(6, 20, "md5:x"), rep(2))},
        False,
        [NewVersion(F, 2, listed(6, 20, "md5:x"), {1: listed(6, 10, "md5:x")}, HOME)],
    ),
    (
        "missing outside cdir: restored", entry(), REPS, {1: Seen("missing", None, rep(1))}, False,
        [MarkMissing(F, 1, 101)],
    ),
    (
        "missing outside cdir, policy propagate: deleted everywhere",
        entry(), REPS, {1: Seen("missing", None, rep(1))}, True,
        [Tombstone(F), Forget(F, 1, 101), DeleteReplica(F, 2, 102, "p/f.txt", "propagate")],
    ),
    (
        "missing and already marked", entry(), {1: rep(1, state="missing"), 2: rep(2)},
        {1: Seen("missing", None, rep(1, state="missing"))}, False, [],
    ),
    (
        "new on a provider: imported to the directory's providers",
        None, {}, {1: Seen("unknown", listed())}, False,
        [NewVersion(F, 1, listed(), {}, HOME, imported=True)],
    ),
    (
        "new on two providers with different bytes",
        None, {}, {1: Seen("unknown", listed(6, 10)), 2: Seen("unknown", listed(7, 20))}, False,
        [NewVersion(F, 2, listed(7, 20), {}, HOME, imported=True), ConflictCopy(F, 1, "p/f.txt", CONFLICT_A, listed(6, 10), HOME)],
    ),
    (
        "found where no replica was, holding the entry's bytes: adopted",
        entry(), REPS, {3: Seen("unknown", listed(5, 0))}, False, [Adopt(F, 3, listed(5, 0))],
    ),
    (
        "found where no replica was, other bytes: the newer wins, the catalog's is kept",
        entry(), REPS, {3: Seen("unknown", listed())}, False,
        [NewVersion(F, 3, listed(), {}, HOME), ConflictCopy(F, 1, "p/f.txt", CONFLICT_CAT_A, CATALOG_VERSION, HOME)],
    ),
    (
        "a stale replica edited, older than the catalog's: the catalog wins, the edit is kept",
        entry(), {1: rep(1, gen=1, state="stale"), 2: rep(2)},
        {1: Seen("changed", listed(6, -10), rep(1, gen=1, state="stale"))}, False,
        [ConflictCopy(F, 1, "p/f.txt", "/p/f.conflict-20231114T221310Z-a.txt", listed(6, -10), HOME)],
    ),
    (
        "a stale replica put back to the catalog's bytes: adopted, no new generation",
        entry(), {1: rep(1, gen=1, state="stale"), 2: rep(2)},
        {1: Seen("changed", listed(5, 0), rep(1, gen=1, state="stale"))}, False,
        [Adopt(F, 1, listed(5, 0))],
    ),
    (
        "listed unchanged but marked missing: current again",
        entry(), {1: rep(1, state="missing"), 2: rep(2)},
        {1: Seen("same", listed(5, 0), rep(1, state="missing"))}, False,
        [MarkCurrent(F, 1, 101, listed(5, 0))],
    ),
    (
        "an older generation listed unchanged: left to the copy step",
        entry(), {1: rep(1, gen=1, state="stale"), 2: rep(2)},
        {1: Seen("same", listed(4, -5), rep(1, gen=1, state="stale"))}, False, [],
    ),
    (
        "a tombstone: listed replicas deleted, missing ones forgotten",
        entry(deleted=True), REPS,
        {1: Seen("same", listed(5, 0), rep(1)), 2: Seen("missing", None, rep(2))}, False,
        [DeleteReplica(F, 1, 101, "p/f.txt", "rm"), Forget(F, 2, 102)],
    ),
    (
        "a file where a tombstone is, with no replica row: new",
        entry(deleted=True), {}, {3: Seen("unknown", listed())}, False,
        [NewVersion(F, 3, listed(), {}, HOME, imported=True)],
    ),
    (
        "a file where the catalog has a directory",
        entry(kind="dir"), {}, {1: Seen("unknown", listed())}, False,
        [Problem(F, 1, "a file where the catalog has a directory")],
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("e", "reps", "seen", "propagate", "want"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_decide(e: Any, reps: Any, seen: Any, propagate: bool, want: list[Any]) -> None:
    assert decide(F, e, reps, seen, ctx(propagate)) == want


def test_conflict_names() -> None:
    assert (
        conflict_name("/d/report.csv", T, "s3", NOW) == "/d/report.conflict-20231114T221320Z-s3.csv"
    )
    assert conflict_name("/README", None, "a", NOW) == "/README.conflict-20261206T010203Z-a"
    assert conflict_name("/.env", T, "a", NOW) == "/.env.conflict-20231114T221320Z-a"
    assert conflict_name("/x.tar.gz", T, "a", NOW) == "/x.tar.conflict-20231114T221320Z-a.gz"


# --- properties ---------------------------------------------------------------------------------
observation = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["changed", "same", "unknown", "missing"]),
        st.integers(0, 3),  # size
        st.integers(-5, 5),  # mtime, seconds from the entry's
        st.sampled_from([None, "md5:x", "md5:y"]),
        st.integers(1, 2),  # the generation of the replica row
    ),
)


def _seen(obs: dict[int, Any], alive: bool) -> tuple[dict[int, Any], dict[int, Seen]]:
    """Replica rows and observations from drawn ones: None is a current, unchanged replica
    (not seen); without an entry every file listed is unknown."""
    reps: dict[int, Any] = {}
    seen: dict[int, Seen] = {}
    for pid, o in obs.items():
        if o is None:
            if alive:
                reps[pid] = rep(pid)
            continue
        kind, size, dt, h, gen = o
        if not alive:
            kind = "unknown"
        state = "current" if gen == 2 else "stale"
        r = None if kind == "unknown" else rep(pid, gen=gen, state=state)
        if r is not None:
            reps[pid] = r
        seen[pid] = Seen(kind, None if kind == "missing" else listed(size, dt, h), r)
    return reps, seen


OBS = st.fixed_dictionaries({1: observation, 2: observation, 3: observation})


@given(OBS, st.booleans(), st.booleans())
def test_no_version_is_lost(obs: dict[int, Any], alive: bool, propagate: bool) -> None:
    """Every version listed as changed or new ends up as the new version, with the same
    bytes as it, adopted, or as a conflict copy; the catalog's own version too, when a
    change was not made on top of it and a provider still holds it unchanged. Nothing is
    copied from what was not listed, and nothing deleted unless the policy says so."""
    reps, seen = _seen(obs, alive)
    e = entry() if alive else None
    actions = decide(F, e, reps, seen, ctx(propagate))
    new = [a for a in actions if isinstance(a, NewVersion)]
    copies = [a for a in actions if isinstance(a, ConflictCopy)]
    assert len(new) <= 1
    kept = {a.provider for a in copies} | {a.provider for a in actions if isinstance(a, Adopt)}
    if new:
        kept |= {new[0].source, *new[0].same}
        assert seen[new[0].source].listed is not None
    changes = {pid for pid, sn in seen.items() if sn.kind in ("changed", "unknown")}
    assert changes - kept == set() or (not new and changes <= kept), (changes, actions)
    rebased = any(seen[p].replica is None or seen[p].replica.generation != 2 for p in changes)
    holders = {p for p, r in reps.items() if r.state == "current" and r.generation == 2}
    holders = {p for p in holders if p not in seen or seen[p].kind == "same"} - changes
    if alive and rebased and holders and new and not _same_as_catalog(new[0].listed):
        assert any(c.provider in holders for c in copies), actions
    if any(isinstance(a, (Tombstone, DeleteReplica)) for a in actions):
        assert propagate and alive


def _same_as_catalog(v: Listed) -> bool:
    return v.size == 5 and v.hash is None and abs((v.mtime_ns or 0) - T) < 10**9


@given(OBS, st.booleans())
def test_the_order_of_the_listings_does_not_matter(obs: dict[int, Any], alive: bool) -> None:
    reps, seen = _seen(obs, alive)
    e = entry() if alive else None
    forward = decide(F, e, reps, seen, ctx())
    backward = decide(F, e, dict(reversed(reps.items())), dict(reversed(seen.items())), ctx())
    assert sorted(map(repr, forward)) == sorted(map(repr, backward))
