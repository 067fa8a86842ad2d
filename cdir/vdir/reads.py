"""`get`: download files or trees from the best current replica, going on to the next one
when a replica fails."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdir.catalog import queries
from cdir.catalog.queries import path_of
from cdir.errors import CdirError, IsADirectory, NotFound
from cdir.schema import TransferReport
from cdir.schema.paths import relative
from cdir.vdir import engine, verify
from cdir.vdir.base import Core, bind, interruptible
from cdir.vdir.plan import Holder, read_order
from cdir.vdir.verify import Findings


class ReadOps(Core):
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
        """Download files or trees from the best current replica (falling back to others),
        each checked against the catalog (see `verify`)."""
        t0 = time.perf_counter()
        report = TransferReport()
        findings = Findings()
        jobs = self._get_jobs(sources, dest, recursive, provider, findings, report)
        total = sum(t.size for t in jobs)
        with (
            interruptible(report, "get"),
            engine.Progress("get", len(jobs), total, progress) as bar,
        ):
            try:
                for out in engine.run(jobs, parallel, bar, self.widths(jobs)):
                    if out.error is not None:
                        report.failed += 1
                        report.errors.append(str(out.error))
                    else:
                        report.files += 1
                        report.bytes += out.task.size
            finally:
                findings.record(self.db)
                report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def _get_jobs(
        self,
        sources: Sequence[str],
        dest: str,
        recursive: bool,
        provider: str | None,
        findings: Findings,
        report: TransferReport,
    ) -> list[engine.Task[str]]:
        plan = self._get_plan(sources, Path(dest), dest, recursive)
        only = self.provider_row(provider).id if provider else None
        with self.db.transaction() as s:
            reps = queries.replica_map(s, [e.id for e, _ in plan])
            provs = queries.providers_by_id(s)
            prefs = queries.preferences(s, [path_of(e) for e, _ in plan])
        jobs = []
        for e, local in plan:
            if local.is_dir():
                raise IsADirectory(f"local path is a directory: {local}")
            if _same_local(local, e):
                report.skipped += 1
                continue
            order = read_order(e, reps.get(e.id, {}), provs, prefs.get(path_of(e)), only)
            if not order:
                report.failed += 1
                on = f" on {provider}" if provider else ""
                report.errors.append(f"{path_of(e)}: no current replica{on}")
                continue
            run = bind(self._download, e, local, order, findings)
            jobs.append(
                engine.Task(path_of(e), e.size or 0, run, path_of(e), order[0].provider.name)
            )
        return jobs

    def _get_plan(
        self, sources: Sequence[str], dest_p: Path, dest: str, recursive: bool
    ) -> list[tuple[Any, Path]]:
        into = dest_p.is_dir() or dest.endswith(("/", os.sep)) or len(sources) > 1
        plan: list[tuple[Any, Path]] = []
        for src in sources:
            vp = self.path(src)
            e = self.entry(vp)
            if e.kind == "file":
                plan.append((e, dest_p / e.basename if into else dest_p))
                continue
            if not recursive:
                raise IsADirectory(f"is a directory: {vp} (use -r)")
            # into a folder it keeps its name — unless given as DIR/ (its contents, as rsync)
            keep = into and e.basename and not src.endswith("/")
            base = dest_p / e.basename if keep else dest_p
            with self.db.transaction() as s:
                below = queries.files_in(s, vp, recursive=recursive)
            plan += [(f, base / relative(path_of(f), vp)) for f in below]
        return plan

    def _download(self, e: Any, local: Path, order: Sequence[Holder], findings: Findings) -> None:
        """The first replica that downloads and checks out; the ones found missing or
        changed are noted, to be marked."""
        last: CdirError | None = None
        for h in order:
            try:
                verify.download(self.backend(h.provider.name), h, e, local)
            except (NotFound, verify.Changed) as exc:
                findings.note(h, exc)
                last = _named(exc, h, e)
                continue
            except CdirError as exc:
                last = exc
                continue
            if e.mtime_ns is not None:
                os.utime(local, ns=(e.mtime_ns, e.mtime_ns))
            return
        assert last is not None
        raise last


def _named(exc: CdirError, h: Holder, e: Any) -> CdirError:
    """A provider's NotFound named by virtual path and provider (not a temp or local
    path)."""
    if isinstance(exc, NotFound):
        return NotFound(f"{h.provider.name}:{path_of(e)}: the replica is missing (marked)")
    return exc


def _same_local(local: Path, e: Any) -> bool:
    try:
        st = local.stat()
    except OSError:
        return False
    return st.st_size == e.size and st.st_mtime_ns == e.mtime_ns
