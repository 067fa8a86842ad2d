"""The CLI as a client of a running cdir service: `ServiceClient` implements the virtual
directory's operations over the REST API, so the commands run unchanged and print the same.
It imports the standard library's http.client (see cdir.cli.http), pydantic and the shared
schema only — no SQLAlchemy, no provider SDK — so `cdir ls` through a service starts in a
fraction of the direct path's time.

Local files cross the wire as streams (`put` uploads each file with a PUT, `get` downloads
with a GET), so the service may run on another machine. Operations that only make sense
beside the catalog (running the daemon, unlocking the vault) are run directly when the
service is this home's own, and refused in one line when it is elsewhere (CDIR_URL)."""

from __future__ import annotations

import os
import stat as statmod
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from cdir import errors
from cdir.cli.http import Http, Response
from cdir.config import Settings
from cdir.errors import CdirError, NotADirectory, NotFound, UsageError
from cdir.schema import EntryOut, JobOut, ProviderOut, SyncReport, TransferReport
from cdir.schema.paths import normalize
from cdir.vdir import state

CHUNK = 1024 * 1024
_ERRORS = {code: cls for cls, _, code in errors.HTTP_STATUS}


@dataclass
class Page:
    entries: list[EntryOut]
    next_cursor: str | None


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


def _q(path: str) -> str:
    return quote(path.lstrip("/"), safe="/")


class ServiceClient:
    def __init__(self, url: str, token: str, settings: Settings, *, local: bool) -> None:
        self.url, self.settings, self.local = url, settings, local
        self.interactive = False
        self.notice: Any = None
        self._direct: Any = None
        self.http = Http(f"{url}/api/v1", {"Authorization": f"Bearer {token}"})

    # --- plumbing ----------------------------------------------------------------------
    def _call(self, method: str, url: str, **kw: Any) -> Response:
        try:
            r = self.http.request(method, url, **kw)
        except OSError as exc:
            raise errors.Unavailable(
                f"the cdir service at {self.url} does not answer: {exc}"
            ) from None
        if r.is_error:
            raise _error(r)
        return r

    def _json(self, method: str, url: str, **kw: Any) -> Any:
        return self._call(method, url, **kw).json()

    def __getattr__(self, name: str) -> Any:
        """What the API does not offer runs directly on this home's catalog."""
        if name.startswith("_") or name in ("http", "url", "settings", "local"):
            raise AttributeError(name)
        if not self.local:
            raise UsageError(f"not available through the cdir service at {self.url}: {name}")
        return getattr(self.direct(), name)

    def direct(self) -> Any:
        if self._direct is None:
            from cdir.vdir import VDir

            self._direct = VDir(self.settings, interactive=self.interactive)
            self._direct.notice = self.notice
        return self._direct

    def close(self) -> None:
        self.http.close()
        if self._direct is not None:
            self._direct.close()

    # --- namespace ---------------------------------------------------------------------
    @property
    def cwd(self) -> str:
        return state.current_dir(self.settings)

    def path(self, text: str) -> str:
        return normalize(text, self.cwd)

    def cd(self, text: str) -> str:
        target = self.path(text)
        try:
            e = self.stat(target)
        except NotFound:
            raise NotFound(f"no such directory: {target}") from None
        if e.kind != "dir":
            raise NotADirectory(f"not a directory: {target}")
        state.set_current_dir(self.settings, target)
        return target

    def stat(self, text: str) -> EntryOut:
        data = self._json(
            "GET", f"/entries/{_q(self.path(text))}", params={"limit": 1, "replicas": True}
        )
        e = EntryOut.model_validate(data["entry"])
        return e

    def entry_by_id(self, entry_id: int) -> EntryOut:
        return EntryOut.model_validate(self._json("GET", f"/ids/{entry_id}"))

    def ls(
        self,
        text: str = ".",
        *,
        recursive: bool = False,
        limit: int | None = None,
        after: str | None = None,
        replicas: bool = False,
    ) -> Page:
        params: dict[str, Any] = {
            "recursive": recursive,
            "replicas": replicas,
            "limit": limit or 10_000,
        }
        entries: list[EntryOut] = []
        cursor = after
        while True:
            if cursor:
                params["cursor"] = cursor
            data = self._json("GET", f"/entries/{_q(self.path(text))}", params=params)
            if data["entry"]["kind"] != "dir":
                return Page([EntryOut.model_validate(data["entry"])], None)
            entries += [EntryOut.model_validate(x) for x in data["children"]]
            cursor = data["next_cursor"]
            if limit or not cursor:
                return Page(entries, cursor)

    def search(
        self, pattern: str, under: str = "/", *, recursive: bool = False, limit: int | None = None
    ) -> list[EntryOut]:
        params = {
            "pattern": pattern,
            "under": self.path(under),
            "recursive": recursive,
            "limit": limit or 100_000,
        }
        return [EntryOut.model_validate(x) for x in self._json("GET", "/search", params=params)]

    def status(self, text: str = ".", *, recursive: bool = False) -> list[EntryOut]:
        data = self._json("GET", f"/status/{_q(self.path(text))}", params={"recursive": recursive})
        return [EntryOut.model_validate(x) for x in data]

    def mkdir(self, text: str, *, parents: bool = False) -> EntryOut:
        data = self._json("POST", f"/dirs/{_q(self.path(text))}", params={"parents": parents})
        return EntryOut.model_validate(data)

    def prefer(self, text: str, provider: str | None) -> EntryOut:
        data = self._json("PUT", f"/preferred/{_q(self.path(text))}", json={"provider": provider})
        return EntryOut.model_validate(data)

    # --- transfers within the directory --------------------------------------------------
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
        body = {
            "src": self.path(src),
            "dst": self.path(dst),
            "recursive": recursive,
            "to": list(to) if to else None,
        }
        return TransferReport.model_validate(self._json("POST", "/copy", json=body))

    def mv(self, src: str, dst: str, *, parallel: int = 4, progress: bool = True) -> TransferReport:
        body = {"src": self.path(src), "dst": self.path(dst)}
        return TransferReport.model_validate(self._json("POST", "/move", json=body))

    def rm(
        self,
        paths: Sequence[str],
        *,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
    ) -> TransferReport:
        total = TransferReport()
        for p in paths:
            data = self._json(
                "DELETE", f"/entries/{_q(self.path(p))}", params={"recursive": recursive}
            )
            _add(total, TransferReport.model_validate(data))
        return total

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
        body = {
            "path": self.path(text),
            "only": list(only) if only else None,
            "dry_run": dry_run,
            "force": force,
            "max_delete": max_delete,
        }
        return SyncReport.model_validate(self._json("POST", "/sync", json=body))

    def jobs(self, name: str | None = None, limit: int = 20) -> list[JobOut]:
        params: dict[str, Any] = {"limit": limit} | ({"name": name} if name else {})
        return [JobOut.model_validate(x) for x in self._json("GET", "/jobs", params=params)]

    def job(self, job_id: int) -> JobOut:
        return JobOut.model_validate(self._json("GET", f"/jobs/{job_id}"))

    # --- byte streams --------------------------------------------------------------------
    def read(
        self, text: str, start: int = 0, end: int | None = None, *, provider: str | None = None
    ) -> Iterator[bytes]:
        where = f"/replicas/{quote(provider)}" if provider else "/files"
        headers = (
            {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if start or end else {}
        )
        if end is not None and end <= start:
            return
        with self.http.stream("GET", f"{where}/{_q(self.path(text))}", headers=headers) as r:
            if r.status >= 400:
                raise _error(Response(r.status, r.headers, r.read()))
            while chunk := r.read(CHUNK):
                yield chunk

    def write(
        self,
        text: str,
        stream: BinaryIO,
        size: int | None = None,
        mtime_ns: int | None = None,
        *,
        to: Sequence[str] | None = None,
        if_generation: int | None = None,
    ) -> EntryOut:
        headers = {} if mtime_ns is None else {"X-Cdir-Mtime-Ns": str(mtime_ns)}
        if size is not None:
            headers["Content-Length"] = str(size)
        if if_generation is not None:
            headers["If-Match"] = str(if_generation)
        data = self._json(
            "PUT",
            f"/files/{_q(self.path(text))}",
            params={"to": list(to or [])},
            content=_chunks(stream),
            headers=headers,
        )
        return EntryOut.model_validate(data)

    # --- transfers with local files ------------------------------------------------------
    def put(
        self,
        sources: Sequence[str],
        dest: str,
        *,
        to: Sequence[str] | None = None,
        recursive: bool = False,
        parallel: int = 4,
        progress: bool = True,
        follow_links: bool = False,
    ) -> TransferReport:
        from cdir.vdir.localtree import WalkNotes

        if not sources:
            raise UsageError("nothing to put: give at least one local file or directory")
        dest_path = self.path(dest)
        de = _or_none(lambda: self.stat(dest_path))
        if de is not None and de.kind == "file" and (len(sources) > 1 or Path(sources[0]).is_dir()):
            raise NotADirectory(f"not a directory: {dest_path}")
        into = (de is not None and de.kind == "dir") or dest.endswith("/") or len(sources) > 1
        plan, notes = _Plan(), WalkNotes()
        for src in sources:
            _gather(src, dest_path, into, recursive, follow_links, plan, notes)
        targets = [p.name for p in self.providers() if p.enabled] if not to else list(to)
        todo, skipped = self._unchanged(plan.files, targets)
        report = TransferReport(
            skipped=skipped + len(notes.skipped),
            warnings=notes.skipped,
            errors=list(notes.errors),
            failed=len(notes.errors),
        )
        for d in sorted(plan.dirs):
            self.mkdir(d, parents=True)
        self._run(todo, parallel, progress, "put", report, lambda j: self._upload(j, to))
        return report

    def _unchanged(self, files: list[_Job], targets: list[str]) -> tuple[list[_Job], int]:
        """The files to send: put's rsync-like rule, as the service applies it, decided
        here so identical files cost no upload (one listing per directory)."""
        known: dict[str, EntryOut] = {}
        for d in {f.vpath.rsplit("/", 1)[0] or "/" for f in files}:
            page = _or_none(lambda d=d: self.ls(d, replicas=True))
            known |= {e.path: e for e in page.entries} if page else {}
        todo = [f for f in files if not _same(known.get(f.vpath), f, targets)]
        return todo, len(files) - len(todo)

    def _upload(self, job: _Job, to: Sequence[str] | None) -> int:
        with open(job.local, "rb") as f:
            self.write(job.vpath, f, job.size, job.mtime_ns, to=to)
        return job.size

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
        report = TransferReport()
        jobs: list[_Job] = []
        for src in sources:
            e = self.stat(src)
            into = Path(dest).is_dir() or dest.endswith("/") or len(sources) > 1
            if e.kind == "file":
                local = os.path.join(dest, e.path.rsplit("/", 1)[1]) if into else dest
                jobs.append(_Job(e.path, local, e.size or 0, _ns(e)))
                continue
            if not recursive:
                raise UsageError(f"{e.path} is a directory: use --recursive (-r)")
            base = os.path.join(dest, e.path.rsplit("/", 1)[1]) if into and e.path != "/" else dest
            for c in self.ls(e.path, recursive=True).entries:
                local = os.path.join(base, c.path[len(e.path) :].lstrip("/"))
                if c.kind == "dir":
                    os.makedirs(local, exist_ok=True)
                else:
                    jobs.append(_Job(c.path, local, c.size or 0, _ns(c)))
        todo = [j for j in jobs if not _same_local(j)]
        report.skipped = len(jobs) - len(todo)
        self._run(todo, parallel, progress, "get", report, lambda j: self._download(j, provider))
        return report

    def _download(self, job: _Job, provider: str | None) -> int:
        target = Path(job.local)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".cdir-tmp-{os.getpid()}-{target.name}")
        try:
            with open(tmp, "wb") as out:
                for chunk in self.read(job.vpath, provider=provider):
                    out.write(chunk)
            os.utime(tmp, ns=(job.mtime_ns, job.mtime_ns))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return job.size

    def _run(
        self,
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

    # --- providers -----------------------------------------------------------------------
    def providers(self) -> list[ProviderOut]:
        return [ProviderOut.model_validate(x) for x in self._json("GET", "/providers")]

    def provider(self, name: str) -> ProviderOut:
        return ProviderOut.model_validate(self._json("GET", f"/providers/{quote(name)}"))

    def add_provider(
        self,
        name: str,
        kind: str,
        root: str,
        options: dict[str, str],
        *,
        priority: int = 0,
        location: str | None = None,
        check: bool = True,
    ) -> ProviderOut:
        body = {
            "name": name,
            "kind": kind,
            "root": root,
            "options": options,
            "priority": priority,
            "location": location,
            "check": check,
        }
        return ProviderOut.model_validate(self._json("POST", "/providers", json=body))

    def remove_provider(self, name: str, *, force: bool = False) -> int:
        data = self._json("DELETE", f"/providers/{quote(name)}", params={"force": force})
        return int(data["replicas_forgotten"])

    def test_provider(self, name: str) -> float:
        return float(self._json("POST", f"/providers/{quote(name)}/test")["seconds"])


def _error(r: Response) -> CdirError:
    try:
        err = r.json()["error"]
        cls, message = _ERRORS.get(err["code"], CdirError), str(err["message"])
    except (ValueError, KeyError, TypeError):
        cls, message = CdirError, f"the cdir service answered {r.status}"
    if r.status == 401:
        message += " (the token is CDIR_TOKEN or the service's token file)"
    return cls(message)


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    while chunk := stream.read(CHUNK):
        yield chunk


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


def _add(total: TransferReport, rep: TransferReport) -> None:
    for name in ("files", "bytes", "skipped", "failed"):
        setattr(total, name, getattr(total, name) + getattr(rep, name))
    total.errors += rep.errors
    total.warnings += rep.warnings
    total.seconds += rep.seconds


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
    """The files and directories one local source brings (as `put` does directly)."""
    from cdir.vdir.localtree import child_path, walk_local

    try:
        st = os.stat(src)
    except FileNotFoundError:
        raise NotFound(f"no such local file or directory: {src}") from None
    except OSError as exc:
        raise CdirError(f"cannot read {src}: {exc.strerror}") from None
    name = os.path.basename(os.path.abspath(src))
    if not statmod.S_ISDIR(st.st_mode):
        vp = child_path(dest, name) if into else dest
        plan.files.append(_Job(vp, src, st.st_size, st.st_mtime_ns))
        return
    base = dest if (src.endswith("/") or not into) else child_path(dest, name)
    plan.dirs.add(base)
    for lp, vp, lst in walk_local(src, base, recursive, notes, follow_links):
        if lst is None:
            plan.dirs.add(vp)
        else:
            plan.files.append(_Job(vp, lp, lst.st_size, lst.st_mtime_ns))
