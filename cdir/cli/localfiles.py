"""`put` and `get` of the CLI's service client: local files walked here (as `put` walks them
directly) and streamed through the REST API, one PUT or GET each, in parallel, with the
rsync-like skip decided from one listing per directory."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdir.errors import CdirError, NotADirectory, NotFound, UsageError
from cdir.schema import EntryOut, TransferReport

if TYPE_CHECKING:
    from cdir.cli.client import ServiceClient


@dataclass
class _Job:
    vpath: str
    local: str
    size: int
    mtime_ns: int


@dataclass
class _Plan:
    files: list[_Job] = field(default_factory=list)
    dirs: set[str] = field(default_factory=set)


def put(
    c: ServiceClient,
    sources: Sequence[str],
    dest: str,
    to: Sequence[str] | None,
    recursive: bool,
    parallel: int,
    progress: bool,
    follow_links: bool,
) -> TransferReport:
    """`cdir put` through the service."""
    from cdir.vdir.localtree import WalkNotes

    if not sources:
        raise UsageError("nothing to put: give at least one local file or directory")
    dest_path = c.path(dest)
    de = _or_none(lambda: c.stat(dest_path))
    if de is not None and de.kind == "file" and (len(sources) > 1 or Path(sources[0]).is_dir()):
        raise NotADirectory(f"not a directory: {dest_path}")
    into = (de is not None and de.kind == "dir") or dest.endswith("/") or len(sources) > 1
    plan, notes = _Plan(), WalkNotes()
    for src in sources:
        _gather(src, dest_path, into, recursive, follow_links, plan, notes)
    targets = [p.name for p in c.providers() if p.enabled] if not to else list(to)
    todo, skipped = _unchanged(c, plan.files, targets)
    report = TransferReport(
        skipped=skipped + len(notes.skipped),
        warnings=notes.skipped,
        errors=list(notes.errors),
        failed=len(notes.errors),
    )
    for d in sorted(plan.dirs):
        c.mkdir(d, parents=True)
    _run(todo, parallel, progress, "put", report, lambda j: _upload(c, j, to))
    return report


def _unchanged(c: ServiceClient, files: list[_Job], targets: list[str]) -> tuple[list[_Job], int]:
    """The files to send: put's rsync-like rule, as the service applies it, decided
    here so identical files cost no upload (one listing per directory)."""
    known: dict[str, EntryOut] = {}
    for d in {f.vpath.rsplit("/", 1)[0] or "/" for f in files}:
        page = _or_none(lambda d=d: c.ls(d, replicas=True))
        known |= {e.path: e for e in page.entries} if page else {}
    todo = [f for f in files if not _same(known.get(f.vpath), f, targets)]
    return todo, len(files) - len(todo)


def _upload(c: ServiceClient, job: _Job, to: Sequence[str] | None) -> int:
    with open(job.local, "rb") as f:
        c.write(job.vpath, f, job.size, job.mtime_ns, to=to)
    return job.size


def get(
    c: ServiceClient,
    sources: Sequence[str],
    dest: str,
    recursive: bool,
    parallel: int,
    provider: str | None,
    progress: bool,
) -> TransferReport:
    """`cdir get` through the service."""
    report = TransferReport()
    jobs: list[_Job] = []
    for src in sources:
        e = c.stat(src)
        into = Path(dest).is_dir() or dest.endswith("/") or len(sources) > 1
        if e.kind == "file":
            local = os.path.join(dest, e.path.rsplit("/", 1)[1]) if into else dest
            jobs.append(_Job(e.path, local, e.size or 0, _ns(e)))
            continue
        if not recursive:
            raise UsageError(f"{e.path} is a directory: use --recursive (-r)")
        base = os.path.join(dest, e.path.rsplit("/", 1)[1]) if into and e.path != "/" else dest
        for child in c.ls(e.path, recursive=True).entries:
            local = os.path.join(base, child.path[len(e.path) :].lstrip("/"))
            if child.kind == "dir":
                os.makedirs(local, exist_ok=True)
            else:
                jobs.append(_Job(child.path, local, child.size or 0, _ns(child)))
    todo = [j for j in jobs if not _same_local(j)]
    report.skipped = len(jobs) - len(todo)
    _run(todo, parallel, progress, "get", report, lambda j: _download(c, j, provider))
    return report


def _download(c: ServiceClient, job: _Job, provider: str | None) -> int:
    target = Path(job.local)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".cdir-tmp-{os.getpid()}-{target.name}")
    try:
        with open(tmp, "wb") as out:
            for chunk in c.read(job.vpath, provider=provider):
                out.write(chunk)
        os.utime(tmp, ns=(job.mtime_ns, job.mtime_ns))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return job.size


def _run(
    jobs: list[_Job],
    parallel: int,
    progress: bool,
    title: str,
    report: TransferReport,
    work: Any,
) -> None:
    from cdir.vdir.progress import Progress

    t0 = time.perf_counter()
    with (
        Progress(title, len(jobs), sum(j.size for j in jobs), progress) as bar,
        ThreadPoolExecutor(max(1, parallel)) as pool,
    ):
        for job, outcome in zip(jobs, pool.map(lambda j: _attempt(work, j), jobs), strict=True):
            if isinstance(outcome, CdirError):
                report.failed += 1
                report.errors.append(str(outcome))
            else:
                report.files += 1
                report.bytes += outcome
            bar.advance(1, job.size)
    report.seconds = round(time.perf_counter() - t0, 3)


def _or_none(fn: Any) -> Any:
    try:
        return fn()
    except NotFound:
        return None


def _attempt(work: Any, job: _Job) -> Any:
    try:
        return work(job)
    except CdirError as exc:
        return exc
    except OSError as exc:
        return CdirError(f"{job.local}: {exc.strerror or exc}")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ns(e: EntryOut) -> int:
    """The entry's mtime in ns (exact to the µs the JSON carries: no float on the way)."""
    return (e.mtime - _EPOCH) // timedelta(microseconds=1) * 1000 if e.mtime else 0


def _same(e: EntryOut | None, job: _Job, targets: list[str]) -> bool:
    if e is None or e.kind != "file" or e.size != job.size or not _same_us(_ns(e), job.mtime_ns):
        return False
    current = {r.provider for r in e.replicas or [] if r.state == "current"}
    return all(t in current for t in targets)


def _same_local(job: _Job) -> bool:
    try:
        st = os.stat(job.local)
    except OSError:
        return False
    return st.st_size == job.size and _same_us(st.st_mtime_ns, job.mtime_ns)


def _same_us(a: int, b: int) -> bool:
    """Equal as far as JSON's times tell: they carry µs, rounded."""
    return abs(a - b) < 1000


def _gather(
    src: str, dest: str, into: bool, recursive: bool, follow_links: bool, plan: _Plan, notes: Any
) -> None:
    """The files and directories one local source brings (as `put` decides directly)."""
    from cdir.vdir.localtree import put_source

    for lp, vp, st in put_source(src, dest, into, recursive, follow_links, notes):
        if st is None:
            plan.dirs.add(vp)
        else:
            plan.files.append(_Job(vp, lp, st.st_size, st.st_mtime_ns))
