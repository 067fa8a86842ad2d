"""A contract fake of the Box API (developer.box.com/reference), in memory, for the endpoints
the box provider calls: folder items (marker paging), folders, files (get, update = move,
copy, delete to the trash), downloads (a redirect, then Range), uploads (multipart, new
versions, chunked upload sessions), the event stream and the OAuth token endpoint.

Answers have Box's JSON shapes and its error body ({"type": "error", "status", "code",
"message", ...}). Switches for tests: `throttle(n)` (429 + Retry-After), `expire_token()`
(401 until a refresh; refresh tokens are single-use, as on Box), `commit_pending(n)` (the
commit answers 202 + Retry-After), `broken_parts` (parts arrive damaged), `part_size` (of upload sessions), `requests` (a log).

The API is at the served base URL (`/2.0/...`), uploads below `/api` (`/api/2.0/...`), the
token endpoint at `/oauth2/token`.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

PACIFIC = timezone(timedelta(hours=-8))  # Box writes times with the account's offset
MINI = ("type", "id", "etag", "sequence_id", "name", "sha1", "file_version")


def box_time(when: datetime) -> str:
    return when.astimezone(PACIFIC).replace(microsecond=0).isoformat()


@dataclass
class Item:
    id: str
    type: str  # "file" | "folder"
    name: str
    parent: str | None
    content: bytes = b""
    version: str = ""
    etag: int = 0
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    content_modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    trashed: bool = False


class BoxError(Exception):
    def __init__(self, status: int, code: str, message: str, **context: Any) -> None:
        self.status, self.code, self.message, self.context = status, code, message, context


def error_response(e: BoxError, headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "error",
        "status": e.status,
        "code": e.code,
        "message": e.message,
        "help_url": "http://developers.box.com/docs/#errors",
        "request_id": "fake0123456789",
    }
    if e.context:
        body["context_info"] = e.context
    return JSONResponse(body, e.status, headers=headers)


class FakeBox:
    def __init__(self) -> None:
        self._ids = itertools.count(1000)
        self.items: dict[str, Item] = {"0": Item("0", "folder", "All Files", None)}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.access_token, self.refresh_token = "access-1", "refresh-1"
        self.refreshes = 0
        self.part_size = 8 * 1024 * 1024
        self.requests: list[str] = []
        self._throttle: list[str] = []  # Retry-After values of the next answers
        self._pending_commits = 0
        self.broken_parts = False  # parts arrive corrupted: a session that fails half-way
        self.base = ""  # set by the server fixture: the URLs sessions hand out

    # --- switches --------------------------------------------------------------------------
    def throttle(self, times: int, retry_after: str = "0") -> None:
        self._throttle += [retry_after] * times

    def expire_token(self) -> None:
        self.access_token = f"expired-{self.access_token}"

    def commit_pending(self, times: int) -> None:
        self._pending_commits = times

    # --- the tree --------------------------------------------------------------------------
    def new_id(self) -> str:
        return str(next(self._ids))

    def get(self, item_id: str, type_: str) -> Item:
        item = self.items.get(item_id)
        if item is None or item.trashed or item.type != type_:
            raise BoxError(404, "not_found", "Not Found")
        return item

    def children(self, folder: Item) -> list[Item]:
        found = [i for i in self.items.values() if i.parent == folder.id and not i.trashed]
        return sorted(found, key=lambda i: (i.type != "folder", i.name.casefold(), i.id))

    def check_name(self, folder: Item, name: str, but: str | None = None) -> None:
        """Box refuses a name a sibling has, whatever the case: 409 item_name_in_use."""
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise BoxError(400, "item_name_invalid", "Item name invalid")
        for other in self.children(folder):
            if other.name.casefold() == name.casefold() and other.id != but:
                mini = self.mini(other)
                conflicts: Any = [mini] if other.type == "folder" else mini
                raise BoxError(409, "item_name_in_use", "Item with the same name already exists",
                               conflicts=conflicts)  # fmt: skip

    def path(self, item: Item) -> list[Item]:
        chain: list[Item] = []
        parent = item.parent
        while parent is not None:
            folder = self.items[parent]
            chain.insert(0, folder)
            parent = folder.parent
        return chain

    def mini(self, item: Item) -> dict[str, Any]:
        out: dict[str, Any] = {"type": item.type, "id": item.id, "etag": str(item.etag),
                               "sequence_id": str(item.etag), "name": item.name}  # fmt: skip
        if item.type == "file":
            sha1 = hashlib.sha1(item.content).hexdigest()
            out["sha1"] = sha1
            out["file_version"] = {"type": "file_version", "id": item.version, "sha1": sha1}
        return out

    def full(self, item: Item, fields: str | None = None) -> dict[str, Any]:
        trash = [{"type": "folder", "id": "1", "name": "Trash", "etag": None}]
        above = trash if item.trashed else [self.mini(f) for f in self.path(item)]
        out = {
            **self.mini(item),
            "size": len(item.content) if item.type == "file" else 0,
            "path_collection": {"total_count": len(above), "entries": above},
            "created_at": box_time(item.modified),
            "modified_at": box_time(item.modified),
            "content_created_at": box_time(item.content_modified),
            "content_modified_at": box_time(item.content_modified),
            "trashed_at": box_time(item.modified) if item.trashed else None,
            "parent": self.mini(self.items[item.parent]) if item.parent else None,
            "item_status": "trashed" if item.trashed else "active",
        }
        if fields:  # the mini fields and those asked for, as Box does
            wanted = set(fields.split(",")) | set(MINI)
            out = {k: v for k, v in out.items() if k in wanted}
        return out

    def event(self, kind: str, item: Item) -> None:
        position = len(self.events) + 1
        self.events.append({"type": "event", "event_id": f"ev{position}", "event_type": kind,
                            "source": self.full(item), "created_at": box_time(item.modified)})  # fmt: skip

    def touch(self, item: Item) -> None:
        item.etag += 1
        item.modified = datetime.now(UTC)

    def write(self, item: Item, content: bytes, cmod: str | None) -> None:
        item.content = content
        item.version = self.new_id()
        item.content_modified = (
            datetime.fromisoformat(cmod.replace("Z", "+00:00")) if cmod else datetime.now(UTC)
        )
        self.touch(item)

    def new_file(self, folder: Item, name: str, content: bytes, cmod: str | None) -> Item:
        self.check_name(folder, name)
        item = Item(self.new_id(), "file", name, folder.id)
        self.write(item, content, cmod)
        self.items[item.id] = item
        self.event("ITEM_UPLOAD", item)
        return item

    def new_version(self, item: Item, name: str | None, content: bytes, cmod: str | None) -> None:
        if name and name != item.name:
            self.check_name(self.items[item.parent or "0"], name, but=item.id)
            item.name = name
        self.write(item, content, cmod)
        self.event("ITEM_UPLOAD", item)


# --- the HTTP side ---------------------------------------------------------------------------
def _json(request_body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(request_body or b"{}")
    except ValueError:
        raise BoxError(400, "bad_request", "Invalid JSON") from None
    return data if isinstance(data, dict) else {}


def _multipart(request: Request, body: bytes) -> list[tuple[str, bytes]]:
    """(name, bytes) of each part, in order (the stdlib's MIME parser)."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    parts = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        parts.append((str(name), payload if isinstance(payload, bytes) else b""))
    return parts


def _sha1_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha1(data).digest()).decode()


def make_app(box: FakeBox) -> Starlette:
    def authorized(request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {box.access_token}":
            raise BoxError(401, "unauthorized", "Unauthorized")

    def endpoint(handler: Any, auth: bool = True) -> Any:
        async def run(request: Request) -> Response:
            box.requests.append(f"{request.method} {request.url.path}")
            if box._throttle:
                wait = box._throttle.pop(0)
                e = BoxError(429, "rate_limit_exceeded", "Request rate limit exceeded, "
                             "please try again later")  # fmt: skip
                return error_response(e, {"Retry-After": wait})
            try:
                if auth:
                    authorized(request)
                return await handler(request, await request.body())
            except BoxError as e:
                if e.status == 401:  # Box sends no JSON with a 401
                    return Response(status_code=401, headers={"WWW-Authenticate": "Bearer"})
                return error_response(e)

        return run

    async def folder_items(request: Request, _: bytes) -> Response:
        folder = box.get(request.path_params["id"], "folder")
        q = request.query_params
        limit = min(int(q.get("limit", "100")), 1000)
        found = box.children(folder)
        start = (
            int(q.get("marker") or 0)
            if q.get("usemarker", "").lower() == "true"
            else int(q.get("offset", 0))
        )
        page = [box.full(i, q.get("fields")) for i in found[start : start + limit]]
        more = start + limit < len(found)
        if q.get("usemarker", "").lower() == "true":
            return JSONResponse({"entries": page, "limit": limit,
                                 "next_marker": str(start + limit) if more else None})  # fmt: skip
        return JSONResponse({"entries": page, "limit": limit, "offset": start,
                             "total_count": len(found)})  # fmt: skip

    async def create_folder(request: Request, body: bytes) -> Response:
        data = _json(body)
        parent = box.get(str(data.get("parent", {}).get("id")), "folder")
        box.check_name(parent, str(data.get("name", "")))
        item = Item(box.new_id(), "folder", data["name"], parent.id)
        box.items[item.id] = item
        box.event("ITEM_CREATE", item)
        return JSONResponse(box.full(item, request.query_params.get("fields")), 201)

    def trash(item: Item, top: bool = True) -> None:
        for child in box.children(item) if item.type == "folder" else []:
            trash(child, top=False)  # in the trash with its folder; one event for the folder
        item.trashed = True
        box.touch(item)
        if top:
            box.event("ITEM_TRASH", item)

    async def delete_folder(request: Request, _: bytes) -> Response:
        folder = box.get(request.path_params["id"], "folder")
        if folder.id == "0":
            raise BoxError(403, "access_denied_insufficient_permissions", "Access denied")
        if box.children(folder) and request.query_params.get("recursive", "").lower() != "true":
            raise BoxError(400, "folder_not_empty", "Cannot delete - folder not empty")
        trash(folder)
        return Response(status_code=204)

    async def get_folder(request: Request, _: bytes) -> Response:
        item = box.get(request.path_params["id"], "folder")
        return JSONResponse(box.full(item, request.query_params.get("fields")))

    async def get_file(request: Request, _: bytes) -> Response:
        item = box.get(request.path_params["id"], "file")
        return JSONResponse(box.full(item, request.query_params.get("fields")))

    async def update_file(request: Request, body: bytes) -> Response:
        item, data = box.get(request.path_params["id"], "file"), _json(body)
        parent = box.get(str(data.get("parent", {}).get("id", item.parent)), "folder")
        name = str(data.get("name", item.name))
        box.check_name(parent, name, but=item.id)
        moved, renamed = parent.id != item.parent, name != item.name
        item.parent, item.name = parent.id, name
        box.touch(item)
        if moved or renamed:
            box.event("ITEM_MOVE" if moved else "ITEM_RENAME", item)
        return JSONResponse(box.full(item, request.query_params.get("fields")))

    async def copy_file(request: Request, body: bytes) -> Response:
        item, data = box.get(request.path_params["id"], "file"), _json(body)
        parent = box.get(str(data.get("parent", {}).get("id")), "folder")
        name = str(data.get("name", item.name))
        box.check_name(parent, name)
        copy = Item(box.new_id(), "file", name, parent.id)
        box.write(copy, item.content, box_time(item.content_modified))
        box.items[copy.id] = copy
        box.event("ITEM_COPY", copy)
        return JSONResponse(box.full(copy, request.query_params.get("fields")), 201)

    async def delete_file(request: Request, _: bytes) -> Response:
        trash(box.get(request.path_params["id"], "file"))
        return Response(status_code=204)

    async def download(request: Request, _: bytes) -> Response:
        item = box.get(request.path_params["id"], "file")
        return RedirectResponse(f"{box.base}/dl/{item.id}/{item.version}", 302)

    async def dl(request: Request, _: bytes) -> Response:
        item = box.items.get(request.path_params["id"])
        if item is None or item.version != request.path_params["version"]:
            return Response(status_code=404)
        data, size = item.content, len(item.content)
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", request.headers.get("range", ""))
        if not wanted:
            return Response(data, 200, media_type="application/octet-stream")
        start = int(wanted[1])
        end = min(int(wanted[2]) + 1, size) if wanted[2] else size
        if start >= size:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        headers = {"Content-Range": f"bytes {start}-{end - 1}/{size}"}
        return Response(data[start:end], 206, headers, "application/octet-stream")

    async def events(request: Request, _: bytes) -> Response:
        q = request.query_params
        if q.get("stream_position", "now") == "now":
            return JSONResponse({"chunk_size": 0, "next_stream_position": len(box.events),
                                 "entries": []})  # fmt: skip
        start, limit = int(q["stream_position"]), int(q.get("limit", "100"))
        page = box.events[start : start + limit]
        return JSONResponse({"chunk_size": len(page), "next_stream_position": start + len(page),
                             "entries": page})  # fmt: skip

    def attributes_then_file(request: Request, body: bytes) -> tuple[dict[str, Any], bytes]:
        parts = _multipart(request, body)
        names = [n for n, _ in parts]
        if names[:2] != ["attributes", "file"]:
            code = "metadata_after_file_contents" if names[:2] == ["file", "attributes"] else ""
            raise BoxError(400, code or "bad_request", "attributes must come before the file")
        content = parts[1][1]
        sent = request.headers.get("content-md5")
        if sent and sent.lower() != hashlib.sha1(content).hexdigest():
            raise BoxError(400, "bad_digest", "The specified content-md5 did not match")
        return _json(parts[0][1]), content

    async def upload(request: Request, body: bytes) -> Response:
        attrs, content = attributes_then_file(request, body)
        parent = box.get(str(attrs.get("parent", {}).get("id")), "folder")
        item = box.new_file(parent, str(attrs.get("name", "")), content,
                            attrs.get("content_modified_at"))  # fmt: skip
        fields = request.query_params.get("fields")
        return JSONResponse({"total_count": 1, "entries": [box.full(item, fields)]}, 201)

    async def upload_version(request: Request, body: bytes) -> Response:
        item = box.get(request.path_params["id"], "file")
        attrs, content = attributes_then_file(request, body)
        box.new_version(item, attrs.get("name"), content, attrs.get("content_modified_at"))
        fields = request.query_params.get("fields")
        return JSONResponse({"total_count": 1, "entries": [box.full(item, fields)]}, 201)

    def session(size: int, name: str, folder: str, file_id: str | None) -> Response:
        sid = f"S{box.new_id()}"
        parts = -(-size // box.part_size)
        box.sessions[sid] = {"size": size, "name": name, "folder": folder, "file": file_id,
                             "parts": {}}  # fmt: skip
        url = f"{box.base}/api/2.0/files/upload_sessions/{sid}"
        return JSONResponse({
            "id": sid, "type": "upload_session", "part_size": box.part_size, "total_parts": parts,
            "num_parts_processed": 0,
            "session_expires_at": box_time(datetime.now(UTC) + timedelta(days=7)),
            "session_endpoints": {"upload_part": url, "commit": f"{url}/commit", "abort": url,
                                  "list_parts": f"{url}/parts", "status": url,
                                  "log_event": f"{url}/log"},
        }, 201)  # fmt: skip

    async def new_session(request: Request, body: bytes) -> Response:
        data = _json(body)
        folder = box.get(str(data.get("folder_id")), "folder")
        box.check_name(folder, str(data.get("file_name", "")))
        return session(int(data["file_size"]), data["file_name"], folder.id, None)

    async def version_session(request: Request, body: bytes) -> Response:
        item, data = box.get(request.path_params["id"], "file"), _json(body)
        return session(int(data["file_size"]), data.get("file_name") or item.name,
                       item.parent or "0", item.id)  # fmt: skip

    def get_session(request: Request) -> dict[str, Any]:
        found = box.sessions.get(request.path_params["sid"])
        if found is None:
            raise BoxError(404, "not_found", "Upload session not found")
        return found

    async def put_part(request: Request, body: bytes) -> Response:
        s = get_session(request)
        if box.broken_parts:
            body = body[::-1]  # damaged on the way: its digest no longer matches
        where = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers.get("content-range", ""))
        if (
            not where
            or int(where[3]) != s["size"]
            or int(where[2]) - int(where[1]) + 1 != len(body)
        ):
            raise BoxError(416, "range_not_satisfiable", "The range does not match the part")
        start = int(where[1])
        last = start + len(body) == s["size"]
        if start % box.part_size or (len(body) != box.part_size and not last):
            raise BoxError(416, "range_not_satisfiable", "Parts must be part_size long")
        if request.headers.get("digest") != f"sha={_sha1_b64(body)}":
            raise BoxError(412, "precondition_failed", "The digest does not match the part")
        part = {"part_id": f"{start:08X}", "offset": start, "size": len(body),
                "sha1": hashlib.sha1(body).hexdigest()}  # fmt: skip
        s["parts"][start] = (part, body)
        return JSONResponse({"part": part})

    async def abort(request: Request, _: bytes) -> Response:
        get_session(request)
        del box.sessions[request.path_params["sid"]]
        return Response(status_code=204)

    async def commit(request: Request, body: bytes) -> Response:
        s, data = get_session(request), _json(body)
        if box._pending_commits:
            box._pending_commits -= 1
            return Response(status_code=202, headers={"Retry-After": "0"})
        listed = data.get("parts", [])
        if listed != [s["parts"][o][0] for o in sorted(s["parts"])]:
            raise BoxError(400, "invalid_parts", "The parts do not match the uploaded ones")
        content = b"".join(s["parts"][o][1] for o in sorted(s["parts"]))
        if (
            len(content) != s["size"]
            or request.headers.get("digest") != f"sha={_sha1_b64(content)}"
        ):
            raise BoxError(412, "precondition_failed", "The digest does not match the file")
        cmod = (data.get("attributes") or {}).get("content_modified_at")
        folder = box.get(s["folder"], "folder")
        if s["file"]:
            item = box.get(s["file"], "file")
            box.new_version(item, s["name"], content, cmod)
        else:
            item = box.new_file(folder, s["name"], content, cmod)
        del box.sessions[request.path_params["sid"]]
        return JSONResponse({"total_count": 1, "entries": [box.full(item)]}, 201)

    async def token(request: Request, body: bytes) -> Response:
        form = dict(urllib.parse.parse_qsl(body.decode()))
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") != box.refresh_token
        ):
            return JSONResponse({"error": "invalid_grant",
                                 "error_description": "Invalid refresh token"}, 400)  # fmt: skip
        box.refreshes += 1
        box.access_token = f"access-{box.refreshes + 1}"
        box.refresh_token = f"refresh-{box.refreshes + 1}"  # single-use: the old one is dead
        return JSONResponse({"access_token": box.access_token, "expires_in": 3600,
                             "restricted_to": [], "refresh_token": box.refresh_token,
                             "token_type": "bearer"})  # fmt: skip

    up = "/api/2.0/files"
    routes = [
        Route("/2.0/folders/{id}/items", endpoint(folder_items)),
        Route("/2.0/folders", endpoint(create_folder), methods=["POST"]),
        Route("/2.0/folders/{id}", endpoint(get_folder), methods=["GET"]),
        Route("/2.0/folders/{id}", endpoint(delete_folder), methods=["DELETE"]),
        Route("/2.0/files/{id}", endpoint(get_file), methods=["GET"]),
        Route("/2.0/files/{id}", endpoint(update_file), methods=["PUT"]),
        Route("/2.0/files/{id}", endpoint(delete_file), methods=["DELETE"]),
        Route("/2.0/files/{id}/copy", endpoint(copy_file), methods=["POST"]),
        Route("/2.0/files/{id}/content", endpoint(download), methods=["GET"]),
        Route("/dl/{id}/{version}", endpoint(dl, auth=False)),
        Route("/2.0/events", endpoint(events)),
        Route(f"{up}/content", endpoint(upload), methods=["POST"]),
        Route(f"{up}/upload_sessions", endpoint(new_session), methods=["POST"]),
        Route(f"{up}/upload_sessions/{{sid}}", endpoint(put_part), methods=["PUT"]),
        Route(f"{up}/upload_sessions/{{sid}}", endpoint(abort), methods=["DELETE"]),
        Route(f"{up}/upload_sessions/{{sid}}/commit", endpoint(commit), methods=["POST"]),
        Route(f"{up}/{{id}}/content", endpoint(upload_version), methods=["POST"]),
        Route(f"{up}/{{id}}/upload_sessions", endpoint(version_session), methods=["POST"]),
        Route("/oauth2/token", endpoint(token, auth=False), methods=["POST"]),
    ]
    return Starlette(routes=routes)
