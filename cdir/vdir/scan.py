"""`scan`: import into the catalog what a provider already holds below a path."""

from __future__ import annotations

import time
from typing import Any

from cdir.catalog import Provider, ReplicaState, queries, writes
from cdir.catalog.models import utcnow
from cdir.catalog.writes import Version
from cdir.providers import RemoteStat
from cdir.providers.base import TMP_PREFIX
from cdir.schema import TransferReport
from cdir.vdir.base import BATCH, Core, actor_name
from cdir.vdir.plan import remote_of


class ScanOps(Core):
    def scan(self, provider: str, text: str = "/") -> TransferReport:
        """Import what a provider already holds below a path into the catalog: new files
        become entries (current there), known ones are re-confirmed, and a file that differs
        from the catalog's version is marked `conflict` (nothing is overwritten). The path
        is claimed meanwhile, as a put's is."""
        vp = self.path(text)
        with self.claim([vp], exclusive=False, command=f"scan {provider} {vp}"):
            return self._scan_claimed(provider, vp)

    def _scan_claimed(self, provider: str, vp: str) -> TransferReport:
        t0 = time.perf_counter()
        report = TransferReport()
        prov = self.provider_row(provider)
        found = self._listing(provider, vp)
        folders = {remote_of(vp)} | {st.path for st in found if st.kind == "dir"}
        if reaped := self.reap({provider: folders}):
            report.warnings.append(f"{provider}: removed {reaped} upload(s) left by a killed cdir")
        files = self._not_elsewhere(prov, [st for st in found if st.kind == "file"], report)
        dirs = _dirs_to_make(vp, found, files)
        self.db.write(lambda s: writes.ensure_dirs(s, dirs))
        for i in range(0, len(files), BATCH):
            self._scan_batch(prov, vp, files[i : i + BATCH], report)
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _not_elsewhere(
        self, prov: Provider, files: list[RemoteStat], report: TransferReport
    ) -> list[RemoteStat]:
        """The files that are not already another entry's replica (a move that did not
        finish on this provider): those are left out, each with a note."""
        assert prov.id is not None
        with self.db.transaction() as s:
            elsewhere = queries.tracked_elsewhere(s, prov.id, [st.path for st in files])
        for path, owner in sorted(elsewhere.items()):
            report.warnings.append(
                f"{prov.name}:/{path}: left out, it is the replica of {owner} "
                "(a move that did not finish there)"
            )
        report.skipped += len(elsewhere)
        return [st for st in files if st.path not in elsewhere]

    def _listing(self, provider: str, vp: str) -> list[RemoteStat]:
        b = self.backend(provider)
        found = [
            st for st in b.list(remote_of(vp), recursive=True) if not st.name.startswith(TMP_PREFIX)
        ]
        if vp != "/" and b.capabilities.empty_dirs:
            top = b.stat(remote_of(vp))
            if top.kind == "file":
                found = [top]
        return found

    def _scan_batch(
        self, prov: Provider, vp: str, chunk: list[RemoteStat], report: TransferReport
    ) -> None:
        with self.db.transaction(write=True) as s:
            self._scan_in(s, prov, vp, chunk, report)

    def _scan_in(
        self, s: Any, prov: Provider, vp: str, chunk: list[RemoteStat], report: TransferReport
    ) -> None:
        assert prov.id is not None
        precision = max(self.backend(prov.name).capabilities.mtime_precision_ns, 1)
        existing = queries.entries_at(s, ["/" + st.path for st in chunk])
        reps = queries.replica_map(s, [e.id for e in existing.values()])
        versions, seen, conflicts = [], [], []
        for st in chunk:
            path = "/" + st.path
            e = existing.get(path)
            if e is not None and e.deleted_at is None and e.kind == "dir":
                report.errors.append(
                    f"{prov.name}:{path}: a file where the catalog has a directory"
                )
                report.failed += 1
                continue
            if e is not None and e.deleted_at is not None and prov.id in reps.get(e.id, {}):
                # an rm whose delete failed here: the file is on its way out, not new
                report.warnings.append(
                    f"{prov.name}:{path}: left out, it was removed (finish with `cdir rm {path}`)"
                )
                report.skipped += 1
                continue
            if e is None or e.deleted_at is not None:
                versions.append(_version(path, st, prov.id, e, st.mtime_ns))
                report.files += 1
                report.bytes += st.size
                continue
            mine = reps.get(e.id, {}).get(prov.id)
            if mine is not None and mine.fingerprint == st.fingerprint:
                seen.append({"b_id": mine.id, "last_checked": utcnow()})
                report.skipped += 1
                continue
            report.files += 1
            report.bytes += st.size
            if _same(e, st, precision):
                versions.append(_version(path, st, prov.id, e, e.mtime_ns, changed=False))
            else:
                conflicts.append((e.id, prov.id, mine, _conflict(st, mine)))
        writes.update_replicas(s, seen)
        writes.upsert_replicas(s, conflicts)
        writes.record_versions(s, versions, "scan", actor_name())
        self.event(s, "scan", vp, prov.name, {"files": len(chunk)})


def _dirs_to_make(vp: str, found: list[RemoteStat], kept: list[RemoteStat]) -> set[str]:
    """The listed directories to create: those holding a kept file, and empty ones — not
    one whose every file was left out."""

    def ancestors(path: str) -> set[str]:
        parts = path.split("/")[:-1]
        return {"/" + "/".join(parts[: i + 1]) for i in range(len(parts))}

    holding = set().union(*(ancestors(st.path) for st in found if st.kind == "file"))
    keep = set().union(*(ancestors(st.path) for st in kept))
    listed = {"/" + st.path for st in found if st.kind == "dir"}
    return {d for d in listed if d in keep or d not in holding} | ({vp} if vp != "/" else set())


def _same(e: Any, st: RemoteStat, precision: int) -> bool:
    return bool(
        e.size == st.size
        and (e.mtime_ns is None or st.mtime_ns is None or abs(e.mtime_ns - st.mtime_ns) < precision)
    )


def _version(
    path: str, st: RemoteStat, pid: int, e: Any, mtime_ns: int | None, changed: bool = True
) -> Version:
    known = next(
        (f"{k}:{v}" for k, v in sorted(st.hashes.items(), key=lambda kv: kv[0] != "md5")), None
    )
    base = e.generation if e is not None else 0
    return Version(path, st.size, mtime_ns, known, changed, base, {pid: st})


def _conflict(st: RemoteStat, mine: Any) -> dict[str, Any]:
    return {
        "remote_path": st.path,
        "size": st.size,
        "mtime_ns": st.mtime_ns,
        "fingerprint": st.fingerprint,
        "state": ReplicaState.CONFLICT,
        "generation": mine.generation if mine is not None else 0,
        "last_checked": utcnow(),
        "last_error": None,
    }
