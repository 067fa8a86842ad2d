"""Renames and removals: `mv` moves every replica on its own provider (server-side where it
can), then renames the catalog subtree; `rm` tombstones first, then deletes every replica,
and keeps what a provider failed to delete visible (state error) to be retried."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from cdir.catalog import Provider, ReplicaState, maintenance, queries, writes
from cdir.catalog.queries import path_of
from cdir.errors import AlreadyExists, CdirError, Conflict, IsADirectory, NotFound, UsageError
from cdir.providers import Provider as Backend
from cdir.providers import RemoteStat
from cdir.providers.common import chunk_reader
from cdir.schema import TransferReport
from cdir.schema.paths import join, relative, split
from cdir.vdir import engine
from cdir.vdir.base import Core, bind, interruptible
from cdir.vdir.plan import is_current, remote_of
from cdir.vdir.transfers import check_within

MOVABLE = (ReplicaState.CURRENT, ReplicaState.STALE)


class MoveOps(Core):
    def mv(self, src: str, dst: str, *, parallel: int = 4, progress: bool = True) -> TransferReport:
        """Rename a file or tree on every provider that holds it, then in the catalog; both
        ends are claimed meanwhile (a put into either waits)."""
        ends = [self.path(src), self.path(dst)]
        with self.claim(ends, exclusive=True, command=f"mv {ends[0]} {ends[1]}"):
            return self._mv_claimed(src, dst, parallel, progress)

    def _mv_claimed(self, src: str, dst: str, parallel: int, progress: bool) -> TransferReport:
        t0 = time.perf_counter()
        sp, dp, se = self._mv_paths(src, dst)
        with self.db.transaction() as s:
            reps = queries.replicas_in(s, sp, subtree=se.kind == "dir")
            files = 1 if se.kind == "file" else len(queries.files_in(s, sp, recursive=True))
            provs = queries.providers_by_id(s)
            writes.check_dirs(s, [split(dp)[0]])
            holders = {r.provider_id: provs[r.provider_id] for r in reps if r.provider_id in provs}
            self._refuse_case_clash(s, sp, dp, list(holders.values()))
            left = maintenance.undeleted(s, dp)  # a tombstone there still has a file
        if left:
            raise Conflict(
                f"cannot move onto {dp}: {left[0]} was removed but is not deleted on every "
                f"provider yet (finish with `cdir rm {left[0]}`)"
            )
        report = TransferReport()
        tasks = [
            self._move_task(r, provs[r.provider_id], sp, dp)
            for r in reps
            if r.state in MOVABLE and r.provider_id in provs
        ]
        moved: dict[int, RemoteStat] = {}
        total = sum(t.size for t in tasks)
        with interruptible(report, "mv"), engine.Progress("mv", len(tasks), total, progress) as bar:
            try:
                for out in engine.run(tasks, parallel, bar, self.widths(tasks)):
                    if out.error is None:
                        moved[out.task.key.id] = out.result
                        report.bytes += out.task.size
                    else:
                        report.errors.append(str(out.error))
            finally:
                self.db.write(lambda s: self._record_move(s, sp, dp, [t.key for t in tasks], moved))
        if se.kind == "dir":
            self._tidy(sp, {r.provider_id for r in reps if r.id in moved}, provs)
        report.files = files
        report.failed = len({t.key.entry_id for t in tasks if t.key.id not in moved})
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _refuse_case_clash(self, s: Any, sp: str, dp: str, holders: list[Provider]) -> None:
        """On a provider that ignores case, moving onto `a.csv` beside `A.csv` (or into a
        folder `Data` as `data`) would overwrite or merge: refused before anything moves."""
        blind = [p for p in holders if not self.backend(p.name).capabilities.case_sensitive]
        if not blind:
            return
        d, name = split(dp)
        for e in queries.children(s, d, recursive=False):
            other = join(d, e.basename)
            if e.basename.casefold() == name.casefold() and other not in (dp, sp):
                raise Conflict(
                    f"cannot move onto {dp}: {blind[0].name} ignores case and holds {other}"
                )

    def _mv_paths(self, src: str, dst: str) -> tuple[str, str, Any]:
        """(source path, destination path, source entry): into an existing directory the
        source keeps its name; the destination must not exist."""
        sp, dp = self.path(src), self.path(dst)
        if sp == "/":
            raise UsageError("cannot move the root")
        se = self.entry(sp)
        de = self.entry_or_none(dp)
        if de is not None and de.kind == "dir":
            dp = join(dp, se.basename)
            de = self.entry_or_none(dp)
        if de is not None:
            raise AlreadyExists(f"destination exists: {dp} (remove it first)")
        check_within(dp, sp)
        return sp, dp, se

    def _move_task(self, r: Any, prov: Provider, sp: str, dp: str) -> engine.Task[Any]:
        new = remote_of(_moved(path_of(r), sp, dp))
        run = bind(self._move_replica, prov, r, new)
        return engine.Task(r, r.entry_size or 0, run, f"{prov.name}:{path_of(r)}", prov.name)

    def _record_move(
        self, s: Any, sp: str, dp: str, reps: Sequence[Any], moved: dict[int, RemoteStat]
    ) -> None:
        rows = [
            _moved_row(r, moved[r.id])
            if r.id in moved
            else {
                "b_id": r.id,
                "state": ReplicaState.ERROR,
                "last_error": "not moved: still at the old remote path",
            }
            for r in reps
        ]
        writes.update_replicas(s, rows)
        writes.ensure_dirs(s, [split(dp)[0]])
        writes.rename_subtree(s, sp, dp)
        self.event(s, "mv", sp, None, {"to": dp})

    def _tidy(self, sp: str, pids: set[int], provs: dict[int, Provider]) -> None:
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

    def _move_replica(self, prov: Provider, r: Any, new_remote: str) -> RemoteStat:
        return move_file(self.backend(prov.name), r.remote_path, new_remote, r.size, r.mtime_ns)

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
        as replicas in state `error` under the tombstone, to be retried. The paths are
        claimed meanwhile (a put into them waits)."""
        tops = [self.path(p) for p in paths]
        with self.claim(tops, exclusive=True, command=f"rm {' '.join(tops)}"):
            return self._rm_claimed(paths, recursive, parallel, progress)

    def _rm_claimed(
        self, paths: Sequence[str], recursive: bool, parallel: int, progress: bool
    ) -> TransferReport:
        t0 = time.perf_counter()
        report = TransferReport()
        targets = [self._removable(text, recursive) for text in paths]
        tasks: list[engine.Task[list[int]]] = []
        with self.db.transaction(write=True) as s:
            provs = queries.providers_by_id(s)
            for top in targets:
                retry = top.deleted_at is not None  # a delete that failed before
                tasks += self._delete_tasks(s, top, provs, deleted=retry)
                files = writes.tombstone(s, path_of(top), subtree=top.kind == "dir")
                report.files += files or len({t.label for t in tasks}) * retry
                self.event(s, "rm", path_of(top), None, {"files": files, "retry": retry})
        gone: list[int] = []
        failed: list[dict[str, Any]] = []

        def record(s: Any) -> None:
            writes.forget_replicas(s, gone)
            writes.update_replicas(s, failed)

        with interruptible(report, "rm"), engine.Progress("rm", len(tasks), 0, progress) as bar:
            try:
                for out in engine.run(tasks, parallel, bar, self.widths(tasks)):
                    if out.error is None:
                        gone.extend(out.task.key)
                        continue
                    report.errors.append(str(out.error))
                    err = str(out.error)[: writes.MAX_ERROR]
                    failed += [
                        {"b_id": i, "state": ReplicaState.ERROR, "last_error": err}
                        for i in out.task.key
                    ]
            finally:
                self.db.write(record)
                report.failed = len({f["b_id"] for f in failed})
                report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _removable(self, text: str, recursive: bool) -> Any:
        """The live entry to remove — or a tombstone whose delete failed, to retry."""
        vp = self.path(text)
        if vp == "/":
            raise UsageError("refusing to remove /")
        e = self.entry_or_none(vp)
        if e is None:
            with self.db.transaction() as s:
                e = queries.tombstone_at(s, vp)
            if e is None:
                raise NotFound(f"no such file or directory: {vp}")
            return e
        if e.kind == "dir" and not recursive:
            with self.db.transaction() as s:
                if queries.has_children(s, vp):
                    raise IsADirectory(f"directory not empty: {vp} (use -r)")
        return e

    def _delete_tasks(
        self, s: Any, top: Any, provs: dict[int, Provider], deleted: bool = False
    ) -> list[engine.Task[list[int]]]:
        """One delete per replica; a directory's replicas go with one delete_tree per
        provider."""
        top_path = path_of(top)
        below = remote_of(top_path) + "/"
        tasks = []
        tree: dict[int, list[int]] = {}
        for r in queries.replicas_in(s, top_path, subtree=top.kind == "dir", deleted=deleted):
            if top.kind == "dir" and r.remote_path.startswith(below):
                tree.setdefault(r.provider_id, []).append(r.id)
                continue
            prov = provs[r.provider_id]
            run = bind(self._delete_file, prov, r.remote_path)
            tasks.append(engine.Task([r.id], r.entry_size or 0, run, path_of(r), prov.name))
        for pid, ids in tree.items():
            prov = provs[pid]
            run = bind(self.backend(prov.name).delete_tree, remote_of(top_path))
            tasks.append(engine.Task(ids, 0, run, f"{prov.name}:{top_path}", prov.name))
        return tasks

    def _delete_file(self, prov: Provider, remote: str) -> None:
        with contextlib.suppress(NotFound):  # already gone is what we wanted
            self.backend(prov.name).delete(remote)

    def drop_replica(self, text: str, provider: str) -> None:
        """Remove one provider's replica of a file and keep the file: refused when no other
        current replica would be left (removing the file is `rm`). The provider's copy goes
        first; a process killed before the catalog follows leaves a replica found missing,
        which the next sync pass restores: nothing is lost either way."""
        path = self.path(text)
        with self.claim([path], exclusive=True, command=f"drop {provider}:{path}"):
            e = self.entry(path)
            if e.kind != "file":
                raise IsADirectory(f"is a directory: {path}")
            pid = self.provider_row(provider).id or 0
            with self.db.transaction() as s:
                reps = queries.replica_map(s, [e.id]).get(e.id, {})
            mine = reps.get(pid)
            if mine is None:
                raise NotFound(f"{path}: no replica on {provider}")
            if not any(q != pid and is_current(r, e) for q, r in reps.items()):
                raise Conflict(f"{path}: {provider} holds its last current copy (remove the file)")
            with contextlib.suppress(NotFound):
                self.backend(provider).delete(mine.remote_path)

            def forget(s: Any) -> None:
                writes.forget_replicas(s, [mine.id])
                self.event(s, "drop", path, provider)

            self.db.write(forget)


def _moved_row(r: Any, st: RemoteStat) -> dict[str, Any]:
    """The replica row after its move; a file that is not the size the row says was
    rewritten while it moved (a put of the same tree): it is kept, but as stale."""
    row: dict[str, Any] = {"b_id": r.id, "remote_path": st.path, "fingerprint": st.fingerprint}
    if r.size is not None and st.size != r.size:
        row |= {"state": ReplicaState.STALE, "last_error": "changed while it was moved"}
    return row


def _moved(path: str, src: str, dst: str) -> str:
    return dst if path == src else join(dst, relative(path, src))


def move_file(b: Backend, src: str, dst: str, size: int | None, mtime_ns: int | None) -> RemoteStat:
    """Move a file within one provider. Without a server-side move it is copy, then delete;
    when the delete fails the copy is removed again, so the file stays (only) where it was
    and no untracked copy is left."""
    if b.capabilities.server_side_move:
        return b.move(src, dst)
    st = (
        b.copy(src, dst)
        if b.capabilities.server_side_copy
        else b.put_stream(chunk_reader(b.read_chunks(src)), dst, size=size, mtime_ns=mtime_ns)
    )
    try:
        b.delete(src)
    except CdirError:
        with contextlib.suppress(CdirError):
            b.delete(dst)
        raise
    return st
