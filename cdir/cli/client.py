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

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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

    # --- transfers with local files (cdir.cli.localfiles) --------------------------------
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
        from cdir.cli import localfiles

        return localfiles.put(self, sources, dest, to, recursive, parallel, progress, follow_links)

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
        from cdir.cli import localfiles

        return localfiles.get(self, sources, dest, recursive, parallel, provider, progress)

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


def _add(total: TransferReport, rep: TransferReport) -> None:
    for name in ("files", "bytes", "skipped", "failed"):
        setattr(total, name, getattr(total, name) + getattr(rep, name))
    total.errors += rep.errors
    total.warnings += rep.warnings
    total.seconds += rep.seconds
