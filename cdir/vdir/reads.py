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
from cdir.errors import CdirError, IsADirectory, ProviderError
from cdir.schema import TransferReport
from cdir.schema.paths import relative
from cdir.vdir import engine
from cdir.vdir.base import Core, interruptible
from cdir.vdir.plan import Holder, read_order


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
        """Download files or trees from the best current replica (falling back to others)."""
        t0 = time.perf_counter()
        report = TransferReport()
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
                report.errors.append(
                    f"{path_of(e)}: no current replica" + (f" on {provider}" if provider else "")
                )
                continue
            task = engine.Task(
                path_of(e),
                e.size or 0,
                _bind(self._download, e, local, order),
                path_of(e),
                order[0].provider.name,
            )
            jobs.append(task)
        total = sum(t.size for t in jobs)
        with (
            interruptible(report, "get"),
            engine.Progress("get", len(jobs), total, progress) as bar,
        ):
            for out in engine.run(jobs, parallel, bar, self.widths(provs.values())):
                if out.error is not None:
                    report.failed += 1
                    report.errors.append(str(out.error))
                else:
                    report.files += 1
                    report.bytes += out.task.size
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

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
            base = dest_p / e.basename if (into and e.basename) else dest_p
            with self.db.transaction() as s:
                below = queries.files_in(s, vp, recursive=recursive)
            plan += [(f, base / relative(path_of(f), vp)) for f in below]
        return plan

    def _download(self, e: Any, local: Path, order: Sequence[Holder]) -> None:
        last: CdirError | None = None
        for h in order:
            try:
                self.backend(h.provider.name).get_file(h.replica.remote_path, local)
            except CdirError as exc:
                last = exc
                continue
            size = local.stat().st_size
            if size != e.size:
                local.unlink(missing_ok=True)
                last = ProviderError(
                    f"{h.provider.name}:{path_of(e)}: size {size} != catalog {e.size}"
                )
                continue
            if e.mtime_ns is not None:
                os.utime(local, ns=(e.mtime_ns, e.mtime_ns))
            return
        assert last is not None
        raise last


def _same_local(local: Path, e: Any) -> bool:
    try:
        st = local.stat()
    except OSError:
        return False
    return st.st_size == e.size and st.st_mtime_ns == e.mtime_ns


def _bind(fn: Any, *args: Any) -> Any:
    return lambda: fn(*args)
