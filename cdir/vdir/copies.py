"""Copies inside the virtual directory: `cp` (virtual → virtual) and `replicate` (a current
copy onto more providers), both through the shared write path of `transfers`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cdir.catalog import Provider, ReplicaState, queries, writes
from cdir.catalog.queries import path_of
from cdir.errors import IsADirectory, NotFound, UsageError
from cdir.schema import TransferReport
from cdir.schema.paths import join, relative
from cdir.vdir.plan import FileJob, Holder, ReplicaSource, read_order, remote_of
from cdir.vdir.transfers import TransferOps, check_within


class CopyOps(TransferOps):
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
        de = self.entry_or_none(dp)
        if se.kind == "dir" and not recursive:
            raise IsADirectory(f"is a directory: {sp} (use -r)")
        if de is not None and de.kind == "dir":
            dp = join(dp, se.basename)
        check_within(dp, sp)
        sources = self.sources(sp, se, recursive=True)
        files = [
            FileJob(
                join(dp, relative(path_of(x), sp)) if se.kind == "dir" else dp,
                x.size or 0,
                x.mtime_ns,
                ReplicaSource(order),
                hash=x.hash,
            )
            for x, order in sources
        ]
        holders = {h.provider.id: h.provider for _x, order in sources for h in order}
        targets = self.resolve_providers(to) if to else list(holders.values())
        dirs = {dp} if se.kind == "dir" else set()
        return self.write_jobs(
            files, dirs, targets, parallel=parallel, progress=progress, action="cp"
        )

    def replicate(
        self,
        text: str,
        to: Sequence[str],
        *,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport:
        """Bring a current copy of each file to the given providers. Each target is listed
        once first: a replica the catalog calls current but that is gone or differs there is
        marked (missing / stale) and copied again."""
        if not to:
            raise UsageError("replicate needs --to PROVIDER[,PROVIDER…]")
        vp = self.path(text)
        e = self.entry(vp)
        targets = self.resolve_providers(to)
        for t in targets:
            self._check_replicas(vp, e, recursive, t)
        files = [
            FileJob(path_of(x), x.size or 0, x.mtime_ns, ReplicaSource(order), hash=x.hash)
            for x, order in self.sources(vp, e, recursive=recursive)
        ]
        return self.write_jobs(
            files, set(), targets, parallel=parallel, progress=progress, action="replicate"
        )

    def _check_replicas(self, vp: str, e: Any, recursive: bool, prov: Provider) -> None:
        """Mark `prov`'s current replicas at or below `vp` that its listing lacks (missing)
        or shows with another size or fingerprint (stale)."""
        b = self.backend(prov.name)
        try:
            if e.kind == "file":
                listed = {remote_of(vp): b.stat(remote_of(vp))}
            else:
                listed = {st.path: st for st in b.list(remote_of(vp), recursive=recursive)}
        except NotFound:
            listed = {}
        with self.db.transaction() as s:
            reps = queries.replicas_in(s, vp, subtree=e.kind == "dir")
        rows = []
        for r in reps:
            if r.provider_id != prov.id or r.state != ReplicaState.CURRENT:
                continue
            if not recursive and e.kind == "dir" and r.dirname != vp:
                continue
            st = listed.get(r.remote_path)
            if st is None:
                rows.append(
                    {
                        "b_id": r.id,
                        "state": ReplicaState.MISSING,
                        "last_error": f"{prov.name}: not found by replicate",
                    }
                )
            elif st.size != r.size or (r.fingerprint and st.fingerprint != r.fingerprint):
                rows.append(
                    {
                        "b_id": r.id,
                        "state": ReplicaState.STALE,
                        "last_error": f"{prov.name}: changed outside cdir",
                    }
                )
        if rows:
            self.db.write(lambda s: writes.update_replicas(s, rows))

    def sources(
        self, path: str, e: Any, *, recursive: bool
    ) -> list[tuple[Any, tuple[Holder, ...]]]:
        """The file at `path` or the files below it, each with its current replicas best
        first; NotFound for a file that has none."""
        with self.db.transaction() as s:
            rows = [e] if e.kind == "file" else queries.files_in(s, path, recursive=recursive)
            reps = queries.replica_map(s, [x.id for x in rows])
            provs = queries.providers_by_id(s)
        out = []
        for x in rows:
            order = read_order(x, reps.get(x.id, {}), provs)
            if not order:
                raise NotFound(f"{path_of(x)}: no current replica to copy from")
            out.append((x, order))
        return out
