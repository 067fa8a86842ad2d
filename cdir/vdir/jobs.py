"""Named one-way syncs (`cdir sync SOURCE DESTINATION [--name N] [--async]`): each end is a
local folder or a virtual path, and the job is the matching copy — put (local → virtual), get
(virtual → local) or cp (virtual → virtual) of SOURCE's contents into DESTINATION, rsync-like
(what is there already is skipped; nothing is deleted at the destination). The job, its
counters and errors are journaled in the `job` table; with `queue` it waits there for the
sync daemon (`run_queued`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cdir.catalog import jobs
from cdir.errors import CdirError, NotFound, UsageError
from cdir.schema import JobOut, TransferReport
from cdir.vdir.copies import CopyOps
from cdir.vdir.reads import ReadOps

LOCAL, VIRTUAL = "local:", "cdir:"


class JobOps(CopyOps, ReadOps):
    def sync_to(
        self,
        source: str,
        destination: str,
        *,
        name: str | None = None,
        queue: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> JobOut:
        """Run (or with `queue`, leave for the daemon) a one-way sync of SOURCE's contents
        into DESTINATION; the job as recorded."""
        src, dst = self._end(source, must_exist=True), self._end(destination, must_exist=False)
        if src.startswith(LOCAL) and dst.startswith(LOCAL):
            raise UsageError("both ends are local folders: cdir syncs to or from a virtual path")
        if src == dst:
            raise UsageError(f"source and destination are the same: {source}")
        state = "queued" if queue else "running"
        job_id = self.db.write(lambda s: jobs.add(s, name, "sync", src, dst, state))
        if not queue:
            self._run(job_id, src, dst, parallel, progress)
        return self.job(job_id)

    def run_queued(self, parallel: int = 4) -> list[JobOut]:
        """Run every queued job this process can take (the daemon calls it)."""
        with self.db.transaction() as s:
            waiting = jobs.queued(s)
        done = []
        for j in waiting:
            if self._take(j.id):
                self._run(j.id, j.source, j.destination, parallel, False)
                done.append(self.job(j.id))
        return done

    def _take(self, job_id: int) -> bool:
        return self.db.write(lambda s: jobs.take(s, job_id))

    def jobs(self, name: str | None = None, limit: int = 20) -> list[JobOut]:
        with self.db.transaction() as s:
            return [_out(r) for r in jobs.listed(s, name, limit)]

    def job(self, job_id: int) -> JobOut:
        with self.db.transaction() as s:
            row = jobs.one(s, job_id)
        if row is None:
            raise NotFound(f"no job {job_id}")
        return _out(row)

    def _run(self, job_id: int, src: str, dst: str, parallel: int, progress: bool) -> None:
        report = TransferReport()
        try:
            report = self._copy(src, dst, parallel, progress)
        except CdirError as exc:
            report.errors.append(str(exc))
            report.failed += 1
        finally:
            self.db.write(
                lambda s: jobs.finish(
                    s,
                    job_id,
                    failed=bool(report.failed),
                    files=report.files,
                    files_failed=report.failed,
                    nbytes=report.bytes,
                    errors=report.errors,
                )
            )

    def _copy(self, src: str, dst: str, parallel: int, progress: bool) -> TransferReport:
        kw: dict[str, Any] = {"recursive": True, "parallel": parallel, "progress": progress}
        s_kind, s_path = src.split(":", 1)
        d_path = dst.split(":", 1)[1]
        contents = s_path.rstrip("/") + "/"  # the source's contents, as rsync's trailing slash
        if s_kind == "local":
            return self.put([contents], d_path, **kw)
        if dst.startswith(LOCAL):
            Path(d_path).mkdir(parents=True, exist_ok=True)
            return self.get([contents], d_path, **kw)
        return self.cp(contents, d_path, **kw)

    def _end(self, text: str, *, must_exist: bool) -> str:
        """`local:/abs/dir` or `cdir:/vpath` for one end: `local:` and `cdir:` prefixes say
        it; otherwise an existing local directory (or one written ./, ../, ~) is local and
        anything else a virtual path."""
        if text.startswith(LOCAL):
            return LOCAL + os.path.abspath(os.path.expanduser(text[len(LOCAL) :]))
        if text.startswith(VIRTUAL):
            return VIRTUAL + self.path(text[len(VIRTUAL) :])
        plain_local = text.startswith(("./", "../", "~")) or text in (".", "..")
        if plain_local or os.path.isdir(os.path.expanduser(text)):
            path = os.path.abspath(os.path.expanduser(text))
            if must_exist and not os.path.isdir(path):
                raise UsageError(f"no such local folder: {text}")
            return LOCAL + path
        vp = self.path(text)
        if must_exist:
            self.entry(vp)
        return VIRTUAL + vp


def _out(r: Any) -> JobOut:
    return JobOut(
        id=r.id,
        name=r.name,
        kind=r.kind,
        source=r.source,
        destination=r.destination,
        state=r.state,
        files_done=r.files_done,
        files_failed=r.files_failed,
        bytes_done=r.bytes_done,
        errors=list(r.errors or []),
        started_at=r.started_at,
        finished_at=r.finished_at,
    )
