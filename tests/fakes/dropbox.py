"""A contract fake of the Dropbox API v2, written from its published reference: in-memory
files, the endpoints cdir's dropbox provider calls, their JSON shapes and error bodies.

One `DropboxFake` holds the state; `app("api")` and `app("content")` are the two hosts
(RPC endpoints and the OAuth token endpoint on one, uploads and downloads on the other), each
refusing the other's routes as the real hosts do. Switches for tests: `throttle` (429 with
Retry-After and a JSON reason, or 503), `expire_tokens` (401 `expired_access_token` until the
client refreshes at /oauth2/token), `reset_cursors` (list_folder/continue answers `reset`),
`lose_answer` (a call is done but answered 500, so the client sends it again). `calls` lists
the endpoints called.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

BLOCK = 4 * 1024 * 1024
ACCESS_TOKEN = "fake-access-token"
REFRESH_TOKEN = "fake-refresh-token"


def content_hash(data: bytes) -> str:
    """Dropbox's content_hash (written here again so the fake does not trust the client)."""
    blocks = b"".join(
        hashlib.sha256(data[i : i + BLOCK]).digest() for i in range(0, len(data), BLOCK)
    )
    return hashlib.sha256(blocks).hexdigest()


class Failure(Exception):
    """An error answer: 409 with a route error, or another status with text or JSON."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}

    def response(self) -> Response:
        if isinstance(self.body, str):
            return PlainTextResponse(self.body, self.status, headers=self.headers)
        return JSONResponse(self.body, self.status, headers=self.headers)


def route_error(*tags: str) -> Failure:
    """409 {"error_summary": "a/b/..", "error": {".tag": "a", "a": {".tag": "b"}}}."""
    error: dict[str, Any] = {".tag": tags[-1]}
    for outer in reversed(tags[:-1]):
        error = {".tag": outer, outer: error}
    summary = "/".join(tags) + "/.." + secrets.token_hex(2)
    return Failure(409, {"error_summary": summary, "error": error})


def bad_request(text: str) -> Failure:
    return Failure(400, f"Error in call to API function: {text}")


@dataclass
class Node:
    display: str  # path_display, "/A/b.txt"
    folder: bool
    id: str
    data: bytes = b""
    rev: str = ""
    client_modified: str = ""
    server_modified: str = ""

    def metadata(self, tag: bool = True) -> dict[str, Any]:
        name = self.display.rsplit("/", 1)[-1]
        meta: dict[str, Any] = {
            "name": name,
            "id": self.id,
            "path_lower": self.display.lower(),
            "path_display": self.display,
        }
        if self.folder:
            return {".tag": "folder", **meta} if tag else meta
        meta.update(
            client_modified=self.client_modified,
            server_modified=self.server_modified,
            rev=self.rev,
            size=len(self.data),
            is_downloadable=True,
            content_hash=content_hash(self.data),
        )
        return {".tag": "file", **meta} if tag else meta


@dataclass
class Cursor:
    folder: str  # path_lower of the folder listed ("" the root)
    recursive: bool
    deleted: bool  # include_deleted
    limit: int
    seq: int  # changes after this one are news
    pending: list[dict[str, Any]] = field(default_factory=list)  # the rest of a listing


@dataclass
class Session:
    data: bytearray = field(default_factory=bytearray)
    closed: bool = False


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _lower_parent(lower: str) -> str:
    return lower.rsplit("/", 1)[0]


class DropboxFake:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}  # path_lower → node; the root "" is implicit
        self.log: list[tuple[int, str, str]] = []  # (seq, path_lower, path_display)
        self.cursors: dict[str, Cursor] = {}
        self.sessions: dict[str, Session] = {}
        self.tokens = {ACCESS_TOKEN}
        self.calls: list[str] = []  # endpoints called, in order
        self.refreshes = 0
        self._throttle: list[tuple[int, str | None, int]] = []
        self._lose: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    # --- switches ----------------------------------------------------------------------------
    def throttle(
        self, times: int = 1, reason: str | None = "too_many_requests", retry_after: int = 0
    ) -> None:
        """The next `times` API calls answer 429 (JSON with `reason`; plain text if None), or
        503 when reason is "unavailable", with Retry-After: `retry_after`."""
        with self._lock:
            status = 503 if reason == "unavailable" else 429
            self._throttle += [(status, reason, retry_after)] * times

    def expire_tokens(self) -> None:
        """Every access token issued so far stops working (a refresh gets a new one)."""
        with self._lock:
            self.tokens.clear()

    def lose_answer(self, endpoint: str, times: int = 1) -> None:
        """The next `times` calls of `endpoint` are done, but answered 500 (the answer lost
        on the way, as a client sees it)."""
        with self._lock:
            self._lose[endpoint] = times

    def reset_cursors(self) -> None:
        with self._lock:
            self.cursors.clear()

    # --- the apps -------------------------------------------------------------------------
    def app(self, host: str) -> Starlette:
        rpc = {
            "files/list_folder": self.list_folder,
            "files/list_folder/continue": self.list_continue,
            "files/list_folder/get_latest_cursor": self.latest_cursor,
            "files/get_metadata": self.get_metadata,
            "files/create_folder_v2": self.create_folder,
            "files/delete_v2": self.delete,
            "files/copy_v2": self.copy,
            "files/move_v2": self.move,
        }
        content = {
            "files/upload": self.upload,
            "files/upload_session/start": self.session_start,
            "files/upload_session/append_v2": self.session_append,
            "files/upload_session/finish": self.session_finish,
        }

        async def endpoint(request: Request) -> Response:
            name = request.path_params["route"]
            try:
                if host == "api" and name in rpc:
                    return await self._rpc(request, name, rpc[name])
                if host == "content" and name in content:
                    return await self._content(request, name, content[name])
                if host == "content" and name == "files/download":
                    return await self._download(request)
                return PlainTextResponse("Unknown API function", 404)
            except Failure as failure:
                return failure.response()

        routes = [Route("/2/{route:path}", endpoint, methods=["POST"])]
        if host == "api":
            routes.append(Route("/oauth2/token", self.token, methods=["POST"]))
        return Starlette(routes=routes)

    async def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "refresh_token" or not form.get("client_id"):
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        if form.get("refresh_token") != REFRESH_TOKEN:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "refresh token is malformed"}, 400
            )
        with self._lock:
            access = f"fake-access-{secrets.token_hex(8)}"
            self.tokens.add(access)
            self.refreshes += 1
        return JSONResponse({"access_token": access, "token_type": "bearer", "expires_in": 14400})

    # --- what every call goes through ------------------------------------------------------
    def _admit(self, request: Request, name: str) -> None:
        """Authorization, then throttling: a throttled call does nothing."""
        auth = request.headers.get("Authorization", "")
        with self._lock:
            self.calls.append(name)
            if not auth.startswith("Bearer "):
                raise bad_request("missing or malformed Authorization header")
            if auth.removeprefix("Bearer ") not in self.tokens:
                tag = "expired_access_token"
                raise Failure(401, {"error_summary": f"{tag}/..", "error": {".tag": tag}})
            if self._throttle:
                status, reason, wait = self._throttle.pop(0)
                headers = {"Retry-After": str(wait)}
                if reason is None or status == 503:
                    raise Failure(status, "Too many requests", headers)
                body = {
                    "error_summary": f"{reason}/..",
                    "error": {"reason": {".tag": reason}, "retry_after": wait},
                }
                raise Failure(status, body, headers)

    async def _rpc(
        self, request: Request, name: str, handler: Callable[[dict[str, Any]], dict[str, Any]]
    ) -> Response:
        self._admit(request, name)
        if request.headers.get("Content-Type", "").split(";")[0] != "application/json":
            raise bad_request('Bad HTTP "Content-Type" header, expecting application/json')
        try:
            arg = json.loads(await request.body())
        except ValueError:
            raise bad_request("request body could not be decoded as JSON") from None
        with self._lock:
            return JSONResponse(handler(arg))

    def _arg(self, request: Request) -> dict[str, Any]:
        header = request.headers.get("Dropbox-API-Arg")
        if header is None:
            raise bad_request('Missing "Dropbox-API-Arg" header')
        if not header.isascii() or "\x7f" in header:
            raise bad_request("Dropbox-API-Arg: characters 0x7F and above must be escaped")
        return dict(json.loads(header))

    async def _content(
        self,
        request: Request,
        name: str,
        handler: Callable[[dict[str, Any], bytes], dict[str, Any]],
    ) -> Response:
        self._admit(request, name)
        if request.headers.get("Content-Type") != "application/octet-stream":
            raise bad_request('Bad HTTP "Content-Type" header, expecting application/octet-stream')
        arg, data = self._arg(request), await request.body()
        if "content_hash" in arg and arg["content_hash"] != content_hash(data):
            raise route_error("content_hash_mismatch")
        with self._lock:
            answer = handler(arg, data)
            if self._lose.get(name):
                self._lose[name] -= 1
                return PlainTextResponse("Internal Server Error", 500)
            return JSONResponse(answer)

    async def _download(self, request: Request) -> Response:
        self._admit(request, "files/download")
        arg = self._arg(request)
        with self._lock:
            node = self._lookup(arg.get("path", ""), "path")
            if node.folder:
                raise route_error("path", "not_file")
            data, meta = node.data, node.metadata(tag=False)
        headers = {
            "Dropbox-API-Result": json.dumps(meta),
            "Content-Type": "application/octet-stream",
        }
        rng = request.headers.get("Range")
        if rng is None:
            return Response(data, 200, headers=headers)
        first, _, last = rng.removeprefix("bytes=").partition("-")
        start = int(first) if first else max(len(data) - int(last), 0)
        end = int(last) + 1 if first and last else len(data)
        if start >= len(data):
            return Response(b"", 416, headers={"Content-Range": f"bytes */{len(data)}"})
        end = min(end, len(data))
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        return Response(data[start:end], 206, headers=headers)

    # --- the tree (called under the lock) ---------------------------------------------------
    def _check_path(self, path: str, root_ok: bool = False) -> str:
        if path == "" and root_ok:
            return ""
        if not path.startswith("/") or path.endswith("/") or "//" in path or path == "/":
            raise bad_request(f"path: '{path}' did not match pattern")
        return path.lower()

    def _lookup(self, path: str, tag: str, root_ok: bool = False) -> Node:
        lower = self._check_path(path, root_ok)
        node = self.nodes.get(lower)
        if node is None:
            raise route_error(tag, "not_found")
        return node

    def _changed(self, lower: str, display: str) -> None:
        self.log.append((next(self._seq), lower, display))

    def _make_parents(self, path: str, tag: str) -> None:
        """Folders above `path` are created as needed; a file in the way is a conflict."""
        parts = path.split("/")[1:-1]
        for i in range(1, len(parts) + 1):
            display = "/" + "/".join(parts[:i])
            node = self.nodes.get(display.lower())
            if node is None:
                self.nodes[display.lower()] = Node(display, True, f"id:{next(self._ids)}")
                self._changed(display.lower(), display)
            elif not node.folder:
                raise route_error(tag, "conflict", "file")

    def _children(self, lower: str, recursive: bool) -> list[str]:
        prefix = lower + "/"
        return sorted(
            k
            for k in self.nodes
            if k.startswith(prefix) and (recursive or "/" not in k[len(prefix) :])
        )

    def _write(self, path: str, data: bytes, arg: dict[str, Any], tag: str) -> dict[str, Any]:
        lower = self._check_path(path)
        node = self.nodes.get(lower)
        if node is not None and node.folder:
            raise route_error(tag, "conflict", "folder")
        if node is not None and arg.get("mode", "add") == "add":
            raise route_error(tag, "conflict", "file")
        self._make_parents(path, tag)
        display = node.display if node else path
        now = _now()
        self.nodes[lower] = Node(
            display,
            False,
            node.id if node else f"id:{next(self._ids)}",
            data,
            f"{next(self._ids):015x}",
            arg.get("client_modified") or now,
            now,
        )
        self._changed(lower, display)
        return self.nodes[lower].metadata(tag=False)

    def _remove(self, lower: str) -> Node:
        node = self.nodes.pop(lower)
        for child in self._children(lower, recursive=True):
            del self.nodes[child]
        self._changed(lower, node.display)  # one deleted entry for a whole folder
        return node

    # --- RPC endpoints ---------------------------------------------------------------------
    def list_folder(self, arg: dict[str, Any]) -> dict[str, Any]:
        path = arg.get("path", "")
        lower = self._check_path(path, root_ok=True)
        if lower and lower not in self.nodes:
            raise route_error("path", "not_found")
        if lower and not self.nodes[lower].folder:
            raise route_error("path", "not_folder")
        limit = int(arg.get("limit", 2000))
        if not 1 <= limit <= 2000:
            raise bad_request("limit: value out of range")
        recursive = bool(arg.get("recursive", False))
        entries = [self.nodes[k].metadata() for k in self._children(lower, recursive)]
        if recursive and lower:
            entries.insert(0, self.nodes[lower].metadata())  # the folder itself comes first
        seq = self.log[-1][0] if self.log else 0
        cursor = Cursor(lower, recursive, bool(arg.get("include_deleted")), limit, seq, entries)
        return self._page(cursor)

    def _page(self, cursor: Cursor) -> dict[str, Any]:
        page, cursor.pending = cursor.pending[: cursor.limit], cursor.pending[cursor.limit :]
        token = base64.urlsafe_b64encode(secrets.token_bytes(24)).decode()
        self.cursors[token] = cursor
        return {"entries": page, "cursor": token, "has_more": bool(cursor.pending)}

    def list_continue(self, arg: dict[str, Any]) -> dict[str, Any]:
        old = self.cursors.get(str(arg.get("cursor")))
        if old is None:
            raise route_error("reset")
        cursor = Cursor(old.folder, old.recursive, old.deleted, old.limit, old.seq, old.pending)
        if not cursor.pending:  # a listing done: what changed since
            cursor.pending = self._news(cursor)
            cursor.seq = self.log[-1][0] if self.log else 0
        return self._page(cursor)

    def _news(self, cursor: Cursor) -> list[dict[str, Any]]:
        latest: dict[str, str] = {}  # path_lower → display, the last change of each
        for seq, lower, display in self.log:
            inside = lower.startswith(cursor.folder + "/")
            if seq <= cursor.seq or not inside:
                continue
            if not cursor.recursive and "/" in lower[len(cursor.folder) + 1 :]:
                continue
            latest.pop(lower, None)
            latest[lower] = display
        out = []
        for lower, display in latest.items():
            node = self.nodes.get(lower)
            if node is not None:
                out.append(node.metadata())
            elif cursor.deleted:
                name = display.rsplit("/", 1)[-1]
                out.append(
                    {".tag": "deleted", "name": name, "path_lower": lower, "path_display": display}
                )
        return out

    def latest_cursor(self, arg: dict[str, Any]) -> dict[str, Any]:
        page = self.list_folder({**arg, "limit": 2000})
        cursor = self.cursors[page["cursor"]]
        cursor.pending = []
        return {"cursor": page["cursor"]}

    def get_metadata(self, arg: dict[str, Any]) -> dict[str, Any]:
        if arg.get("path") == "":
            raise bad_request("path: The root folder is unsupported.")
        return self._lookup(arg.get("path", ""), "path").metadata()

    def create_folder(self, arg: dict[str, Any]) -> dict[str, Any]:
        path = arg.get("path", "")
        lower = self._check_path(path)
        node = self.nodes.get(lower)
        if node is not None:
            raise route_error("path", "conflict", "folder" if node.folder else "file")
        self._make_parents(path, "path")
        self.nodes[lower] = Node(path, True, f"id:{next(self._ids)}")
        self._changed(lower, path)
        return {"metadata": self.nodes[lower].metadata(tag=False)}

    def delete(self, arg: dict[str, Any]) -> dict[str, Any]:
        node = self._lookup(arg.get("path", ""), "path_lookup")
        return {"metadata": self._remove(node.display.lower()).metadata()}

    def copy(self, arg: dict[str, Any], move: bool = False) -> dict[str, Any]:
        src = self._lookup(arg.get("from_path", ""), "from_lookup")
        to = arg.get("to_path", "")
        lower = self._check_path(to)
        if lower in self.nodes:
            raise route_error("to", "conflict", "folder" if self.nodes[lower].folder else "file")
        if lower == src.display.lower() or lower.startswith(src.display.lower() + "/"):
            raise route_error("duplicated_or_nested_paths")
        self._make_parents(to, "to")
        moved = {
            k: self.nodes[k]
            for k in [src.display.lower(), *self._children(src.display.lower(), True)]
        }
        if move:
            self._remove(src.display.lower())
        for node in moved.values():
            display = to + node.display[len(src.display) :]
            rev = node.rev and f"{next(self._ids):015x}"
            ident = node.id if move else f"id:{next(self._ids)}"
            self.nodes[display.lower()] = Node(
                display, node.folder, ident, node.data, rev, node.client_modified, _now()
            )
            self._changed(display.lower(), display)
        return {"metadata": self.nodes[lower].metadata()}

    def move(self, arg: dict[str, Any]) -> dict[str, Any]:
        return self.copy(arg, move=True)

    # --- uploads ---------------------------------------------------------------------------
    def upload(self, arg: dict[str, Any], data: bytes) -> dict[str, Any]:
        if len(data) > 150 * 1024 * 1024:
            raise route_error("payload_too_large")
        return self._write(arg.get("path", ""), data, arg, "path")

    def session_start(self, arg: dict[str, Any], data: bytes) -> dict[str, Any]:
        sid = secrets.token_hex(12)
        self.sessions[sid] = Session(bytearray(data), bool(arg.get("close")))
        return {"session_id": sid}

    def _session(self, cursor: dict[str, Any], *outer: str) -> Session:
        """The session of `cursor`; errors are UploadSessionLookupError, wrapped in `outer`
        (finish: "lookup_failed"; append_v2 answers them bare)."""
        session = self.sessions.get(str(cursor.get("session_id")))
        if session is None:
            raise route_error(*outer, "not_found")
        if session.closed:
            raise route_error(*outer, "closed")
        if cursor.get("offset") != len(session.data):
            error = route_error(*outer, "incorrect_offset")
            inner = error.body["error"]
            for tag in outer:
                inner = inner[tag]
            inner["correct_offset"] = len(session.data)
            raise error
        return session

    def session_append(self, arg: dict[str, Any], data: bytes) -> dict[str, Any]:
        session = self._session(arg.get("cursor", {}))
        session.data += data
        session.closed = bool(arg.get("close"))
        return {}

    def session_finish(self, arg: dict[str, Any], data: bytes) -> dict[str, Any]:
        session = self._session(arg.get("cursor", {}), "lookup_failed")
        session.data += data
        commit = arg.get("commit", {})
        meta = self._write(commit.get("path", ""), bytes(session.data), commit, "path")
        del self.sessions[str(arg["cursor"]["session_id"])]
        return meta
