"""Applying a sync plan (vdir.sync): conflict copies are moved aside on their provider first —
a path whose copy could not be made is left alone this pass, so its version is never
overwritten — then the catalog is updated in batched transactions, then deletes run through
the engine (a failed one stays visible as a replica in state `error`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cdir.catalog import Provider, ReplicaState, queries, writes
from cdir.catalog.models import utcnow
from cdir.catalog.writes import Version
from cdir.errors import CdirError, NotFound
from cdir.providers import RemoteStat
from cdir.schema import SyncReport, TransferReport
from cdir.vdir import engine
from cdir.vdir.base import BATCH, actor_name, bind
from cdir.vdir.moves import move_file
from cdir.vdir.plan import remote_of
from cdir.vdir.syncplan import (
    Action,
    Adopt,
    ConflictCopy,
    DeleteReplica,
    Forget,
    MarkCurrent,
    MarkMissing,
    NewVersion,
    Problem,
    Tombstone,
)

if TYPE_CHECKING:
    from cdir.vdir.sync import SyncOps


class Applier:
    def __init__(
        self, core: SyncOps, provs: Mapping[int, Provider], report: SyncReport, parallel: int
    ) -> None:
        self.core, self.provs, self.report, self.parallel = core, provs, report, parallel

    def apply(self, actions: Sequence[Action], entries: Mapping[str, Any]) -> None:
        moved = self._conflict_copies([a for a in actions if isinstance(a, ConflictCopy)])
        blocked = {a.path for a in actions if isinstance(a, ConflictCopy) and id(a) not in moved}
        todo = [a for a in actions if a.path not in blocked and not isinstance(a, Problem)]
        for i in range(0, len(todo), BATCH):
            chunk = todo[i : i + BATCH]
            self.core.db.write(self._recorder(chunk, entries, moved))
        self._delete([a for a in todo if isinstance(a, DeleteReplica)])

    # --- provider I/O ------------------------------------------------------------------------
    def _conflict_copies(self, copies: list[ConflictCopy]) -> dict[int, RemoteStat]:
        """Move each losing version aside (id(action) → where it is now)."""
        done: dict[int, RemoteStat] = {}
        for a in copies:
            b = self.core.backend(self.provs[a.provider].name)
            try:
                st = move_file(
                    b, a.remote_path, remote_of(a.name), a.listed.size, a.listed.mtime_ns
                )
            except CdirError as exc:
                self.report.errors.append(
                    f"{self.provs[a.provider].name}:{a.path}: conflict copy not made, the path "
                    f"is left as it is until the next pass: {exc}"
                )
                self.report.failed += 1
                continue
            done[id(a)] = st
        return done

    def _delete(self, deletes: list[DeleteReplica]) -> None:
        tasks = [
            engine.Task(
                a,
                0,
                bind(_delete_one, self.core.backend(self.provs[a.provider].name), a.remote_path),
                f"{self.provs[a.provider].name}:{a.path}",
                self.provs[a.provider].name,
            )
            for a in deletes
        ]
        gone: list[int] = []
        failed: list[dict[str, Any]] = []
        for out in engine.run(tasks, self.parallel, None, self.core.widths(tasks)):
            if out.error is None:
                gone.append(out.task.key.replica_id)
                continue
            self.report.errors.append(str(out.error))
            self.report.failed += 1
            failed.append(
                {
                    "b_id": out.task.key.replica_id,
                    "state": ReplicaState.ERROR,
                    "last_error": str(out.error)[: writes.MAX_ERROR],
                }
            )

        def record(s: Any) -> None:
            writes.forget_replicas(s, gone)
            writes.update_replicas(s, failed)

        if gone or failed:
            self.core.db.write(record)

    # --- the catalog ---------------------------------------------------------------------------
    def _recorder(
        self,
        actions: Sequence[Action],
        entries: Mapping[str, Any],
        moved: Mapping[int, RemoteStat],
    ) -> Callable[[Any], None]:
        return lambda s: self._record(s, actions, entries, moved)

    def _record(
        self,
        s: Any,
        actions: Sequence[Action],
        entries: Mapping[str, Any],
        moved: Mapping[int, RemoteStat],
    ) -> None:
        now = utcnow()
        versions: list[tuple[Version, frozenset[int]]] = []
        rows: list[dict[str, Any]] = []
        upserts: list[tuple[int, int, str, dict[str, Any]]] = []
        forget: list[int] = []
        for a in actions:
            e: Any = entries.get(a.path)
            if isinstance(a, NewVersion):
                versions.append((_new_version(a, e), a.home))
            elif isinstance(a, ConflictCopy):
                st = moved[id(a)]
                l_ = a.listed
                v = Version(a.name, l_.size, l_.mtime_ns, l_.hash, True, 0, {a.provider: st})
                versions.append((v, a.home))
                if e is not None and e.deleted_at is None:  # the file moved away from there
                    upserts.append((e.id, a.provider, a.path, _missing("moved to " + a.name)))
            elif isinstance(a, Adopt):
                upserts.append((e.id, a.provider, a.path, _current(a.listed, e.generation, now)))
            elif isinstance(a, MarkCurrent):
                rows.append({"b_id": a.replica_id, **_current(a.listed, e.generation, now)})
            elif isinstance(a, MarkMissing):
                rows.append({"b_id": a.replica_id, **_missing("not found by sync")})
            elif isinstance(a, Forget):
                forget.append(a.replica_id)
            elif isinstance(a, Tombstone):
                writes.tombstone(s, a.path, subtree=False)
        self.report.errors += writes.record_versions(
            s, [v for v, _ in versions], "sync", actor_name()
        )
        writes.pending_replicas(s, [(v.entry_id, home) for v, home in versions if v.entry_id])
        writes.upsert_replicas(s, _existing(s, upserts))
        writes.update_replicas(s, rows)
        writes.forget_replicas(s, forget)


def _new_version(a: NewVersion, e: Any) -> Version:
    l_ = a.listed
    base = e.generation if e is not None else 0
    return Version(a.path, l_.size, l_.mtime_ns, l_.hash, True, base, {a.source: l_, **a.same})


def _current(listed: Any, generation: int, now: Any) -> dict[str, Any]:
    return {
        "remote_path": listed.path,
        "size": listed.size,
        "mtime_ns": listed.mtime_ns,
        "fingerprint": listed.fingerprint,
        "generation": generation,
        "state": ReplicaState.CURRENT,
        "last_checked": now,
        "last_error": None,
    }


def _missing(why: str) -> dict[str, Any]:
    return {"state": ReplicaState.MISSING, "last_error": why}


def _existing(s: Any, items: list[tuple[int, int, str, dict[str, Any]]]) -> list[Any]:
    """Upserts with the replica row each one changes (read now): an existing row is
    updated, a new one gets the columns a row needs."""
    reps = queries.replica_map(s, {entry_id for entry_id, *_ in items})
    out = []
    for entry_id, pid, path, vals in items:
        row = reps.get(entry_id, {}).get(pid)
        if row is None:
            vals = {
                "remote_path": remote_of(path),
                "size": None,
                "mtime_ns": None,
                "fingerprint": None,
                "generation": 0,
            } | vals
        out.append((entry_id, pid, row, vals))
    return out


def _delete_one(b: Any, remote: str) -> None:
    with contextlib.suppress(NotFound):  # already gone is what was wanted
        b.delete(remote)


def tally(actions: Sequence[Action], report: SyncReport) -> None:
    """The report's counts of what a plan does (also for a dry run)."""
    for a in actions:
        if isinstance(a, NewVersion):
            report.imported += a.imported
            report.changed += not a.imported
        elif isinstance(a, ConflictCopy):
            report.conflicts += 1
        elif isinstance(a, MarkMissing):
            report.restored += 1
        elif isinstance(a, DeleteReplica):
            report.deleted += 1
        elif isinstance(a, Problem):
            report.errors.append(f"{a.path}: {a.message}")
            report.failed += 1


def counts(r: SyncReport) -> dict[str, int]:
    keys = ("checked", "changed", "imported", "conflicts", "restored", "deleted", "copied")
    return {k: getattr(r, k) for k in keys}


def add_copies(report: SyncReport, rep: TransferReport) -> None:
    """What the copy step did, into the pass's report."""
    report.copied += rep.files
    report.bytes += rep.bytes
    report.failed += rep.failed
    report.errors += rep.errors


def describe(a: Action, provs: Mapping[int, Provider]) -> str:
    """One line of a dry run's plan."""
    name = provs[a.provider].name if not isinstance(a, (NewVersion, Tombstone)) else ""
    if isinstance(a, NewVersion):
        also = (
            f" (same bytes on {', '.join(provs[p].name for p in sorted(a.same))})" if a.same else ""
        )
        if a.imported:
            return f"{a.path}: new on {provs[a.source].name}{also}, imported"
        return f"{a.path}: new version from {provs[a.source].name}{also}"
    if isinstance(a, ConflictCopy):
        return f"{a.path}: {name}'s version kept as {a.name}"
    if isinstance(a, Adopt):
        return f"{a.path}: found on {name} with the same bytes, recorded there"
    if isinstance(a, MarkCurrent):
        return f"{a.path}: current again on {name}"
    if isinstance(a, MarkMissing):
        return f"{a.path}: missing on {name}, restored from a current replica"
    if isinstance(a, DeleteReplica):
        why = "finishing `cdir rm`" if a.why == "rm" else "deleted elsewhere (policy propagate)"
        return f"{a.path}: delete on {name} ({why})"
    if isinstance(a, Forget):
        return f"{a.path}: already gone on {name}, forgotten"
    if isinstance(a, Tombstone):
        return f"{a.path}: removed (deleted outside cdir, policy propagate)"
    return f"{a.path}: {name}: {a.message}"
