"""`sync`: one reconcile pass (DESIGN.md §3). Each enabled provider is listed once and its
listing compared with the catalog in bulk (`catalog.listing`); the pure planner
(`syncplan.decide`) says what to do about each path that differs; the actions are applied
(conflict copies moved aside, the catalog updated in batches, deletes run); then every
replica that is not current is brought up to date from a current one through the shared
write path, verified as any copy is. The pass holds its subtree alone (a put waits)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from cdir.catalog import Provider, ReplicaState, listing, maintenance, queries, registry
from cdir.catalog.queries import path_of
from cdir.errors import CdirError, NotFound, UsageError
from cdir.providers import Provider as Backend
from cdir.providers import RemoteStat
from cdir.schema import SyncReport
from cdir.schema.paths import split
from cdir.vdir.copies import CopyOps
from cdir.vdir.plan import FileJob, ReplicaSource, read_order, remote_of
from cdir.vdir.syncapply import Applier, add_copies, counts, describe, tally
from cdir.vdir.syncplan import (
    Action,
    Context,
    Kind,
    Listed,
    Seen,
    check_risk,
    decide,
)

BATCH = 2000  # listing rows per insert
POLICIES = ("restore", "propagate")


# catalog_state key prefix: the cursor of a provider's change feed as of its last good pass
CHANGES = "changes:"


@dataclass
class Rep:
    """What the planner reads of a replica row."""

    id: int
    provider_id: int
    remote_path: str
    generation: int
    state: str


@dataclass
class Observed:
    seen: dict[str, dict[int, Seen]] = field(default_factory=dict)
    entries: dict[str, Any] = field(default_factory=dict)
    listed: dict[int, int] = field(default_factory=dict)  # provider id → files listed
    down: set[int] = field(default_factory=set)  # providers that failed this pass

    def usable(self, provs: Mapping[int, Provider]) -> frozenset[int]:
        """Providers this pass may read from and write to: enabled, and not failed."""
        return frozenset(pid for pid, p in provs.items() if p.enabled and pid not in self.down)

    def add(self, path: str, pid: int, sn: Seen, entry: Any = None) -> None:
        self.seen.setdefault(path, {})[pid] = sn
        if entry is not None:
            self.entries[path] = entry


class SyncOps(CopyOps):
    def sync(
        self,
        text: str = "/",
        *,
        only: Sequence[str] | None = None,
        dry_run: bool = False,
        force: bool = False,
        max_delete: float = 0.5,
        parallel: int = 4,
        progress: bool = True,
    ) -> SyncReport:
        """One pass over `text`: the enabled providers (or `only` these) are listed, and the
        changes found on any of them reach all the others; no version is lost (see
        syncplan). A provider that is not listed is taken to hold what the catalog says."""
        vp = self.path(text)
        self.entry(vp)
        chosen = {p.id for p in self.resolve_providers(only)} if only else None
        with self.claim([vp], exclusive=True, command=f"sync {vp}"):
            return self._pass(vp, chosen, dry_run, force, max_delete, parallel, progress)

    def poll(self, name: str, *, parallel: int = 4) -> SyncReport | None:
        """The daemon's pass of provider `name`. One with a change feed is first asked what
        changed since the cursor kept in the catalog: nothing there, no pass (None). The new
        cursor is kept only after a pass without errors, so no change is ever skipped."""
        backend = self.backend(name)
        if not backend.capabilities.changes:
            return self.sync("/", only=[name], parallel=parallel, progress=False)
        key = CHANGES + name
        with self.db.transaction() as s:
            cursor = maintenance.get_state(s, key)
        batch = backend.changes(cursor)
        if cursor is not None and not (batch.changed or batch.deleted or batch.reset):
            if batch.cursor != cursor:  # moved on past changes outside our root
                self.db.write(lambda s: maintenance.set_state(s, key, batch.cursor))
            return None
        report = self.sync("/", only=[name], parallel=parallel, progress=False)
        if not report.errors:
            self.db.write(lambda s: maintenance.set_state(s, key, batch.cursor))
        return report

    def policy(self, text: str, deletes: str | None = None, *, clear: bool = False) -> str:
        """A directory's delete policy for sync (`restore` or `propagate`): set it (or
        `clear` it, so its parent's applies), and return the one in effect there."""
        vp = self.path(text)
        if self.entry(vp).kind != "dir":
            raise UsageError(f"a policy is set on a directory: {vp} is a file")
        if deletes is not None and deletes not in POLICIES:
            raise UsageError(f"--deletes takes {' or '.join(POLICIES)}, not {deletes!r}")
        if deletes is not None or clear:
            self.db.write(lambda s: maintenance.set_state(s, maintenance.DELETES + vp, deletes))
        with self.db.transaction() as s:
            return _policy(vp, maintenance.states(s, maintenance.DELETES))

    def _pass(
        self,
        vp: str,
        chosen: set[int | None] | None,
        dry_run: bool,
        force: bool,
        max_delete: float,
        parallel: int,
        progress: bool,
    ) -> SyncReport:
        t0 = time.perf_counter()
        report = SyncReport(dry_run=dry_run)
        with self.db.transaction() as s:
            provs = queries.providers_by_id(s)
            policies = maintenance.states(s, maintenance.DELETES)
        obs = Observed()
        listed = [p for p in provs.values() if p.enabled and (chosen is None or p.id in chosen)]
        # every provider is listed at once (their listings wait on the network or the disk,
        # each in a catalog session of its own); what they found is then taken in order
        with ThreadPoolExecutor(max(len(listed), 1), thread_name_prefix="cdir-list") as pool:
            found = [pool.submit(self._compare, p, vp) for p in listed]
        for p, f in zip(listed, found, strict=True):
            self._observe(p, vp, f, obs, report, force)
        report.providers = sorted(provs[pid].name for pid in obs.listed)
        report.checked = sum(obs.listed.values())
        actions, reps = self._plan(obs, provs, policies)
        if not force:
            check_risk(actions, reps, obs.seen, self._totals(obs, provs), provs, max_delete)
        tally(actions, report)
        if dry_run:
            report.plan = [describe(a, provs) for a in actions]
        else:
            Applier(self, provs, report, parallel).apply(actions, obs.entries)
            self._converge(vp, provs, obs.usable(provs), report, parallel, progress)
            self.db.write(lambda s: self.event(s, "sync", vp, None, counts(report)))
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    # --- detection -------------------------------------------------------------------------
    def _compare(self, p: Provider, vp: str) -> tuple[int, Any, Any, Any]:
        """List `p` below `vp` into a temporary table and compare it with the catalog:
        (files listed, rows that differ, files unknown, rows not listed)."""
        assert p.id is not None
        with self.db.transaction() as s:
            listing.start(s)
            n = 0
            for batch in _batched(self._files_below(self.backend(p.name), vp)):
                listing.add(s, [_row(st) for st in batch])
                n += len(batch)
            diff = listing.differing(s, p.id, vp)
            new = listing.unknown(s, p.id)
            gone = listing.unlisted(s, p.id, vp)
            listing.finish(s)
        return n, diff, new, gone

    def _observe(
        self,
        p: Provider,
        vp: str,
        compared: Future[tuple[int, Any, Any, Any]],
        obs: Observed,
        report: SyncReport,
        force: bool,
    ) -> None:
        """Note what differs on `p`; a provider that could not be listed, or whose listing
        is empty where the catalog has files, is left out of this pass (its replicas
        untouched, and marked)."""
        try:
            n, diff, new, gone = compared.result()
        except CdirError as exc:
            self._down(p, str(exc), report, obs)
            return
        held = (ReplicaState.CURRENT, ReplicaState.STALE)  # rows whose file should be there
        present = sum(r.state in held and r.deleted_at is None for r in gone)
        if n == 0 and present and not force:
            why = (
                f"listed no file below {vp}, but the catalog has {present} there; taken for "
                "a fault (an unmounted disk, a wrong bucket?), nothing changed there — if they "
                "really were deleted, run `cdir sync --force`"
            )
            self._down(p, why, report, obs, prefix="")
            return
        obs.listed[p.id or 0] = n
        self.db.write(lambda s: registry.mark_up(s, p.id or 0, p.name))
        self._note(self.backend(p.name), p.id or 0, diff, new, gone, obs)

    def _down(
        self,
        p: Provider,
        why: str,
        report: SyncReport,
        obs: Observed,
        prefix: str = "not synced: ",
    ) -> None:
        """Leave `p` out of this pass; its replicas keep their state and carry the reason."""
        report.errors.append(f"{p.name}: {prefix}{why}")
        report.failed += 1
        obs.down.add(p.id or 0)
        self.db.write(lambda s: registry.mark_down(s, p.id or 0, p.name, why))

    def _files_below(self, b: Backend, vp: str) -> Iterator[RemoteStat]:
        if vp != "/":
            top = b.stat(remote_of(vp)) if self.entry(vp).kind == "file" else None
            if top is not None:
                yield top
                return
        try:
            # sizes and fingerprints tell what changed; the few that did are stat'ed (_exact)
            for st in b.list(remote_of(vp), recursive=True, mtimes=False):
                if st.kind == "file":
                    yield st
        except NotFound:
            return  # no folder there yet: nothing listed

    def _note(self, b: Backend, pid: int, diff: Any, new: Any, gone: Any, obs: Observed) -> None:
        for r in diff:
            moved = r.listed_size != r.replica_size or r.listed_fingerprint != r.replica_fingerprint
            kind: Kind = (
                "unknown" if r.replica_fingerprint is None else "changed" if moved else "same"
            )
            first = Listed(
                r.remote_path,
                r.listed_size,
                r.listed_mtime_ns,
                r.listed_fingerprint or "",
                r.listed_hash,
            )
            listed = first if kind == "same" else _exact(b, first)
            if listed is not None:  # else gone since it was listed: the next pass sees it
                obs.add(path_of(r), pid, Seen(kind, listed, _listed_rep(r)), r)
        for r in new:
            found = _exact(b, Listed(r.path, r.size, r.mtime_ns, r.fingerprint or "", r.hash))
            if found is not None:
                obs.add("/" + r.path, pid, Seen("unknown", found))
        for r in gone:
            if r.deleted_at is not None or r.state in (ReplicaState.CURRENT, ReplicaState.STALE):
                obs.add(path_of(r), pid, Seen("missing", None, _listed_rep(r)), r)

    # --- planning --------------------------------------------------------------------------
    def _plan(
        self, obs: Observed, provs: Mapping[int, Provider], policies: Mapping[str, str]
    ) -> tuple[list[Action], dict[str, dict[int, Any]]]:
        """The planner's actions for every path seen differing, and each path's replicas."""
        paths = sorted(obs.seen)
        with self.db.transaction() as s:
            unseen = [p for p in paths if p not in obs.entries]
            obs.entries.update(queries.entries_at(s, unseen))
            ids = [e.id for e in obs.entries.values()]
            by_entry = queries.replica_map(s, ids)
            usable = obs.usable(provs)
            homes = _Homes(s, usable, provs)
            actions: list[Action] = []
            reps: dict[str, dict[int, Any]] = {}
            for path in paths:
                e = obs.entries.get(path)
                reps[path] = {
                    pid: _rep(r) for pid, r in (by_entry.get(e.id, {}) if e else {}).items()
                }
                ctx = Context(
                    provs,
                    usable,
                    homes.of(split(path)[0]),
                    _policy(path, policies) == "propagate",
                )
                actions += decide(path, e, reps[path], obs.seen[path], ctx)
        return actions, reps

    def _totals(self, obs: Observed, provs: Mapping[int, Provider]) -> dict[int, int]:
        """Files on each usable provider: as listed, or as the catalog counts them for one
        this pass did not list."""
        out = dict(obs.listed)
        with self.db.transaction() as s:
            for pid in obs.usable(provs) - set(out):
                out[pid] = queries.count_replicas(s, pid)
        return out

    # --- converge --------------------------------------------------------------------------
    def _converge(
        self,
        vp: str,
        provs: Mapping[int, Provider],
        usable: frozenset[int],
        report: SyncReport,
        parallel: int,
        progress: bool,
    ) -> None:
        """Copy each file whose replica on a usable provider is not current, from a current
        one, grouped by the providers it goes to."""
        with self.db.transaction() as s:
            rows = queries.needing_copies(s, vp)
            reps = queries.replica_map(s, {r.id for r in rows})
        wanted: dict[int, tuple[Any, set[int]]] = {}  # entry id → (entry, target ids)
        for r in rows:
            if r.provider_id in usable:
                wanted.setdefault(r.id, (r, set()))[1].add(r.provider_id)
        groups: dict[frozenset[int], list[FileJob]] = {}
        for e, targets in wanted.values():
            order = read_order(e, reps.get(e.id, {}), provs)
            if not order:
                report.errors.append(f"{path_of(e)}: no current replica to copy from")
                report.failed += 1
                continue
            job = FileJob(path_of(e), e.size or 0, e.mtime_ns, ReplicaSource(order), hash=e.hash)
            groups.setdefault(frozenset(targets), []).append(job)
        for group, jobs in groups.items():
            rep = self.write_jobs(
                jobs,
                set(),
                [provs[pid] for pid in sorted(group)],
                parallel=parallel,
                progress=progress,
                action="sync",
            )
            add_copies(report, rep)


class _Homes:
    """The providers a new file of a directory goes to: those holding the files beside it,
    else beside its nearest ancestor's, else every provider usable in this pass."""

    def __init__(self, s: Any, usable: frozenset[int], provs: Mapping[int, Provider]) -> None:
        self.s, self.usable, self.provs = s, usable, provs
        self.cache: dict[str, frozenset[int]] = {}

    def of(self, d: str) -> frozenset[int]:
        if d not in self.cache:
            found = queries.home_providers(self.s, d)
            enabled = frozenset(pid for pid in found if self.provs[pid].enabled)
            if enabled:
                self.cache[d] = enabled
            else:
                self.cache[d] = self.usable if d == "/" else self.of(split(d)[0])
        return self.cache[d]


def _policy(path: str, policies: Mapping[str, str]) -> str:
    p = path
    while True:
        if p in policies:
            return policies[p]
        if p == "/":
            return "restore"
        p = split(p)[0]


def _listed_rep(r: Any) -> Rep:
    """A replica as a listing comparison returns it (its columns prefixed)."""
    return Rep(r.replica_id, r.provider_id, r.remote_path, r.replica_generation, r.state)


def _rep(r: Any) -> Rep:
    return Rep(r.id, r.provider_id, r.remote_path, r.generation, r.state)


def _row(st: RemoteStat) -> dict[str, Any]:
    return {
        "path": st.path,
        "size": st.size,
        "mtime_ns": st.mtime_ns,
        "fingerprint": st.fingerprint,
        "hash": _hash(st),
    }


def _hash(st: RemoteStat) -> str | None:
    kind = next(iter(sorted(st.hashes, key=lambda k: k != "md5")), None)
    return f"{kind}:{st.hashes[kind]}" if kind else None


def _exact(b: Backend, listed: Listed) -> Listed | None:
    """A changed or new file as `stat` gives it: the exact mtime (a listing without
    per-file requests may give the store's upload time), and the hash where `stat` has one.
    None when it is gone since it was listed."""
    try:
        st = b.stat(listed.path)
    except NotFound:
        return None
    if st.kind != "file":
        return None
    return Listed(listed.path, st.size, st.mtime_ns, st.fingerprint, _hash(st) or listed.hash)


def _batched(it: Iterator[RemoteStat]) -> Iterator[list[RemoteStat]]:
    while batch := list(islice(it, BATCH)):
        yield batch
