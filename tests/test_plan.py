"""The pure planner (cdir.vdir.plan): tables of cases, then properties over random catalogs.

Rows are plain namespaces shaped like the catalog's (queries.ENTRY_COLS / replica_map) and
`cdir.catalog.Provider` objects; nothing here touches a database or a provider."""

from __future__ import annotations

import io
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdir.catalog import Provider, ReplicaState
from cdir.errors import IsADirectory, UsageError
from cdir.providers import RemoteStat
from cdir.vdir.plan import (
    FileJob,
    LocalSource,
    StreamSource,
    is_current,
    plan_targets,
    plan_writes,
    read_order,
)

CUR, STALE = ReplicaState.CURRENT, ReplicaState.STALE
SIZE, MTIME = 10, 1_700_000_000_000_000_000


def prov(
    pid: int, name: str, priority: int = 0, bps: float | None = None, enabled: bool = True
) -> Provider:
    return Provider(
        id=pid,
        name=name,
        kind="memory",
        root=f"mem/{name}",
        priority=priority,
        throughput_bps=bps,
        enabled=enabled,
    )


A, B, C, D = prov(1, "a"), prov(2, "b"), prov(3, "c"), prov(4, "d", enabled=False)
PROVIDERS = {p.id: p for p in (A, B, C, D)}


def entry(
    gen: int = 3, *, kind: str = "file", deleted: bool = False, size: int = SIZE, mtime: int = MTIME
) -> SimpleNamespace:
    return SimpleNamespace(
        id=7,
        dirname="/d",
        basename="f",
        kind=kind,
        size=size,
        mtime_ns=mtime,
        hash=None,
        generation=gen,
        preferred_provider_id=None,
        deleted_at="2024-01-01 00:00:00" if deleted else None,
    )


def rep(pid: int, state: str = CUR, gen: int = 3) -> SimpleNamespace:
    return SimpleNamespace(
        id=100 + pid,
        entry_id=7,
        provider_id=pid,
        remote_path="d/f",
        size=SIZE,
        mtime_ns=MTIME,
        fingerprint="fp",
        generation=gen,
        state=state,
    )


def reps(*rows: SimpleNamespace) -> dict[int, SimpleNamespace]:
    return {r.provider_id: r for r in rows}


def job(
    path: str = "/d/f", size: int = SIZE, mtime: int | None = MTIME, source: Any = None
) -> FileJob:
    return FileJob(path, size, mtime, source or LocalSource("/src/f"))


# --- targets ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetCase:
    name: str
    entry: SimpleNamespace | None
    reps: dict[int, SimpleNamespace]
    wanted: tuple[Provider, ...]
    job: FileJob
    changed: bool
    targets: tuple[str, ...]  # provider names, in order


TARGET_CASES = [
    TargetCase("new file: the providers asked for", None, {}, (A, B), job(), True, ("a", "b")),
    TargetCase(
        "unchanged, current on every target: skipped",
        entry(),
        reps(rep(1), rep(2)),
        (A, B),
        job(),
        False,
        (),
    ),
    TargetCase(
        "unchanged, one target lacks it: only that target",
        entry(),
        reps(rep(1)),
        (A, B),
        job(),
        False,
        ("b",),
    ),
    TargetCase(
        "unchanged, a target holds an older generation: only that target",
        entry(),
        reps(rep(1), rep(2, CUR, gen=2)),
        (A, B),
        job(),
        False,
        ("b",),
    ),
    TargetCase(
        "unchanged, a stale replica on a target: only that target",
        entry(),
        reps(rep(1), rep(2, STALE)),
        (A, B),
        job(),
        False,
        ("b",),
    ),
    TargetCase(
        "unchanged, current elsewhere, not on the one target asked for",
        entry(),
        reps(rep(1)),
        (C,),
        job(),
        False,
        ("c",),
    ),
    TargetCase(
        "same size and mtime but no current replica anywhere: changed",
        entry(),
        reps(rep(1, STALE), rep(2, CUR, gen=2)),
        (A,),
        job(),
        True,
        ("a", "b"),
    ),
    TargetCase(
        "changed size: new version to the asked-for and every enabled holder",
        entry(),
        reps(rep(2), rep(3, STALE)),
        (A,),
        job(size=SIZE + 1),
        True,
        ("a", "b", "c"),
    ),
    TargetCase(
        "changed mtime: new version; a disabled holder is not a target",
        entry(),
        reps(rep(1), rep(4)),
        (B,),
        job(mtime=MTIME + 1),
        True,
        ("b", "a"),
    ),
    TargetCase(
        "a holder whose provider is unknown is not a target",
        entry(),
        reps(rep(1), rep(99)),
        (B,),
        job(size=1),
        True,
        ("b", "a"),
    ),
    TargetCase(
        "a holder already asked for is listed once",
        entry(),
        reps(rep(1), rep(2)),
        (A, B),
        job(size=1),
        True,
        ("a", "b"),
    ),
    TargetCase(
        "tombstoned entry: a new version, to the asked-for only",
        entry(deleted=True),
        reps(rep(1), rep(2)),
        (C,),
        job(),
        True,
        ("c",),
    ),
    TargetCase(
        "tombstoned directory at the path: a new file there",
        entry(kind="dir", deleted=True),
        {},
        (A,),
        job(),
        True,
        ("a",),
    ),
    TargetCase(
        "a stream is always a new version, even with the same size and mtime",
        entry(),
        reps(rep(1), rep(2)),
        (A,),
        job(source=StreamSource(io.BytesIO(b""))),
        True,
        ("a", "b"),
    ),
]


@pytest.mark.parametrize("case", TARGET_CASES, ids=lambda c: c.name)
def test_plan_targets(case: TargetCase) -> None:
    plan_targets(case.job, case.entry, case.reps, list(case.wanted), PROVIDERS)
    assert case.job.entry is case.entry
    assert case.job.changed is case.changed
    assert tuple(p.name for p in case.job.targets) == case.targets


def test_a_live_directory_at_the_path_is_refused() -> None:
    with pytest.raises(IsADirectory, match=r"^is a directory: /d/f$"):
        plan_targets(job(), entry(kind="dir"), {}, [A], PROVIDERS)


def test_two_jobs_for_one_path_are_refused() -> None:
    with pytest.raises(UsageError, match=r"^two sources write the same path: /d/f$"):
        plan_writes([job(), job("/d/g"), job()], {}, {}, [A], PROVIDERS)


def test_plan_writes_looks_up_each_jobs_entry_and_counts_the_skipped() -> None:
    e, other = entry(), SimpleNamespace(**{**vars(entry()), "id": 8, "basename": "g"})
    jobs = [job("/d/f"), job("/d/g"), job("/d/new")]
    existing = {"/d/f": e, "/d/g": other}
    replicas = {
        7: reps(rep(1)),
        8: {2: SimpleNamespace(**{**vars(rep(2)), "entry_id": 8})},  # current on b only
    }
    assert plan_writes(jobs, existing, replicas, [A], PROVIDERS) == 1
    assert [(j.entry, j.changed, [p.name for p in j.targets]) for j in jobs] == [
        (e, False, []),
        (other, False, ["a"]),
        (None, True, ["a"]),
    ]


# --- is_current and FileJob.version ------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "gen", "expected"),
    [
        (CUR, 3, True),
        (CUR, 2, False),
        (CUR, 4, False),
        (STALE, 3, False),
        (ReplicaState.PENDING, 3, False),
        (ReplicaState.ERROR, 3, False),
        (ReplicaState.TRANSFERRING, 3, False),
        (ReplicaState.CONFLICT, 3, False),
        (ReplicaState.MISSING, 3, False),
    ],
)
def test_is_current(state: str, gen: int, expected: bool) -> None:
    assert is_current(rep(1, state, gen), entry(gen=3)) is expected


def stat(hashes: dict[str, str]) -> RemoteStat:
    return RemoteStat("d/f", "file", SIZE, MTIME, "fp", hashes)


@pytest.mark.parametrize(
    ("known", "done", "expected"),
    [
        ("sha256:abc", {1: stat({"md5": "m"})}, "sha256:abc"),  # known before the write wins
        (None, {1: stat({"crc32c": "c", "md5": "m", "sha1": "s"})}, "md5:m"),  # md5 preferred
        (None, {1: stat({"sha1": "s"}), 2: stat({"md5": "m"})}, "sha1:s"),  # the first provider's
        (None, {1: stat({"crc32c": "c", "sha1": "s"})}, "crc32c:c"),  # else by name
        (None, {1: stat({}), 2: stat({"md5": "m"})}, "md5:m"),  # a provider with none is passed
        (None, {1: stat({})}, None),
        (None, {}, None),
    ],
)
def test_version_records_the_best_known_hash(
    known: str | None, done: dict[int, RemoteStat], expected: str | None
) -> None:
    j = job()
    j.hash, j.done = known, done
    assert j.version().hash == expected


@pytest.mark.parametrize(
    ("e", "changed", "base"),
    [(None, True, 0), (entry(gen=5), False, 5), (entry(gen=2, deleted=True), True, 2)],
)
def test_version_carries_the_plan(e: Any, changed: bool, base: int) -> None:
    j = job(size=42, mtime=9)
    j.entry, j.changed, j.done, j.failed = e, changed, {1: stat({})}, {2: "boom"}
    v = j.version()
    assert (v.path, v.size, v.mtime_ns, v.changed, v.base_generation) == (
        "/d/f",
        42,
        9,
        changed,
        base,
    )
    assert (dict(v.written), dict(v.failed)) == ({1: j.done[1]}, {2: "boom"})


# --- read order ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadCase:
    name: str
    providers: tuple[Provider, ...]
    reps: dict[int, SimpleNamespace]
    preferred: int | None
    only: int | None
    order: tuple[str, ...]


FAST, SLOW = 50e6, 1e6
READ_CASES = [
    ReadCase(
        "by name when all else is equal",
        (prov(1, "b"), prov(2, "a")),
        reps(rep(1), rep(2)),
        None,
        None,
        ("a", "b"),
    ),
    ReadCase(
        "higher priority first",
        (prov(1, "a"), prov(2, "b", priority=5)),
        reps(rep(1), rep(2)),
        None,
        None,
        ("b", "a"),
    ),
    ReadCase(
        "then higher throughput",
        (prov(1, "a", bps=SLOW), prov(2, "b", bps=FAST)),
        reps(rep(1), rep(2)),
        None,
        None,
        ("b", "a"),
    ),
    ReadCase(
        "unmeasured throughput counts as none",
        (prov(1, "a"), prov(2, "b", bps=SLOW)),
        reps(rep(1), rep(2)),
        None,
        None,
        ("b", "a"),
    ),
    ReadCase(
        "priority outranks throughput",
        (prov(1, "a", 1, SLOW), prov(2, "b", 0, FAST)),
        reps(rep(1), rep(2)),
        None,
        None,
        ("a", "b"),
    ),
    ReadCase(
        "the preferred provider first, whatever its rank",
        (prov(1, "a", 9, FAST), prov(2, "z", 0, SLOW), prov(3, "b")),
        reps(rep(1), rep(2), rep(3)),
        2,
        None,
        ("z", "a", "b"),
    ),
    ReadCase(
        "a stale preferred replica is not read",
        (prov(1, "a"), prov(2, "b")),
        reps(rep(1), rep(2, STALE)),
        2,
        None,
        ("a",),
    ),
    ReadCase(
        "a wrong-generation replica is not read",
        (prov(1, "a"), prov(2, "b")),
        reps(rep(1, gen=2), rep(2)),
        None,
        None,
        ("b",),
    ),
    ReadCase(
        "a disabled provider is not read",
        (prov(1, "a", enabled=False), prov(2, "b")),
        reps(rep(1), rep(2)),
        1,
        None,
        ("b",),
    ),
    ReadCase(
        "an unknown provider is not read", (prov(2, "b"),), reps(rep(1), rep(2)), None, None, ("b",)
    ),
    ReadCase(
        "only keeps one provider's replica",
        (prov(1, "a", 9), prov(2, "b")),
        reps(rep(1), rep(2)),
        1,
        2,
        ("b",),
    ),
    ReadCase(
        "only on a provider without a current replica: none",
        (prov(1, "a"), prov(2, "b")),
        reps(rep(1), rep(2, STALE)),
        None,
        2,
        (),
    ),
    ReadCase(
        "no current replica: none",
        (prov(1, "a"),),
        reps(rep(1, ReplicaState.ERROR)),
        None,
        None,
        (),
    ),
]


@pytest.mark.parametrize("case", READ_CASES, ids=lambda c: c.name)
def test_read_order(case: ReadCase) -> None:
    provs = {p.id: p for p in case.providers}
    holders = read_order(entry(), case.reps, provs, case.preferred, case.only)
    assert tuple(h.provider.name for h in holders) == case.order
    for h in holders:
        assert h.replica is case.reps[h.provider.id]


# --- properties ------------------------------------------------------------------------------
GEN = 3


@st.composite
def catalogs(draw: st.DrawFn) -> dict[str, Any]:
    """Providers, an entry (or none), its replicas, what a put asks for, and the job."""
    n = draw(st.integers(1, 6))
    names = draw(
        st.lists(st.text("abcdef", min_size=1, max_size=3), min_size=n, max_size=n, unique=True)
    )
    providers = {
        i + 1: prov(
            i + 1,
            name,
            draw(st.integers(-2, 2)),
            draw(st.one_of(st.none(), st.sampled_from([0.0, 1e6, 5e6, 5e7]))),
            draw(st.booleans()),
        )
        for i, name in enumerate(names)
    }
    kind = draw(st.sampled_from(["none", "file", "tombstone", "dead-dir"]))
    e = (
        None
        if kind == "none"
        else entry(
            GEN,
            kind="dir" if kind == "dead-dir" else "file",
            deleted=kind in ("tombstone", "dead-dir"),
            size=draw(st.sampled_from([SIZE, SIZE + 1])),
            mtime=draw(st.sampled_from([MTIME, MTIME + 1])),
        )
    )
    states = st.sampled_from(list(ReplicaState))
    holders = draw(st.lists(st.integers(1, n + 1), unique=True))  # n + 1: a provider since removed
    rows = (
        {}
        if e is None
        else {pid: rep(pid, draw(states), draw(st.integers(GEN - 1, GEN + 1))) for pid in holders}
    )
    wanted = [providers[i] for i in draw(st.lists(st.integers(1, n), min_size=1, unique=True))]
    source = StreamSource(io.BytesIO(b"")) if draw(st.booleans()) and draw(st.booleans()) else None
    j = job(size=SIZE, mtime=MTIME, source=source)
    pref = draw(st.one_of(st.none(), st.integers(1, n + 1)))
    only = draw(st.one_of(st.none(), st.integers(1, n + 1)))
    return {
        "providers": providers,
        "entry": e,
        "reps": rows,
        "wanted": wanted,
        "job": j,
        "pref": pref,
        "only": only,
    }


@given(catalogs())
def test_targets_follow_the_rules(c: dict[str, Any]) -> None:
    j, e, rows, providers, wanted = c["job"], c["entry"], c["reps"], c["providers"], c["wanted"]
    plan_targets(j, e, rows, wanted, providers)
    ids = [p.id for p in j.targets]
    assert len(ids) == len(set(ids))  # each provider once
    alive = e is not None and e.deleted_at is None
    current = {pid for pid, r in rows.items() if alive and is_current(r, e)}
    if not j.changed:
        # unchanged: a live file of the same size and mtime, current somewhere, sent only
        # where it is not current, and only where asked
        assert alive and (e.size, e.mtime_ns) == (j.size, j.mtime_ns) and current
        assert not isinstance(j.source, StreamSource)
        assert set(ids) == {p.id for p in wanted} - current
    else:
        # a new version: everywhere asked, plus every enabled provider holding a live file
        holders = {pid for pid in rows if alive and pid in providers and providers[pid].enabled}
        assert set(ids) == {p.id for p in wanted} | holders
        assert ids[: len(wanted)] == [p.id for p in wanted]  # the ones asked for come first


@given(catalogs())
def test_read_order_only_reads_current_replicas_best_first(c: dict[str, Any]) -> None:
    e = c["entry"] or entry(GEN)
    providers, rows, pref, only = c["providers"], c["reps"], c["pref"], c["only"]
    holders = read_order(e, rows, providers, pref, only)
    readable = {
        pid
        for pid, r in rows.items()
        if is_current(r, e) and pid in providers and providers[pid].enabled and only in (None, pid)
    }
    assert {h.provider.id for h in holders} == readable
    assert all(h.replica.state == CUR and h.replica.generation == e.generation for h in holders)

    def key(h: Any) -> tuple[bool, int, float, str]:
        return (
            h.provider.id != pref,
            -h.provider.priority,
            -(h.provider.throughput_bps or 0),
            h.provider.name,
        )

    keys = [key(h) for h in holders]
    assert keys == sorted(keys)
    if pref in readable:
        assert holders[0].provider.id == pref


@given(st.lists(catalogs(), min_size=1, max_size=5))
def test_plan_writes_counts_the_jobs_left_without_targets(cs: list[dict[str, Any]]) -> None:
    providers = cs[0]["providers"]
    jobs, existing, replicas = [], {}, {}
    for i, c in enumerate(cs):
        path = f"/d/f{i}"
        j = job(path, source=c["job"].source)
        jobs.append(j)
        e = c["entry"]
        if e is not None and not (e.kind == "dir" and e.deleted_at is None):
            existing[path] = SimpleNamespace(**{**vars(e), "id": i + 1, "basename": f"f{i}"})
            replicas[i + 1] = {pid: r for pid, r in c["reps"].items()}
    wanted = cs[0]["wanted"]
    skipped = plan_writes(jobs, existing, replicas, wanted, providers)
    assert skipped == sum(not j.targets for j in jobs)
    for j in jobs:
        assert j.entry is existing.get(j.vpath)
        if not j.changed:
            assert {p.id for p in j.targets} <= {p.id for p in wanted}
