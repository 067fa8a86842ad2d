"""A contract fake of the Google Drive v3 REST API, written from its published reference:
files.list/get/create/update/delete/copy, media downloads with ranges, multipart and
resumable uploads (308 Resume Incomplete, 256 KiB chunks), changes.getStartPageToken and
changes.list, shared drives (supportsAllDrives, corpora=drive), Google's error bodies, and an
OAuth token endpoint. Files live in memory. Switches for tests: `throttle` (429 or 403
rate limits, with Retry-After), `expire_tokens` (401 until refreshed), `break_chunks` (a
chunk half-stored, then 503), `expire_changes` (an old page token refused)."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FOLDER = "application/vnd.google-apps.folder"
QUANTUM = 256 * 1024
CLIENT_ID = "fake-client"
MY_DRIVE = "0AFakeMyDriveRoot"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class DriveFault(Exception):
    """An error answer in Google's shape."""

    def __init__(
        self, status: int, reason: str, message: str, headers: dict[str, str] | None = None
    ):
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.headers = headers or {}

    def response(self) -> Response:
        domain = "usageLimits" if "RateLimit" in self.reason else "global"
        body = {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"domain": domain, "reason": self.reason, "message": self.message}],
            }
        }
        return JSONResponse(body, self.status, headers=self.headers)


def not_found(file_id: str) -> DriveFault:
    return DriveFault(404, "notFound", f"File not found: {file_id}.")


@dataclass
class File:
    id: str
    name: str
    mime: str
    parents: list[str]
    drive: str | None  # shared drive ID, None in My Drive
    content: bytes | None = None  # None for folders and Google Docs
    modified: str = field(default_factory=now)
    trashed: bool = False

    def resource(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime,
            "parents": list(self.parents),
            "trashed": self.trashed,
            "modifiedTime": self.modified,
        }
        if self.drive:
            out["driveId"] = self.drive
        if self.content is not None:
            out["size"] = str(len(self.content))
            out["md5Checksum"] = hashlib.md5(self.content).hexdigest()
            out["sha1Checksum"] = hashlib.sha1(self.content).hexdigest()
            out["sha256Checksum"] = hashlib.sha256(self.content).hexdigest()
        return out


@dataclass
class Session:
    target: str | None  # file ID whose content is replaced, or None to create
    meta: dict[str, Any]
    total: int | None
    fields: str | None  # of the request that opened the session: they shape the last answer
    data: bytearray = field(default_factory=bytearray)


_TERM = re.compile(
    r"""^(?:'(?P<pid>(?:[^'\\]|\\.)*)'\s+in\s+parents
        |name\s*=\s*'(?P<name>(?:[^'\\]|\\.)*)'
        |trashed\s*=\s*(?P<trashed>true|false)
        |mimeType\s*=\s*'(?P<mime>[^']*)')$""",
    re.X,
)


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _split_and(q: str) -> list[str]:
    """Split a query on ` and ` outside string literals."""
    parts, cur, quoted, i = [], "", False, 0
    while i < len(q):
        ch = q[i]
        if quoted and ch == "\\":
            cur += q[i : i + 2]
            i += 2
            continue
        if ch == "'":
            quoted = not quoted
        if not quoted and q.startswith(" and ", i):
            parts.append(cur.strip())
            cur, i = "", i + 5
            continue
        cur += ch
        i += 1
    parts.append(cur.strip())
    return parts


class FakeDrive:
    def __init__(self, max_page: int = 5) -> None:
        self.max_page = max_page
        self.lock = threading.RLock()
        self.ids = itertools.count(1)
        self.files: dict[str, File] = {
            MY_DRIVE: File(MY_DRIVE, "My Drive", FOLDER, [], None),
        }
        self.drives: set[str] = set()
        self.sessions: dict[str, Session] = {}
        self.log: list[tuple[int, str]] = []  # (sequence number, file ID) of every change
        self.seq = 0
        self.oldest_token = 1
        self.access = {"access-0"}
        self.refresh = {"refresh-0"}
        self.refreshes = 0
        self.faults: list[DriveFault] = []
        self.broken_chunks = 0
        self.expire_after = 0
        self.requests: list[str] = []  # "METHOD /path?query" of every API request

    # --- switches ---------------------------------------------------------------------------
    def throttle(self, times: int = 1, status: int = 429, retry_after: str | None = None) -> None:
        """The next `times` API requests fail: 429, or 403 userRateLimitExceeded."""
        reason = "rateLimitExceeded" if status == 429 else "userRateLimitExceeded"
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        with self.lock:
            self.faults += [DriveFault(status, reason, "Rate Limit Exceeded", headers)] * times

    def fail_next(self, status: int, reason: str, message: str) -> None:
        with self.lock:
            self.faults.append(DriveFault(status, reason, message))

    def expire_tokens(self, after: int = 0) -> None:
        """Access tokens stop working, now or after `after` more API requests."""
        with self.lock:
            if after:
                self.expire_after = after
            else:
                self.access.clear()

    def break_chunks(self, times: int = 1) -> None:
        with self.lock:
            self.broken_chunks += times

    def expire_changes(self) -> None:
        """Page tokens given out so far stop working."""
        with self.lock:
            self.oldest_token = self.seq + 1

    def add_shared_drive(self, name: str = "Team") -> str:
        with self.lock:
            drive_id = f"0ADrive{next(self.ids)}"
            self.drives.add(drive_id)
            self.files[drive_id] = File(drive_id, name, FOLDER, [], drive_id)
            return drive_id

    def add(self, parent: str, name: str, mime: str, content: bytes | None = None) -> str:
        """A file made by another client (a Google Doc, a duplicate name…)."""
        with self.lock:
            return self._make(name, mime, [parent], content).id

    def remove(self, path: str, base: str = MY_DRIVE) -> None:
        """Another client deletes the file or folder at `path` for good."""
        with self.lock:
            self._delete(self.find(path, base))

    def find(self, path: str, base: str = MY_DRIVE) -> File:
        """The file at a `/` path below `base` (for tests' assertions)."""
        with self.lock:
            node = self.files[base]
            for name in path.split("/"):
                node = next(
                    f
                    for f in self.files.values()
                    if node.id in f.parents and f.name == name and not f.trashed
                )
            return node

    # --- internals --------------------------------------------------------------------------
    def _changed(self, file_id: str) -> None:
        self.seq += 1
        self.log.append((self.seq, file_id))

    def _make(self, name: str, mime: str, parents: list[str], content: bytes | None) -> File:
        if len(parents) != 1 or parents[0] not in self.files:
            raise not_found(parents[0] if parents else "")
        parent = self.files[parents[0]]
        if parent.mime != FOLDER:
            raise DriveFault(400, "badRequest", "The parent is not a folder.")
        f = File(f"fake{next(self.ids):06d}", name, mime, list(parents), parent.drive, content)
        self.files[f.id] = f
        self._changed(f.id)
        return f

    def _get(self, file_id: str, params: dict[str, str]) -> File:
        if file_id == "root":
            file_id = MY_DRIVE
        f = self.files.get(file_id)
        if f is None or (f.drive and params.get("supportsAllDrives") != "true"):
            raise not_found(file_id)
        return f

    def _visible(self, f: File, params: dict[str, str]) -> bool:
        corpora = params.get("corpora", "user")
        if f.drive is None:
            return corpora in ("user", "allDrives")
        if params.get("includeItemsFromAllDrives") != "true":
            return False
        if params.get("supportsAllDrives") != "true":
            return False
        return corpora == "allDrives" or (corpora == "drive" and params.get("driveId") == f.drive)

    def _matches(self, f: File, q: str) -> bool:
        for term in _split_and(q):
            m = _TERM.match(term)
            if m is None:
                raise DriveFault(400, "invalid", f"Invalid Value: {term}")
            if m["pid"] is not None and _unescape(m["pid"]) not in f.parents:
                return False
            if m["name"] is not None and _unescape(m["name"]) != f.name:
                return False
            if m["trashed"] is not None and f.trashed != (m["trashed"] == "true"):
                return False
            if m["mime"] is not None and f.mime != m["mime"]:
                return False
        return True

    def _page_size(self, params: dict[str, str], default: int = 100) -> int:
        return min(int(params.get("pageSize", default)), 1000, self.max_page)

    def _set_meta(self, f: File, meta: dict[str, Any]) -> None:
        if "name" in meta:
            f.name = str(meta["name"])
        if "modifiedTime" in meta:
            f.modified = _normal_time(str(meta["modifiedTime"]))
        if "trashed" in meta:
            f.trashed = bool(meta["trashed"])

    def _delete(self, f: File) -> None:
        for child in [c for c in self.files.values() if f.id in c.parents]:
            self._delete(child)
        del self.files[f.id]
        self._changed(f.id)

    # --- endpoints --------------------------------------------------------------------------
    def list_files(self, params: dict[str, str]) -> dict[str, Any]:
        q = params.get("q", "")
        found = [
            f
            for f in self.files.values()
            if f.parents and self._visible(f, params) and (not q or self._matches(f, q))
        ]
        start = int(params.get("pageToken") or 0)
        n = self._page_size(params)
        out: dict[str, Any] = {
            "kind": "drive#fileList",
            "incompleteSearch": False,
            "files": [f.resource() for f in found[start : start + n]],
        }
        if start + n < len(found):
            out["nextPageToken"] = str(start + n)
        return out

    def update(self, file_id: str, params: dict[str, str], meta: dict[str, Any]) -> File:
        f = self._get(file_id, params)
        for pid in filter(None, params.get("removeParents", "").split(",")):
            if pid not in f.parents:
                raise DriveFault(400, "badRequest", f"{pid} is not a parent.")
            f.parents.remove(pid)
        for pid in filter(None, params.get("addParents", "").split(",")):
            target = self._get(pid, params)
            if target.mime != FOLDER:
                raise DriveFault(400, "badRequest", "The parent is not a folder.")
            f.parents.append(pid)
        if not f.parents:
            raise DriveFault(400, "badRequest", "A file needs a parent.")
        self._set_meta(f, meta)
        self._changed(f.id)
        return f

    def copy(self, file_id: str, params: dict[str, str], meta: dict[str, Any]) -> File:
        src = self._get(file_id, params)
        if src.mime == FOLDER:
            raise DriveFault(403, "cannotCopyFile", "This file cannot be copied by the user.")
        parents = meta.get("parents") or list(src.parents)
        f = self._make(str(meta.get("name", f"Copy of {src.name}")), src.mime, parents, src.content)
        if "modifiedTime" in meta:
            f.modified = _normal_time(str(meta["modifiedTime"]))
        return f

    def store(self, target: str | None, meta: dict[str, Any], data: bytes) -> File:
        """The end of an upload: a new file, or new content for `target`."""
        if target is None:
            f = self._make(
                str(meta.get("name", "Untitled")),
                str(meta.get("mimeType", "application/octet-stream")),
                list(meta.get("parents") or [MY_DRIVE]),
                data,
            )
        else:
            f = self.files.get(target) or _raise(not_found(target))
            f.content = data
            f.modified = now()
        self._set_meta(f, {k: v for k, v in meta.items() if k != "name" or target is None})
        self._changed(f.id)
        return f

    def chunk(self, upload_id: str, span: str, body: bytes) -> Response:
        session = self.sessions.get(upload_id)
        if session is None:
            raise DriveFault(404, "notFound", "No such upload session.")
        m = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", span)
        if m is None:
            raise DriveFault(400, "badRequest", f"Bad Content-Range: {span}")
        if m[3] != "*":
            session.total = int(m[3])
        if m[1] is not None:
            start, end = int(m[1]), int(m[2]) + 1
            if end - start != len(body) or start > len(session.data):
                raise DriveFault(400, "badRequest", "Content-Range does not match the body.")
            final = session.total is not None and end == session.total
            if not final and (end - start) % QUANTUM:
                raise DriveFault(400, "badRequest", "Chunks must be multiples of 256 KiB.")
            if self.broken_chunks:
                self.broken_chunks -= 1
                keep = (end - start) // 2 // QUANTUM * QUANTUM
                session.data[start:] = body[:keep]
                raise DriveFault(503, "backendError", "Backend Error")
            session.data[start:] = body
        if session.total is not None and len(session.data) == session.total:
            del self.sessions[upload_id]
            f = self.store(session.target, session.meta, bytes(session.data))
            return _shaped(f.resource(), session.fields)
        headers = {"Range": f"bytes=0-{len(session.data) - 1}"} if session.data else {}
        return Response(status_code=308, headers=headers)

    def changes(self, params: dict[str, str]) -> dict[str, Any]:
        token = params.get("pageToken", "")
        if not token.isdigit() or not self.oldest_token <= int(token) <= self.seq + 1:
            raise DriveFault(400, "invalid", "Invalid Value")
        latest: dict[str, int] = {}
        for seq, file_id in self.log:
            if seq >= int(token):
                latest[file_id] = seq
        entries = sorted(latest.items(), key=lambda kv: kv[1])
        out_changes = []
        for file_id, _ in entries:
            f = self.files.get(file_id)
            if f is not None and not (
                self._visible(
                    f, {**params, "corpora": "drive" if params.get("driveId") else "user"}
                )
            ):
                continue
            if f is None:
                out_changes.append(
                    {
                        "kind": "drive#change",
                        "changeType": "file",
                        "removed": True,
                        "fileId": file_id,
                        "time": now(),
                    }
                )
            else:
                out_changes.append(
                    {
                        "kind": "drive#change",
                        "changeType": "file",
                        "removed": False,
                        "fileId": file_id,
                        "file": f.resource(),
                        "time": now(),
                    }
                )
        n = self._page_size(params)
        start = int(params.get("_offset", 0))
        page = out_changes[start : start + n]
        out: dict[str, Any] = {"kind": "drive#changeList", "changes": page}
        if start + n < len(out_changes):
            # the fake keeps its place in the token: "<token>.<offset>"
            out["nextPageToken"] = f"{token}.{start + n}"
        else:
            out["newStartPageToken"] = str(self.seq + 1)
        return out

    # --- HTTP -------------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route(
                    "/drive/v3/{rest:path}", self._api, methods=["GET", "POST", "PATCH", "DELETE"]
                ),
                Route(
                    "/upload/drive/v3/{rest:path}", self._upload, methods=["POST", "PATCH", "PUT"]
                ),
            ]
        )

    async def _token(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        grant = form.get("grant_type", [""])[0]
        refresh = form.get("refresh_token", [""])[0]
        if form.get("client_id", [""])[0] != CLIENT_ID:
            return JSONResponse(
                {"error": "invalid_client", "error_description": "Unauthorized"}, 401
            )
        if grant != "refresh_token" or refresh not in self.refresh:
            return JSONResponse({"error": "invalid_grant", "error_description": "Bad Request"}, 400)
        with self.lock:
            self.refreshes += 1
            token = f"access-{self.refreshes}"
            self.access.add(token)
        return JSONResponse(
            {
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/drive",
            }
        )

    def _guard(self, request: Request) -> None:
        """Authentication, then any fault a test switched on."""
        self.requests.append(f"{request.method} {request.url.path}?{request.url.query}")
        if self.expire_after:
            self.expire_after -= 1
            if not self.expire_after:
                self.access.clear()
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.access:
            raise DriveFault(401, "authError", "Request had invalid authentication credentials.")
        if self.faults:
            raise self.faults.pop(0)

    async def _api(self, request: Request) -> Response:
        params = dict(request.query_params)
        rest, method = request.path_params["rest"], request.method
        body = await request.body()
        try:
            with self.lock:
                self._guard(request)
                return self._route(method, rest, params, body, request)
        except DriveFault as fault:
            return fault.response()

    def _route(
        self, method: str, rest: str, params: dict[str, str], body: bytes, request: Request
    ) -> Response:
        meta = json.loads(body) if body else {}
        parts = rest.split("/")
        if parts == ["files"] and method == "GET":
            return _shaped(self.list_files(params), params.get("fields"))
        if parts == ["files"] and method == "POST":
            f = self._make(
                str(meta.get("name", "Untitled")),
                str(meta.get("mimeType", "application/octet-stream")),
                list(meta.get("parents") or [MY_DRIVE]),
                None if meta.get("mimeType") == FOLDER else b"",
            )
            return _shaped(f.resource(), params.get("fields"))
        if parts == ["changes", "startPageToken"] and method == "GET":
            return JSONResponse(
                {"kind": "drive#startPageToken", "startPageToken": str(self.seq + 1)}
            )
        if parts == ["changes"] and method == "GET":
            token, _, offset = params.get("pageToken", "").partition(".")
            page = self.changes({**params, "pageToken": token, "_offset": offset or "0"})
            return _shaped(page, params.get("fields"))
        if len(parts) == 3 and parts[0] == "files" and parts[2] == "copy" and method == "POST":
            return _shaped(self.copy(parts[1], params, meta).resource(), params.get("fields"))
        if len(parts) == 2 and parts[0] == "files":
            return self._one(method, parts[1], params, meta, request)
        raise DriveFault(404, "notFound", f"Not Found: {rest}")

    def _one(
        self,
        method: str,
        file_id: str,
        params: dict[str, str],
        meta: dict[str, Any],
        request: Request,
    ) -> Response:
        if method == "GET" and params.get("alt") == "media":
            f = self._get(file_id, params)
            if f.content is None:
                raise DriveFault(
                    403, "fileNotDownloadable", "Only files with binary content can be downloaded."
                )
            return _ranged(f.content, request.headers.get("Range"))
        if method == "GET":
            return _shaped(self._get(file_id, params).resource(), params.get("fields"))
        if method == "PATCH":
            return _shaped(self.update(file_id, params, meta).resource(), params.get("fields"))
        if method == "DELETE":
            self._delete(self._get(file_id, params))
            return Response(status_code=204)
        raise DriveFault(405, "methodNotAllowed", "Method not allowed.")

    async def _upload(self, request: Request) -> Response:
        params = dict(request.query_params)
        rest, method = request.path_params["rest"], request.method
        body = await request.body()
        try:
            with self.lock:
                self._guard(request)
                parts = rest.split("/")
                target = parts[1] if len(parts) == 2 else None
                if method == "PUT":
                    return self.chunk(
                        params.get("upload_id", ""), request.headers.get("Content-Range", ""), body
                    )
                if target is not None:
                    self._get(target, params)  # 404 for a file that is gone
                kind = params.get("uploadType")
                if kind == "multipart":
                    meta, data = _multipart(request.headers.get("Content-Type", ""), body)
                    return _shaped(self.store(target, meta, data).resource(), params.get("fields"))
                if kind == "resumable":
                    meta = json.loads(body) if body else {}
                    if target is None:
                        parent = (meta.get("parents") or [MY_DRIVE])[0]
                        self._get(parent, params)
                    upload_id = f"up{next(self.ids)}"
                    size = request.headers.get("X-Upload-Content-Length")
                    self.sessions[upload_id] = Session(
                        target, meta, int(size) if size else None, params.get("fields")
                    )
                    location = f"{request.base_url}upload/drive/v3/{rest}?uploadType=resumable&upload_id={upload_id}"
                    return Response(status_code=200, headers={"Location": location})
                raise DriveFault(400, "badRequest", f"Unsupported uploadType {kind}")
        except DriveFault as fault:
            return fault.response()


DEFAULT_FILE_FIELDS = {"kind": None, "id": None, "name": None, "mimeType": None}
Fields = dict[str, "Fields | None"]


def _parse_fields(text: str) -> Fields:
    """`nextPageToken,files(id,name)` → {"nextPageToken": None, "files": {"id": …}}."""

    def parse(pos: int) -> tuple[Fields, int]:
        out: Fields = {}
        name = ""
        while pos < len(text):
            ch = text[pos]
            if ch == "(":
                out[name.strip()], pos = parse(pos + 1)
                name = ""
            elif ch == ")":
                break
            elif ch == ",":
                if name.strip():
                    out[name.strip()] = None
                name = ""
            else:
                name += ch
            pos += 1
        if name.strip():
            out[name.strip()] = None
        return out, pos

    return parse(0)[0]


def _select(value: Any, fields: Fields | None) -> Any:
    """What a `fields` selection keeps of an answer; without one, a file resource is cut to
    Drive's default fields (kind, id, name, mimeType), as the real API does."""
    if isinstance(value, list):
        return [_select(v, fields) for v in value]
    if not isinstance(value, dict):
        return value
    if fields is None:
        if value.get("kind") == "drive#file":
            return {k: v for k, v in value.items() if k in DEFAULT_FILE_FIELDS}
        return {k: _select(v, None) for k, v in value.items()}
    return {k: _select(value[k], sub) for k, sub in fields.items() if k in value}


def _shaped(body: dict[str, Any], fields: str | None) -> JSONResponse:
    return JSONResponse(_select(body, _parse_fields(fields) if fields else None))


def _raise(fault: DriveFault) -> Any:
    raise fault


def _normal_time(text: str) -> str:
    """modifiedTime as Drive keeps it: UTC, milliseconds."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", text)
    if m is None:
        raise DriveFault(400, "invalid", f"Invalid value for modifiedTime: {text}")
    return f"{m[1]}.{(m[2] or '')[:3].ljust(3, '0')}Z"


def _ranged(data: bytes, header: str | None) -> Response:
    if not header:
        return Response(data, media_type="application/octet-stream")
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", header)
    if m is None:
        return Response(data, media_type="application/octet-stream")
    start = int(m[1])
    end = min(int(m[2]) + 1 if m[2] else len(data), len(data))
    if start >= len(data):
        return Response(status_code=416, headers={"Content-Range": f"bytes */{len(data)}"})
    return Response(
        data[start:end],
        206,
        headers={"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"},
        media_type="application/octet-stream",
    )


def _multipart(content_type: str, body: bytes) -> tuple[dict[str, Any], bytes]:
    """multipart/related: a JSON part of metadata, then the media."""
    m = re.search(r"boundary=\"?([^\";]+)\"?", content_type)
    if not content_type.startswith("multipart/related") or m is None:
        raise DriveFault(400, "badContent", "Expected multipart/related with a boundary.")
    sep = b"--" + m[1].encode()
    parts = body.split(sep)
    # ["", meta part, media part, "--"]
    if len(parts) != 4 or not parts[3].startswith(b"--"):
        raise DriveFault(400, "badContent", "Malformed multipart body.")

    def payload(part: bytes) -> bytes:
        _, _, rest = part.partition(b"\r\n\r\n")
        return rest.removesuffix(b"\r\n")

    return json.loads(payload(parts[1])), payload(parts[2])
