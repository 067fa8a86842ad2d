"""The planner: which provider each file goes to, which files are skipped, and which replica
a read comes from. Pure — catalog rows and provider rows in, decisions out; no I/O — so it is
tested on tables of cases, and the sync daemon's planner extends it.

Rules:
- skip: a file whose size and mtime match its live entry, and that has a current replica
  on every target, is not sent again (rsync-like); a stream is always a new version (its
  bytes are unknown until read, so size and mtime prove nothing);
- targets: a new version goes to the providers asked for and to every enabled provider that
  already holds the file (an old version left on one would be stale); an unchanged one only
  where it is not current;
- read order: only current replicas (holding the entry's generation), the preferred provider
  first, then priority, then measured throughput, then name — never a stale one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cdir.catalog import EntryKind, Provider, ReplicaState
from cdir.catalog.writes import Version
from cdir.errors import IsADirectory, UsageError
from cdir.providers import RemoteStat


@dataclass(frozen=True)
class Holder:
    """A replica to read from: its provider row and its replica row."""

    provider: Provider
    replica: Any


@dataclass(frozen=True)
class LocalSource:
    path: str  # a str, not a Path: building 20,000 Paths costs more than the walk


@dataclass(frozen=True)
class ReplicaSource:
    holders: tuple[Holder, ...]  # best first; the next one is tried when one fails


@dataclass(frozen=True)
class StreamSource:
    stream: BinaryIO  # read once: it goes to one target, the others copy from there
    size: int | None = None  # the length announced, None when unknown


Source = LocalSource | ReplicaSource | StreamSource


@dataclass
class FileJob:
    """One file to write to one or more providers, and what happened."""

    vpath: str
    size: int
    mtime_ns: int | None
    source: Source
    hash: str | None = None  # "kind:hex" when known before the write
    targets: list[Provider] = field(default_factory=list)
    entry: Any = None  # the catalog row at vpath when planned (a tombstone too), or None
    changed: bool = True  # content differs from the entry's → a new generation
    done: dict[int, RemoteStat] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    untried: set[int] = field(default_factory=set)  # failed untried: the provider was down
    # provider id → where its replica is now, when that is not where this write goes (a
    # move that did not finish there): the old file is removed once the new one landed
    moved_from: dict[int, str] = field(default_factory=dict)

    def version(self) -> Version:
        """What to record: the hash is the one known before, else one a server reported."""
        known = self.hash or next(
            (
                f"{k}:{st.hashes[k]}"
                for st in self.done.values()
                for k in sorted(st.hashes, key=lambda k: k != "md5")
            ),
            None,
        )
        return Version(
            self.vpath,
            self.size,
            self.mtime_ns,
            known,
            self.changed,
            self.entry.generation if self.entry is not None else 0,
            self.done,
            self.failed,
        )


def remote_of(vpath: str) -> str:
    """Where a virtual path lives below every provider's root."""
    return vpath.lstrip("/")


def is_current(replica: Any, entry: Any) -> bool:
    return bool(replica.state == ReplicaState.CURRENT and replica.generation == entry.generation)


def plan_writes(
    jobs: Sequence[FileJob],
    existing: Mapping[str, Any],
    replicas: Mapping[int, Mapping[int, Any]],
    wanted: Sequence[Provider],
    providers: Mapping[int, Provider],
) -> int:
    """Set each job's entry, `changed` and targets; returns how many need no transfer."""
    seen: set[str] = set()
    skipped = 0
    for job in jobs:
        if job.vpath in seen:
            raise UsageError(f"two sources write the same path: {job.vpath}")
        seen.add(job.vpath)
        e = existing.get(job.vpath)
        reps = replicas.get(e.id, {}) if e is not None else {}
        plan_targets(job, e, reps, wanted, providers)
        skipped += not job.targets
    return skipped


def plan_targets(
    job: FileJob,
    entry: Any,
    reps: Mapping[int, Any],
    wanted: Sequence[Provider],
    providers: Mapping[int, Provider],
) -> None:
    job.entry = entry
    alive = entry is not None and entry.deleted_at is None
    if alive and entry.kind == EntryKind.DIR:
        raise IsADirectory(f"is a directory: {job.vpath}")
    current = {pid for pid, r in reps.items() if is_current(r, entry)} if alive else set()
    same = (
        alive
        and not isinstance(job.source, StreamSource)
        and (entry.size, entry.mtime_ns) == (job.size, job.mtime_ns)
    )
    job.changed = not (same and current)
    if not job.changed and all(p.id in current for p in wanted):
        job.targets = []  # the common case of a re-run: nothing to do, nothing to build
        return
    targets = {p.id: p for p in wanted}
    if job.changed and alive:
        for pid in reps:
            if pid in providers and providers[pid].enabled:
                targets.setdefault(pid, providers[pid])
    job.targets = [p for pid, p in targets.items() if job.changed or pid not in current]
    here = remote_of(job.vpath)
    job.moved_from = {
        pid: reps[pid].remote_path
        for pid in (p.id for p in job.targets)
        if pid is not None and pid in reps and reps[pid].remote_path != here
    }


def drop_case_clashes(
    jobs: Sequence[FileJob], held: Mapping[tuple[str, int], set[str]], insensitive: set[int]
) -> list[str]:
    """On a provider that ignores case, `a.csv` would overwrite `A.csv`: such a target is
    dropped from its job (the file is not written there) and said why, one line each. Other
    jobs of the same batch count as held once planned. Returns the lines."""
    taken = {k: {n.casefold(): n for n in names} for k, names in held.items()}
    said = []
    for job in jobs:
        d, name = job.vpath.rsplit("/", 1)
        d = d or "/"
        keep = []
        for p in job.targets:
            names = taken.setdefault((d, p.id or 0), {}) if p.id in insensitive else None
            other = names.get(name.casefold()) if names is not None else None
            if names is not None and other not in (None, name):
                said.append(
                    f"{p.name}:{job.vpath}: not written there: {p.name} ignores case and "
                    f"holds {d.rstrip('/')}/{other}, which it would overwrite"
                )
                continue
            if names is not None:
                names[name.casefold()] = name
            keep.append(p)
        job.targets = keep
    return said


def read_order(
    entry: Any,
    reps: Mapping[int, Any],
    providers: Mapping[int, Provider],
    preferred: int | None = None,
    only: int | None = None,
) -> tuple[Holder, ...]:
    """Current replicas of `entry`, best first (see the rules above); `only` keeps one
    provider's."""
    cands = [
        Holder(providers[pid], r)
        for pid, r in reps.items()
        if is_current(r, entry)
        and pid in providers
        and providers[pid].enabled
        and (only is None or pid == only)
    ]
    cands.sort(
        key=lambda h: (
            h.provider.id != preferred,
            -h.provider.priority,
            -(h.provider.throughput_bps or 0),
            h.provider.name,
        )
    )
    return tuple(cands)
