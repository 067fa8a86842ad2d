"""The sync planner (DESIGN.md §3): what one pass does with what it saw. Pure — the catalog's
rows and each provider's observation of a path in, actions out; no I/O — so it is tested on
tables of cases and properties. It extends the write planner (`plan.is_current`).

What a provider's listing says of a path (`Seen.kind`), against its replica row:
- `changed`: listed with another size or fingerprint than the row's (the last synced);
- `same`: listed as the row says, but the row is not simply current (stale, missing,
  an older generation, a tombstoned entry);
- `unknown`: listed where the provider has no replica row;
- `missing`: a replica row whose file was not listed.

Rules:
1. One version changed (on one provider, or the same bytes on several) → it becomes the next
   generation; every other replica goes stale and is refreshed from it.
2. Several versions → the newest modification time wins (then the provider's priority, then
   its name); every other version is kept as a conflict copy
   `name.conflict-<UTC yyyymmddThhmmssZ>-<provider>.ext` beside it. A change made to a
   replica that was not current competes with the catalog's version too: neither is lost.
3. New on a provider → imported, and replicated to the providers of its directory (`home`).
4. Missing outside cdir → restored from a current replica (policy `restore`), or, under
   `propagate`, deleted everywhere — only when it was current and nothing else changed.
5. A tombstone (an `rm` not finished) → its listed replicas are deleted, the others forgotten;
   a file that appeared at that path with no replica row is new.
6. Copies are only ever made from current replicas (the converge step reads `read_order`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cdir.catalog import EntryKind, Provider, ReplicaState
from cdir.errors import Unsafe
from cdir.schema.paths import split

Kind = Literal["changed", "same", "unknown", "missing"]
CATALOG = 0  # provider id standing for "the catalog's version" among competing versions
TOLERANCE_NS = 1_000_000_000  # without a hash, mtimes this close (and equal sizes) match


@dataclass(frozen=True)
class Listed:
    """A file as a provider listed it."""

    path: str  # remote path
    size: int
    mtime_ns: int | None
    fingerprint: str
    hash: str | None = None  # "kind:hex"


@dataclass(frozen=True)
class Seen:
    """One provider's observation of one virtual path."""

    kind: Kind
    listed: Listed | None  # None when missing
    replica: Any = None  # the replica row (None when unknown)


# --- actions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class NewVersion:
    """`source`'s bytes become the entry's next generation (or a new entry); `same` hold
    the same bytes and are current too; the other replicas go stale; `home` providers with
    no replica row get a pending one."""

    path: str
    source: int
    listed: Listed
    same: Mapping[int, Listed] = field(default_factory=dict)
    home: frozenset[int] = frozenset()
    imported: bool = False  # no live entry before: a new file


@dataclass(frozen=True)
class ConflictCopy:
    """Keep the version at `remote_path` on `provider` (a losing change, or the catalog's
    own on a current holder) as the file `name`, replicated to `home`."""

    path: str
    provider: int
    remote_path: str
    name: str
    listed: Listed
    home: frozenset[int] = frozenset()


@dataclass(frozen=True)
class MarkCurrent:
    path: str
    provider: int
    replica_id: int
    listed: Listed


@dataclass(frozen=True)
class MarkMissing:
    """Restored by the converge step (policy `restore`)."""

    path: str
    provider: int
    replica_id: int


@dataclass(frozen=True)
class Adopt:
    """A file holding the entry's bytes where the provider had no replica row, or a row
    that was not current (a replica put back by hand)."""

    path: str
    provider: int
    listed: Listed


@dataclass(frozen=True)
class DeleteReplica:
    path: str
    provider: int
    replica_id: int
    remote_path: str
    why: Literal["rm", "propagate"]


@dataclass(frozen=True)
class Forget:
    path: str
    provider: int
    replica_id: int


@dataclass(frozen=True)
class Tombstone:
    """Under `propagate`: the entry is removed (its other replicas are DeleteReplica)."""

    path: str


@dataclass(frozen=True)
class Problem:
    path: str
    provider: int
    message: str


Action = (
    NewVersion
    | ConflictCopy
    | MarkCurrent
    | MarkMissing
    | Adopt
    | DeleteReplica
    | Forget
    | Tombstone
    | Problem
)


@dataclass(frozen=True)
class Context:
    providers: Mapping[int, Provider]
    usable: frozenset[int]  # providers this pass may copy from (enabled, not failed)
    home: frozenset[int] = frozenset()  # the providers of this path's directory
    propagate_deletes: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


# --- the rules ----------------------------------------------------------------------------------
def decide(
    path: str,
    entry: Any,
    reps: Mapping[int, Any],
    seen: Mapping[int, Seen],
    ctx: Context,
) -> list[Action]:
    """What to do about one virtual path: `entry` is its catalog row (a tombstone too) or
    None, `reps` its replica rows by provider id, `seen` what the listed providers saw that
    is not simply "current and unchanged"."""
    if entry is not None and entry.deleted_at is None and entry.kind == EntryKind.DIR:
        return [
            Problem(path, pid, "a file where the catalog has a directory")
            for pid, sn in seen.items()
            if sn.listed is not None
        ]
    if entry is not None and entry.deleted_at is not None:
        return _tombstoned(path, seen, ctx)
    versions, actions = _versions(path, entry, reps, seen, ctx)
    if not versions:
        return actions + _unchanged(path, entry, reps, seen, ctx)
    return actions + _resolve(path, entry, reps, seen, versions, ctx)


def _tombstoned(path: str, seen: Mapping[int, Seen], ctx: Context) -> list[Action]:
    """Rule 5."""
    out: list[Action] = []
    new: dict[int, Listed] = {}
    for pid, sn in seen.items():
        if sn.replica is None:
            if sn.listed is not None:
                new[pid] = sn.listed
        elif sn.listed is None:
            out.append(Forget(path, pid, sn.replica.id))
        else:
            out.append(DeleteReplica(path, pid, sn.replica.id, sn.listed.path, "rm"))
    if new:
        out += _resolve(path, None, {}, {}, new, ctx)
    return out


def _versions(
    path: str, entry: Any, reps: Mapping[int, Any], seen: Mapping[int, Seen], ctx: Context
) -> tuple[dict[int, Listed], list[Action]]:
    """The versions that compete (provider id → listing; CATALOG for the catalog's own when
    a change was not made on top of it), and the unknown files that merely hold the entry's
    bytes (adopted)."""
    versions: dict[int, Listed] = {}
    adopted: list[Action] = []
    rebased = False  # some change was not made to a current replica
    for pid, sn in seen.items():
        if sn.listed is None or sn.kind == "same":
            continue
        if entry is not None and _same_bytes(sn.listed, _of(entry)) and not _current(sn, entry):
            adopted.append(Adopt(path, pid, sn.listed))  # found, or put back, as it should be
            continue
        versions[pid] = sn.listed
        r = sn.replica
        if entry is not None and (r is None or r.generation != entry.generation):
            rebased = True
    if versions and rebased and _holders(entry, reps, seen, ctx, versions):
        versions[CATALOG] = _of(entry)
    return versions, adopted


def _unchanged(
    path: str, entry: Any, reps: Mapping[int, Any], seen: Mapping[int, Seen], ctx: Context
) -> list[Action]:
    """Rules 1 and 4 when no bytes changed: rows set right, and what went missing."""
    out: list[Action] = []
    for pid, sn in seen.items():
        r = sn.replica
        if r is None:
            continue
        if sn.kind == "same" and sn.listed is not None:
            if r.generation == entry.generation and r.state != ReplicaState.CURRENT:
                out.append(MarkCurrent(path, pid, r.id, sn.listed))
        elif sn.kind == "missing" and r.state != ReplicaState.MISSING:
            if ctx.propagate_deletes and r.state == ReplicaState.CURRENT:
                return _propagate(path, reps, seen)
            out.append(MarkMissing(path, pid, r.id))
    return out


def _propagate(path: str, reps: Mapping[int, Any], seen: Mapping[int, Seen]) -> list[Action]:
    out: list[Action] = [Tombstone(path)]
    for pid, r in reps.items():
        sn = seen.get(pid)
        if sn is not None and sn.kind == "missing":
            out.append(Forget(path, pid, r.id))
        else:
            out.append(DeleteReplica(path, pid, r.id, r.remote_path, "propagate"))
    return out


def _resolve(
    path: str,
    entry: Any,
    reps: Mapping[int, Any],
    seen: Mapping[int, Seen],
    versions: dict[int, Listed],
    ctx: Context,
) -> list[Action]:
    """Rules 1 to 3: the newest version wins; the others that differ are kept as copies."""
    winner = max(versions, key=lambda pid: _rank(pid, versions[pid], ctx))
    won = versions[winner]
    same = {
        p: v
        for p, v in sorted(versions.items())
        if p not in (winner, CATALOG) and _same_bytes(v, won)
    }
    out: list[Action] = []
    for pid, v in sorted(versions.items()):
        if pid == winner or pid in same or (pid == CATALOG and _same_bytes(v, won)):
            continue
        holder = pid if pid != CATALOG else _holders(entry, reps, seen, ctx, versions)[0]
        where = v.path if pid != CATALOG else reps[holder].remote_path
        name = conflict_name(path, v.mtime_ns, ctx.providers[holder].name, ctx.now)
        out.append(ConflictCopy(path, holder, where, name, v, ctx.home))
    if winner != CATALOG:
        out.insert(0, NewVersion(path, winner, won, same, ctx.home, imported=entry is None))
    return out


def _rank(pid: int, v: Listed, ctx: Context) -> tuple[int, int, str]:
    prov = ctx.providers.get(pid)
    return (v.mtime_ns or 0, prov.priority if prov else 0, prov.name if prov else "")


def _holders(
    entry: Any,
    reps: Mapping[int, Any],
    seen: Mapping[int, Seen],
    ctx: Context,
    exclude: Mapping[int, Any],
) -> list[int]:
    """Listed providers holding the catalog's version: current, and unchanged."""
    if entry is None:
        return []
    return sorted(
        pid
        for pid, r in reps.items()
        if pid not in exclude
        and pid in ctx.usable
        and r.state == ReplicaState.CURRENT
        and r.generation == entry.generation
        and (pid not in seen or seen[pid].kind == "same")
    )


def _current(sn: Seen, entry: Any) -> bool:
    """Whether the row says this replica held the entry's version: then a change to it is
    a change, whatever its bytes look like."""
    r = sn.replica
    return bool(
        r is not None and r.state == ReplicaState.CURRENT and r.generation == entry.generation
    )


def _of(entry: Any) -> Listed:
    return Listed("", entry.size or 0, entry.mtime_ns, "", entry.hash)


def _same_bytes(a: Listed, b: Listed) -> bool:
    """Whether two versions hold the same bytes, as far as can be told without reading
    them: equal hashes of one kind; without them equal sizes and mtimes within a second.
    In doubt they differ (a needless conflict copy loses nothing; a wrong match would)."""
    if a.size != b.size:
        return False
    if a.hash and b.hash and a.hash.partition(":")[0] == b.hash.partition(":")[0]:
        return a.hash == b.hash
    if a.mtime_ns is None or b.mtime_ns is None:
        return False
    return abs(a.mtime_ns - b.mtime_ns) < TOLERANCE_NS


def check_risk(
    actions: list[Action],
    reps: Mapping[str, Mapping[int, Any]],
    seen: Mapping[str, Mapping[int, Seen]],
    totals: Mapping[int, int],
    providers: Mapping[int, Provider],
    max_delete: float,
) -> None:
    """The safety rail: Unsafe before a pass that would overwrite or delete more than
    `max_delete` of a provider's files (`totals`: files on each provider this pass writes
    to) — a notebook that rewrote a bucket, a folder emptied by mistake."""
    risk: dict[int, int] = {}
    for a in actions:
        if isinstance(a, NewVersion):
            for pid, r in reps[a.path].items():
                gone = seen[a.path].get(pid)
                if pid != a.source and pid not in a.same and not (gone and gone.kind == "missing"):
                    risk[pid] = risk.get(pid, 0) + (r.state == ReplicaState.CURRENT)
        elif isinstance(a, DeleteReplica) and a.why == "propagate":
            risk[a.provider] = risk.get(a.provider, 0) + 1
    for pid, n in sorted(risk.items()):
        if pid not in totals:
            continue  # down this pass: nothing is written there
        total = max(totals[pid], 1)
        if n > 1 and n > max_delete * total:
            raise Unsafe(
                f"sync stopped: it would overwrite or delete {n} of {providers[pid].name}'s "
                f"{total} file(s) ({n / total:.0%}, more than --max-delete {max_delete:.0%}); "
                "nothing was changed — see what changed with `cdir sync --dry-run`, then run "
                "with --force"
            )


def conflict_name(path: str, mtime_ns: int | None, provider: str, now: datetime) -> str:
    """`dir/name.conflict-<UTC yyyymmddThhmmssZ>-<provider>.ext` for a version of `path`
    last modified at `mtime_ns` (now when unknown)."""
    d, base = split(path)
    when = datetime.fromtimestamp(mtime_ns / 1e9, UTC) if mtime_ns is not None else now
    stem, dot, ext = base.rpartition(".")
    if not stem:  # no extension (or a dot file such as .env)
        stem, dot, ext = base, "", ""
    name = f"{stem}.conflict-{when:%Y%m%dT%H%M%SZ}-{provider}{dot}{ext}"
    return f"{d.rstrip('/')}/{name}"
