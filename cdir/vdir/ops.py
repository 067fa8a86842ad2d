"""Transfers through the virtual directory: put, get, cp, mv, rm, replicate, scan.

Each operation plans in memory from one catalog read, runs the transfers on the engine's
thread pool, then records the outcome in batched transactions: a replica is marked `current`
only after its provider confirmed the write and the size was checked.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, literal, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from cdir.catalog import Entry, Event, Provider, Replica
from cdir.catalog.models import table, utcnow
from cdir.errors import (
    AlreadyExists,
    CdirError,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
    UsageError,
)
from cdir.providers.base import TMP_PREFIX, RemoteStat
from cdir.providers.common import chunk_reader
from cdir.schema import TransferReport
from cdir.schema.paths import join, normalize, relative, split
from cdir.vdir import engine
from cdir.vdir.core import BATCH, Namespace, actor_name, path_of, subtree_clause


@dataclass
class FileJob:
    """One file to write to one or more providers."""

    vpath: str
    size: int
    mtime_ns: int | None
    source: Any  # a local Path, or the source Entry for virtual copies
    targets: list[Provider] = field(default_factory=list)
    entry: Entry | None = None  # existing catalog entry at vpath (may be a tombstone)
    changed: bool = True  # content differs from the entry's → new generation
    done: dict[int, RemoteStat] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    hash: str | None = None
    entry_id: int = 0  # catalog id once recorded
    generation: int = 0  # the generation it was recorded as


def remote_of(vpath: str) -> str:
    return vpath.lstrip("/")


class VDir(Namespace):
    # --- put ------------------------------------------------------------------------------
    def put(
        self,
        sources: Sequence[str],
        dest: str,
        *,
        to: Sequence[str] | None = None,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport:
        """Upload local files or trees, rsync-like: identical files are skipped."""
        if not sources:
            raise UsageError("nothing to put: give at least one local file or directory")
        dest_path = self.path(dest)
        providers = self.resolve_providers(to)
        dest_entry = self._entry_or_none(dest_path)
        if (
            dest_entry is not None
            and dest_entry.kind == "file"
            and (len(sources) > 1 or Path(sources[0]).is_dir())
        ):
            raise NotADirectory(f"not a directory: {dest_path}")
        into = (
            (dest_entry is not None and dest_entry.kind == "dir")
            or dest.endswith("/")
            or len(sources) > 1
        )
        files: list[FileJob] = []
        dirs: set[str] = set()
        for src in sources:
            p = Path(src)
            try:
                st = p.stat()
            except FileNotFoundError:
                raise NotFound(f"no such local file or directory: {src}") from None
            except OSError as exc:
                raise CdirError(f"cannot read {src}: {exc.strerror}") from None
            if p.is_dir():
                base = (
                    dest_path
                    if (src.endswith("/") or not into)
                    else join(dest_path, p.resolve().name)
                )
                dirs.add(base)
                for lp, rel, lst in walk_local(p, recursive):
                    vp = normalize(rel, base) if rel else base
                    if lst is None:
                        dirs.add(vp)
                    else:
                        files.append(FileJob(vp, lst.st_size, lst.st_mtime_ns, lp))
            else:
                vp = join(dest_path, p.name) if into else dest_path
                vp = normalize(vp)
                files.append(FileJob(vp, st.st_size, st.st_mtime_ns, p))
        return self._write(
            files,
            dirs,
            providers,
            parallel=parallel,
            progress=progress,
            action="put",
            upload=self._upload_local,
        )

    def _widths(self, providers: Sequence[Provider]) -> dict[str, int]:
        """Each provider's useful concurrency (its lane width in the engine)."""
        return {p.name: self.backend(p.name).capabilities.max_parallel for p in providers}

    def _upload_local(self, job: FileJob, prov: Provider) -> RemoteStat:
        return self.backend(prov.name).put_file(
            job.source, remote_of(job.vpath), mtime_ns=job.mtime_ns
        )

    # --- the shared write path --------------------------------------------------------------
    def _write(
        self,
        files: list[FileJob],
        dirs: set[str],
        providers: list[Provider],
        *,
        parallel: int,
        progress: bool,
        action: str,
        upload: Callable[[FileJob, Provider], RemoteStat],
    ) -> TransferReport:
        t0 = time.perf_counter()
        report = TransferReport()
        seen: set[str] = set()
        for f in files:
            if f.vpath in seen:
                raise UsageError(f"two sources write the same path: {f.vpath}")
            seen.add(f.vpath)
        with self.db.session() as s:
            existing = self.entries_at(s, [f.vpath for f in files])
            reps = self._replica_map(s, [e.id for e in existing.values() if e.id])
            all_provs = self.providers_by_id(s)
            for f in files:
                e = existing.get(f.vpath)
                if e is not None and e.deleted_at is None and e.kind == "dir":
                    raise IsADirectory(f"is a directory: {f.vpath}")
                f.entry = e
                alive = e is not None and e.deleted_at is None
                current = {
                    pid
                    for pid, r in (reps.get(e.id or -1, {}) if alive and e else {}).items()
                    if r.state == "current" and e is not None and r.generation == e.generation
                }
                f.changed = not (
                    alive
                    and e is not None
                    and e.size == f.size
                    and e.mtime_ns == f.mtime_ns
                    and current
                )
                targets = {p.id: p for p in providers}
                if f.changed and alive and e is not None:
                    # a new version goes to every provider that holds the file
                    for pid in reps.get(e.id or -1, {}):
                        if pid in all_provs and all_provs[pid].enabled:
                            targets.setdefault(pid, all_provs[pid])
                f.targets = [p for pid, p in targets.items() if f.changed or pid not in current]
                if not f.targets:
                    report.skipped += 1
            parents = {split(f.vpath)[0] for f in files} | dirs
            self.ensure_dirs(s, parents)
        todo = [f for f in files if f.targets]
        tasks = (
            engine.Task((f, p), f.size, _bind(upload, f, p), f"{p.name}:{f.vpath}", p.name)
            for f in todo
            for p in f.targets
        )
        pending = {id(f): len(f.targets) for f in todo}
        finished: list[FileJob] = []
        total_bytes = sum(f.size * len(f.targets) for f in todo)
        recorded: set[int] = set()
        try:
            with engine.Progress(action, len(todo), total_bytes, progress) as bar:
                for out in engine.run(tasks, parallel, None, self._widths(providers)):
                    f, p = out.task.key
                    assert p.id is not None
                    bar.advance(0, f.size if out.error is None else 0)
                    if out.error is not None:
                        f.failed[p.id] = str(out.error)
                    elif out.result.size != f.size:
                        f.failed[p.id] = (
                            f"{p.name}: size mismatch after write ({out.result.size} != {f.size})"
                        )
                    else:
                        f.done[p.id] = out.result
                        report.bytes += f.size
                    pending[id(f)] -= 1
                    if pending[id(f)] == 0:
                        bar.advance(1, 0)
                        finished.append(f)
                        if len(finished) >= BATCH:
                            self._record(finished, reps, action, report)
                            recorded.update(id(x) for x in finished)
                            finished = []
        finally:
            # also on Ctrl-C or an error: what providers confirmed is recorded, so a re-run
            # skips it and no replica is unknown to the catalog
            partial = [f for f in todo if f.done and pending[id(f)] and id(f) not in recorded]
            self._record(finished + partial, reps, action, report)
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _record(
        self,
        jobs: list[FileJob],
        reps: dict[int, dict[int, Replica]],
        action: str,
        report: TransferReport,
    ) -> None:
        """One transaction for a batch of finished files, in a few executemany statements
        (the ORM costs ~1 ms a row; these cost microseconds)."""
        ok: list[FileJob] = []
        for f in jobs:
            report.errors.extend(f.failed.values())
            report.failed += bool(f.failed) or not f.done
            if f.done:
                report.files += 1
                ok.append(f)
        if not ok:
            return
        now = utcnow()
        ents, reps_t, events = table(Entry), table(Replica), table(Event)
        created: list[dict[str, Any]] = []
        revised: list[dict[str, Any]] = []
        for f in ok:
            e = f.entry
            d, b = split(f.vpath)
            if f.hash is None:  # a hash a server computed becomes the version's hash
                f.hash = next(
                    (
                        f"{k}:{st.hashes[k]}"
                        for st in f.done.values()
                        for k in sorted(st.hashes, key=lambda k: k != "md5")
                    ),
                    None,
                )
            bump = f.changed or e is None or e.deleted_at is not None
            f.generation = (e.generation if e is not None else 0) + bump
            row = {
                "kind": "file",
                "size": f.size,
                "mtime_ns": f.mtime_ns,
                "hash": f.hash,
                "generation": f.generation,
                "deleted_at": None,
                "updated_at": now,
            }
            if e is None:
                created.append({"dirname": d, "basename": b, "meta": {}, **row})
            elif bump:
                revised.append({"b_id": e.id, **row})
        with self.db.session() as s:
            if created:
                ids = iter(
                    s.execute(
                        insert(ents).returning(ents.c.id, sort_by_parameter_order=True), created
                    ).scalars()
                )
                for f in ok:
                    if f.entry is None:
                        f.entry_id = next(ids)
            for f in ok:
                if f.entry is not None and f.entry.id is not None:
                    f.entry_id = f.entry.id
            if revised:
                s.execute(update(ents).where(ents.c.id == bindparam("b_id")), revised)
            new_reps: list[dict[str, Any]] = []
            written: list[dict[str, Any]] = []
            errored: list[dict[str, Any]] = []
            staled: list[dict[str, Any]] = []
            for f in ok:
                mine = reps.get(f.entry_id, {}) if f.entry is not None else {}
                for pid, st in f.done.items():
                    vals = {
                        "remote_path": st.path,
                        "size": st.size,
                        "mtime_ns": st.mtime_ns,
                        "fingerprint": st.fingerprint,
                        "generation": f.generation,
                        "state": "current",
                        "last_checked": now,
                        "last_error": None,
                    }
                    if pid in mine:
                        written.append({"b_id": mine[pid].id, **vals})
                    else:
                        new_reps.append({"entry_id": f.entry_id, "provider_id": pid, **vals})
                for pid, err in f.failed.items():
                    if pid in mine:
                        errored.append(
                            {"b_id": mine[pid].id, "state": "error", "last_error": err[:500]}
                        )
                    else:
                        new_reps.append(
                            {
                                "entry_id": f.entry_id,
                                "provider_id": pid,
                                "remote_path": remote_of(f.vpath),
                                "size": None,
                                "mtime_ns": None,
                                "fingerprint": None,
                                "generation": 0,
                                "state": "error",
                                "last_checked": now,
                                "last_error": err[:500],
                            }
                        )
                if f.changed:
                    staled += [
                        {"b_id": r.id, "state": "stale"}
                        for pid, r in mine.items()
                        if pid not in f.done and pid not in f.failed and r.state == "current"
                    ]
            if new_reps:
                s.execute(insert(reps_t), new_reps)
            for rows in (written, errored, staled):
                if rows:
                    s.execute(update(reps_t).where(reps_t.c.id == bindparam("b_id")), rows)
            actor = actor_name()
            s.execute(
                insert(events),
                [
                    {
                        "at": now,
                        "actor": actor,
                        "action": action,
                        "path": f.vpath,
                        "provider": None,
                        "detail": {
                            "to": sorted(f.done),
                            "failed": sorted(f.failed),
                            "generation": f.generation,
                        },
                    }
                    for f in ok
                ],
            )

    def _replica_map(self, s: Session, ids: Sequence[int | None]) -> dict[int, dict[int, Replica]]:
        out: dict[int, dict[int, Replica]] = {}
        real = [i for i in ids if i]
        for i in range(0, len(real), 900):
            for r in s.exec(
                select(Replica).where(col(Replica.entry_id).in_(real[i : i + 900]))
            ).all():
                out.setdefault(r.entry_id, {})[r.provider_id] = r
        return out

    # --- get ------------------------------------------------------------------------------
    def get(
        self,
        sources: Sequence[str],
        dest: str,
        *,
        recursive: bool = False,
        parallel: int = 4,
        provider: str | None = None,
        progress: bool = True,
    ) -> TransferReport:
        """Download files or trees from the best current replica (falling back to others)."""
        t0 = time.perf_counter()
        report = TransferReport()
        dest_p = Path(dest)
        into = dest_p.is_dir() or dest.endswith(("/", os.sep)) or len(sources) > 1
        plan: list[tuple[Entry, Path]] = []
        for src in sources:
            vp = self.path(src)
            e = self.entry(vp)
            if e.kind == "file":
                plan.append((e, dest_p / e.basename if into else dest_p))
                continue
            base = dest_p / e.basename if (into and e.basename) else dest_p
            for f in self._files_below(vp, recursive):
                plan.append((f, base / relative(f.path, vp)))
        with self.db.session() as s:
            reps = self._replica_map(s, [e.id for e, _ in plan])
            provs = self.providers_by_id(s)
            prefs = self.preferences(s, [path_of(e) for e, _ in plan])
        only = self._provider_row(provider).id if provider else None
        jobs = []
        for e, local in plan:
            if local.is_dir():
                raise IsADirectory(f"local path is a directory: {local}")
            with_st = _local_stat(local)
            if (
                with_st is not None
                and with_st.st_size == e.size
                and with_st.st_mtime_ns == e.mtime_ns
            ):
                report.skipped += 1
                continue
            order = self._read_order(
                e, reps.get(e.id or -1, {}), provs, prefs.get(path_of(e)), only
            )
            if not order:
                report.failed += 1
                report.errors.append(
                    f"{e.path}: no current replica" + (f" on {provider}" if provider else "")
                )
                continue
            jobs.append(
                engine.Task(
                    e.path,
                    e.size or 0,
                    _bind(self._download, e, local, order),
                    e.path,
                    order[0][0].name,
                )
            )
        with engine.Progress("get", len(jobs), sum(t.size for t in jobs), progress) as bar:
            widths = self._widths(list(provs.values()))
            for out in engine.run(jobs, parallel, bar, widths):
                if out.error is not None:
                    report.failed += 1
                    report.errors.append(str(out.error))
                else:
                    report.files += 1
                    report.bytes += out.task.size
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _files_below(self, vp: str, recursive: bool) -> list[Entry]:
        with self.db.session() as s:
            q = select(Entry).where(col(Entry.deleted_at).is_(None), Entry.kind == "file")
            q = q.where(subtree_clause(vp)) if recursive else q.where(Entry.dirname == vp)
            return list(s.exec(q.order_by(col(Entry.dirname), col(Entry.basename))).all())

    def _read_order(
        self,
        e: Entry,
        reps: dict[int, Replica],
        provs: dict[Any, Provider],
        pref: int | None,
        only: int | None,
    ) -> list[tuple[Provider, Replica]]:
        """Current replicas, best first: the preferred provider, then priority, then speed.
        Never a stale one."""
        cands = [
            (provs[pid], r)
            for pid, r in reps.items()
            if r.state == "current"
            and r.generation == e.generation
            and pid in provs
            and provs[pid].enabled
            and (only is None or pid == only)
        ]
        cands.sort(
            key=lambda c: (c[0].id != pref, -c[0].priority, -(c[0].throughput_bps or 0), c[0].name)
        )
        return cands

    def _download(self, e: Entry, local: Path, order: list[tuple[Provider, Replica]]) -> None:
        last: CdirError | None = None
        for prov, rep in order:
            try:
                self.backend(prov.name).get_file(rep.remote_path, local)
            except CdirError as exc:
                last = exc
                continue
            size = local.stat().st_size
            if size != e.size:
                local.unlink(missing_ok=True)
                last = ProviderError(f"{prov.name}:{e.path}: size {size} != catalog {e.size}")
                continue
            if e.mtime_ns is not None:
                os.utime(local, ns=(e.mtime_ns, e.mtime_ns))
            return
        assert last is not None
        raise last

    # --- cp / replicate -------------------------------------------------------------------
    def cp(
        self,
        src: str,
        dst: str,
        *,
        recursive: bool = False,
        to: Sequence[str] | None = None,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport:
        """Copy virtual → virtual: server-side within a provider, streamed across providers."""
        sp, dp = self.path(src), self.path(dst)
        se = self.entry(sp)
        de = self._entry_or_none(dp)
        if se.kind == "dir" and not recursive:
            raise IsADirectory(f"is a directory: {sp} (use -r)")
        if de is not None and de.kind == "dir":
            dp = join(dp, se.basename)
        self.check_within(dp, sp)
        sources = [se] if se.kind == "file" else self._files_below(sp, True)
        files = [
            FileJob(
                join(dp, relative(e.path, sp)) if se.kind == "dir" else dp,
                e.size or 0,
                e.mtime_ns,
                e,
                hash=e.hash,
            )
            for e in sources
        ]
        with self.db.session() as s:
            reps = self._replica_map(s, [e.id for e in sources])
            provs = self.providers_by_id(s)
        only = self.resolve_providers(to) if to else None
        holders: dict[int, Provider] = {}
        for f in files:
            order = self._read_order(f.source, reps.get(f.source.id, {}), provs, None, None)
            if not order:
                raise NotFound(f"{f.source.path}: no current replica to copy from")
            f.source = (f.source, order)
            for p, _ in order:
                holders.setdefault(p.id or 0, p)
        targets = only or list(holders.values())
        dirs = {dp} if se.kind == "dir" else set()
        return self._write(
            files,
            dirs,
            targets,
            parallel=parallel,
            progress=progress,
            action="cp",
            upload=self._copy_one,
        )

    def _copy_one(self, job: FileJob, prov: Provider) -> RemoteStat:
        _src_entry, order = job.source
        dst = self.backend(prov.name)
        for p, r in order:  # same provider and server-side copy: no bytes through us
            if p.id == prov.id and dst.capabilities.server_side_copy:
                return (
                    dst.copy(r.remote_path, remote_of(job.vpath))
                    if r.remote_path != remote_of(job.vpath)
                    else dst.stat(r.remote_path)
                )
        return self._stream(order, prov, remote_of(job.vpath), job.size, job.mtime_ns, job.hash)

    def _stream(
        self,
        order: list[tuple[Provider, Replica]],
        prov: Provider,
        remote: str,
        size: int,
        mtime_ns: int | None,
        expect: str | None = None,
    ) -> RemoteStat:
        """Provider → provider without a temporary copy; the next replica on failure.
        `expect` ("md5:…", the catalog's hash of this version, as a server reported it) is
        checked against what the destination reports: end to end, and no hashing here."""
        dst = self.backend(prov.name)
        kind, _, want = (expect or "").partition(":")
        last: CdirError | None = None
        for p, r in order:
            src = self.backend(p.name)
            try:
                # the known end lets a provider fetch a big file in parallel ranges
                chunks = (
                    src.read_chunks(r.remote_path, 0, size)
                    if size
                    else src.read_chunks(r.remote_path)
                )
                st = dst.put_stream(chunk_reader(chunks), remote, size=size, mtime_ns=mtime_ns)
                if want and st.hashes.get(kind, want) != want:
                    dst.delete(remote)
                    raise ProviderError(
                        f"{prov.name}:{remote}: {kind} mismatch after copy from {p.name}"
                    )
            except CdirError as exc:
                last = exc
                continue
            if mtime_ns is not None and dst.capabilities.set_mtime and st.mtime_ns is None:
                st = dst.set_mtime(remote, mtime_ns)
            return st
        assert last is not None
        raise last

    def replicate(
        self,
        text: str,
        to: Sequence[str],
        *,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport:
        """Bring a current copy of each file to the given providers."""
        if not to:
            raise UsageError("replicate needs --to PROVIDER[,PROVIDER…]")
        vp = self.path(text)
        e = self.entry(vp)
        sources = [e] if e.kind == "file" else self._files_below(vp, recursive)
        targets = self.resolve_providers(to)
        with self.db.session() as s:
            reps = self._replica_map(s, [x.id for x in sources])
            provs = self.providers_by_id(s)
        files = []
        for x in sources:
            order = self._read_order(x, reps.get(x.id or -1, {}), provs, None, None)
            if not order:
                raise NotFound(f"{x.path}: no current replica to copy from")
            files.append(FileJob(x.path, x.size or 0, x.mtime_ns, (x, order), hash=x.hash))
        return self._write(
            files,
            set(),
            targets,
            parallel=parallel,
            progress=progress,
            action="replicate",
            upload=self._copy_one,
        )

    # --- mv ---------------------------------------------------------------------------------
    def mv(self, src: str, dst: str, *, parallel: int = 4, progress: bool = True) -> TransferReport:
        """Rename a file or tree: every replica is moved on its own provider (server-side
        where possible), then the catalog is renamed in one transaction."""
        t0 = time.perf_counter()
        sp, dp = self.path(src), self.path(dst)
        if sp == "/":
            raise UsageError("cannot move the root")
        se = self.entry(sp)
        de = self._entry_or_none(dp)
        if de is not None and de.kind == "dir":
            dp = join(dp, se.basename)
            de = self._entry_or_none(dp)
        if de is not None:
            raise AlreadyExists(f"destination exists: {dp} (remove it first)")
        self.check_within(dp, sp)
        files = [se] if se.kind == "file" else self._files_below(sp, True)
        with self.db.session() as s:
            reps = self._replica_map(s, [e.id for e in files])
            provs = self.providers_by_id(s)
            self.ensure_dirs(s, [split(dp)[0]])
        report = TransferReport()
        tasks = []
        for e in files:
            new = dp if e.path == sp else join(dp, relative(e.path, sp))
            for pid, r in reps.get(e.id or -1, {}).items():
                if r.state in ("current", "stale") and pid in provs:
                    tasks.append(
                        engine.Task(
                            (e, r, new),
                            e.size or 0,
                            _bind(self._move_one, provs[pid], r, remote_of(new)),
                            f"{provs[pid].name}:{e.path}",
                            provs[pid].name,
                        )
                    )
        moved: dict[int, RemoteStat] = {}
        with engine.Progress("mv", len(tasks), sum(t.size for t in tasks), progress) as bar:
            for out in engine.run(tasks, parallel, bar, self._widths(list(provs.values()))):
                e, r, new = out.task.key
                if out.error is None:
                    moved[r.id or 0] = out.result
                    report.bytes += out.task.size
                else:
                    report.errors.append(str(out.error))
        if se.kind == "dir":
            self._tidy(
                sp, {r.provider_id for _e, r, _n in (t.key for t in tasks) if r.id in moved}, provs
            )
        with self.db.session() as s:
            for _e, r, _new in (t.key for t in tasks):
                if r.id in moved:
                    r.remote_path, r.fingerprint = moved[r.id].path, moved[r.id].fingerprint
                else:
                    r.state, r.last_error = "error", "not moved: still at the old remote path"
                s.add(r)
            self._rename(s, sp, dp)
            self._event(s, "mv", sp, None, {"to": dp})
        report.files = len(files)
        report.failed = len({t.key[0].id for t in tasks if t.key[1].id not in moved})
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _tidy(self, sp: str, pids: set[int], provs: dict[Any, Provider]) -> None:
        """Remove a moved directory's leftover empty folders (never a file) where dirs exist."""
        for pid in pids:
            b = self.backend(provs[pid].name)
            if not b.capabilities.empty_dirs:
                continue
            try:
                if not any(st.kind == "file" for st in b.list(remote_of(sp), recursive=True)):
                    b.delete_tree(remote_of(sp))
            except CdirError:
                pass  # tidying is best effort; the files were moved

    def _move_one(self, prov: Provider, r: Replica, new_remote: str) -> RemoteStat:
        b = self.backend(prov.name)
        if b.capabilities.server_side_move:
            return b.move(r.remote_path, new_remote)
        st = (
            b.copy(r.remote_path, new_remote)
            if b.capabilities.server_side_copy
            else b.put_stream(
                chunk_reader(b.read_chunks(r.remote_path)),
                new_remote,
                size=r.size,
                mtime_ns=r.mtime_ns,
            )
        )
        b.delete(r.remote_path)
        return st

    def _rename(self, s: Session, sp: str, dp: str) -> None:
        """Rename a path and its subtree in a few statements (no row-by-row ORM)."""
        ents, reps_t = table(Entry), table(Replica)
        d, b = split(dp)
        # tombstones at the destination give way (with the replica rows still under them)
        at_dest = sa_select(ents.c.id).where(
            ents.c.deleted_at.is_not(None),
            or_((ents.c.dirname == d) & (ents.c.basename == b), subtree_clause(dp)),
        )
        gone = list(s.execute(at_dest).scalars())
        if gone:
            s.execute(delete(reps_t).where(reps_t.c.entry_id.in_(gone)))
            s.execute(delete(ents).where(ents.c.id.in_(gone)))
        s.execute(
            update(ents)
            .where(subtree_clause(sp))
            .values(dirname=literal(dp) + func.substr(ents.c.dirname, len(sp) + 1))
        )
        sd, sb = split(sp)
        s.execute(
            update(ents)
            .where(ents.c.dirname == sd, ents.c.basename == sb)
            .values(dirname=d, basename=b, updated_at=utcnow())
        )

    # --- rm ---------------------------------------------------------------------------------
    def rm(
        self,
        paths: Sequence[str],
        *,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport:
        """Tombstone in the catalog first, then delete every replica; failures stay visible
        as replicas in state `error` under the tombstone, to be retried."""
        t0 = time.perf_counter()
        report = TransferReport()
        targets: list[Entry] = []
        for text in paths:
            vp = self.path(text)
            if vp == "/":
                raise UsageError("refusing to remove /")
            e = self.entry(vp)
            if e.kind == "dir" and not recursive:
                with self.db.session() as s:
                    child = s.exec(
                        select(Entry.id)
                        .where(Entry.dirname == vp, col(Entry.deleted_at).is_(None))
                        .limit(1)
                    ).first()
                if child is not None:
                    raise IsADirectory(f"directory not empty: {vp} (use -r)")
            targets.append(e)
        tasks: list[engine.Task[Any]] = []
        now = utcnow()
        ents, reps_t = table(Entry), table(Replica)
        with self.db.session() as s:
            provs = self.providers_by_id(s)
            for top in targets:
                top_path = top.path
                this = (ents.c.dirname == top.dirname) & (ents.c.basename == top.basename)
                scope = or_(this, subtree_clause(top_path)) if top.kind == "dir" else this
                alive = and_(scope, ents.c.deleted_at.is_(None))
                # phase 1: every replica of what goes, then the tombstones, in one transaction
                reps = s.execute(
                    sa_select(
                        reps_t.c.id,
                        reps_t.c.provider_id,
                        reps_t.c.remote_path,
                        ents.c.dirname,
                        ents.c.basename,
                        ents.c.size,
                    )
                    .join(ents, ents.c.id == reps_t.c.entry_id)
                    .where(alive)
                ).all()
                files = s.execute(
                    sa_select(func.count()).select_from(ents).where(alive, ents.c.kind == "file")
                ).scalar_one()
                s.execute(update(ents).where(alive).values(deleted_at=now))
                below = remote_of(top_path) + "/"
                tree: dict[int, list[int]] = {}  # a directory goes with one delete_tree each
                for r in reps:
                    if top.kind == "dir" and r.remote_path.startswith(below):
                        tree.setdefault(r.provider_id, []).append(r.id)
                        continue
                    prov = provs[r.provider_id]
                    tasks.append(
                        engine.Task(
                            [r.id],
                            r.size or 0,
                            _bind(self._delete_file, prov, r.remote_path),
                            f"{r.dirname.rstrip('/')}/{r.basename}",
                            prov.name,
                        )
                    )
                for pid, ids in tree.items():
                    prov = provs[pid]
                    tasks.append(
                        engine.Task(
                            ids,
                            0,
                            _bind(self.backend(prov.name).delete_tree, remote_of(top_path)),
                            f"{prov.name}:{top_path}",
                            prov.name,
                        )
                    )
                report.files += files
                self._event(s, "rm", top_path, None, {"files": files})
        # phase 2: the providers; phase 3: forget what they confirmed, mark what failed
        gone: list[int] = []
        failed: list[dict[str, Any]] = []
        with engine.Progress("rm", len(tasks), 0, progress) as bar:
            for out in engine.run(tasks, parallel, bar, self._widths(list(provs.values()))):
                if out.error is None:
                    gone.extend(out.task.key)
                else:
                    report.errors.append(str(out.error))
                    err = str(out.error)[:500]
                    failed += [
                        {"b_id": i, "state": "error", "last_error": err} for i in out.task.key
                    ]
        with self.db.session() as s:
            for i in range(0, len(gone), 900):
                s.execute(delete(reps_t).where(reps_t.c.id.in_(gone[i : i + 900])))
            if failed:
                s.execute(update(reps_t).where(reps_t.c.id == bindparam("b_id")), failed)
        report.failed = len({f["b_id"] for f in failed})
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _delete_file(self, prov: Provider, remote: str) -> None:
        with contextlib.suppress(NotFound):  # already gone is what we wanted
            self.backend(prov.name).delete(remote)

    # --- scan -------------------------------------------------------------------------------
    def scan(self, provider: str, text: str = "/") -> TransferReport:
        """Import what a provider already holds below a path into the catalog."""
        t0 = time.perf_counter()
        report = TransferReport()
        vp = self.path(text)
        prov = self._provider_row(provider)
        b = self.backend(provider)
        found: list[RemoteStat] = [
            st for st in b.list(remote_of(vp), recursive=True) if not st.name.startswith(TMP_PREFIX)
        ]
        if vp != "/":
            top = b.stat(remote_of(vp)) if b.capabilities.empty_dirs else None
            if top is not None and top.kind == "file":
                found = [top]
        dirs = {"/" + st.path for st in found if st.kind == "dir"}
        fstats = [st for st in found if st.kind == "file"]
        for i in range(0, max(len(fstats), 1), BATCH):
            chunk = fstats[i : i + BATCH]
            with self.db.session() as s:
                if i == 0:
                    self.ensure_dirs(s, dirs | {vp} if vp != "/" else dirs)
                self.ensure_dirs(s, {split("/" + st.path)[0] for st in chunk})
                existing = self.entries_at(s, ["/" + st.path for st in chunk])
                reps = self._replica_map(s, [e.id for e in existing.values()])
                for st in chunk:
                    path = "/" + st.path
                    e = existing.get(path)
                    if e is not None and e.deleted_at is None and e.kind == "dir":
                        report.errors.append(
                            f"{provider}:{path}: a file where the catalog has a directory"
                        )
                        report.failed += 1
                        continue
                    if e is None or e.deleted_at is not None:
                        e = e or Entry(dirname=split(path)[0], basename=split(path)[1], kind="file")
                        e.kind, e.deleted_at, e.generation = "file", None, e.generation + 1
                        e.size, e.mtime_ns, e.updated_at = st.size, st.mtime_ns, utcnow()
                        s.add(e)
                        s.flush()
                        state = "current"
                        report.files += 1
                    else:
                        prec = b.capabilities.mtime_precision_ns
                        same = e.size == st.size and (
                            e.mtime_ns is None
                            or st.mtime_ns is None
                            or abs(e.mtime_ns - st.mtime_ns) < max(prec, 1)
                        )
                        mine = reps.get(e.id or -1, {}).get(prov.id or -1)
                        if mine is not None and mine.fingerprint == st.fingerprint:
                            report.skipped += 1
                            mine.last_checked = utcnow()
                            s.add(mine)
                            continue
                        state = "current" if same else "conflict"
                        report.files += 1
                    assert e.id is not None and prov.id is not None
                    r = reps.get(e.id, {}).get(prov.id) or Replica(
                        entry_id=e.id, provider_id=prov.id, remote_path=st.path
                    )
                    r.remote_path, r.size, r.mtime_ns, r.fingerprint = (
                        st.path,
                        st.size,
                        st.mtime_ns,
                        st.fingerprint,
                    )
                    r.generation = e.generation if state == "current" else r.generation
                    r.state, r.last_checked = state, utcnow()
                    s.add(r)
                    report.bytes += st.size
                self._event(s, "scan", vp, provider, {"files": len(chunk)})
        report.seconds = round(time.perf_counter() - t0, 3)
        return report


def walk_local(top: Path, recursive: bool) -> Iterator[tuple[Path, str, os.stat_result | None]]:
    """(path, relative path, stat) for files and (path, rel, None) for dirs, via os.scandir."""
    stack = [(top, "")]
    while stack:
        d, rel = stack.pop()
        try:
            it = os.scandir(d)
        except OSError as exc:
            raise CdirError(f"cannot read directory {d}: {exc.strerror}") from None
        with it:
            for de in it:
                r = f"{rel}/{de.name}" if rel else de.name
                if de.is_dir(follow_symlinks=True):
                    if recursive:
                        yield Path(de.path), r, None
                        stack.append((Path(de.path), r))
                elif de.is_file(follow_symlinks=True):
                    yield Path(de.path), r, de.stat()


def _local_stat(p: Path) -> os.stat_result | None:
    try:
        return p.stat()
    except OSError:
        return None


def _bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    return lambda: fn(*args)
