"""A contract fake of Microsoft Graph's OneDrive API and the Microsoft identity token
endpoint, written from the published references, served to httpx through a MockTransport
(`FakeGraph.transport()`): no sockets, every request goes to `handle`.

It keeps one drive in memory and implements exactly what the onedrive provider calls, with
Graph's JSON shapes and error bodies: items by path (`/root:/a/b:`) and id, children paged by
`$top`/`@odata.nextLink`, simple PUT /content (≤ 4 MiB), upload sessions (fragments in order,
multiples of 320 KiB but the last, ≤ 60 MiB, no Authorization header), folders made by POST
children, PATCH of fileSystemInfo / parentReference / name, DELETE, asynchronous copy with a
monitor URL, `delta` with deltaLink tokens (410 resyncRequired when expired), and
OneDrive's name rules (case-insensitive, forbidden characters). Switches per test: `throttle`
(429/503 + Retry-After), `expire_tokens()` (401 → refresh at the token endpoint), `honour_replace`
(conflictBehavior on copy/move, which OneDrive Personal ignores), `business_deletes`,
`drop_after` (a fragment stored but its answer lost, as when a connection drops).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx

from cdir.providers.onedrive.quickxor import QuickXor

GRAPH = "https://graph.fake.test/v1.0"
FILES = "https://files.fake.test"  # pre-authenticated download, upload and monitor URLs
LOGIN_HOST = "login.microsoftonline.com"
DRIVE_ID = "b!fakedrive"
SIMPLE_MAX = 4 * 1024 * 1024
FRAGMENT_UNIT = 320 * 1024
FRAGMENT_MAX = 60 * 1024 * 1024
FORBIDDEN = re.compile(r'["*:<>?\\|/]')
Json = dict[str, Any]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def to_seconds(stamp: str) -> str:
    """A DateTimeOffset as OneDrive keeps fileSystemInfo: to the second, in UTC."""
    dt = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(
    status: int, code: str, message: str = "", headers: dict[str, str] | None = None
) -> httpx.Response:
    body = {"error": {"code": code, "message": message or code, "innerError": {"date": now()}}}
    return httpx.Response(status, json=body, headers=headers)


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str = "") -> None:
        self.response = error(status, code, message)


@dataclass
class Item:
    id: str
    name: str
    parent: str | None  # None for the root
    folder: bool
    data: bytes = b""
    mtime: str = field(default_factory=now)  # fileSystemInfo.lastModifiedDateTime
    created: str = field(default_factory=now)
    version: int = 1  # eTag: any change
    content_version: int = 1  # cTag: content changes
    seq: int = 0  # position in the change feed
    children: dict[str, str] = field(default_factory=dict)  # casefolded name → id


@dataclass
class Session:
    parent: str
    name: str
    props: Json
    received: bytearray = field(default_factory=bytearray)
    total: int | None = None


class FakeGraph:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.ids = (f"FAKE{i:06d}" for i in itertools.count(1))
        self.seq = 0
        self.items: dict[str, Item] = {}
        self.root = self._new("root", None, folder=True)
        self.tombstones: dict[str, tuple[int, Json]] = {}  # id → (seq, delta item)
        self.sessions: dict[str, Session] = {}
        self.copies: dict[str, tuple[int, Json]] = {}  # monitor id → (polls left, job)
        self.access_tokens = {"at-0"}
        self.refresh_tokens = {"rt-0"}
        self.tokens_issued = 0
        self.requests: list[str] = []  # "METHOD url" of every request
        self.throttle: list[tuple[int, str]] = []  # (status, Retry-After) for the next requests
        self.fragments = 0  # upload session fragments stored so far
        self.drop_after: set[int] = set()  # fragment counts whose answer is lost
        self.copy_polls = 2  # monitor answers "inProgress" this many times first
        self.honour_replace = True  # conflictBehavior=replace on copy and move
        self.business_deletes = False  # deleted items in delta without their name
        self.sha_hashes = True  # sha1Hash and sha256Hash besides quickXorHash
        self.delta_page = 5
        self.delta_floor = 0  # delta tokens below this are expired (410)

    # --- switches for tests ---------------------------------------------------------------
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def expire_tokens(self) -> None:
        """Every access token given so far stops working (as after its hour)."""
        with self.lock:
            self.access_tokens.clear()

    def expire_delta(self) -> None:
        with self.lock:
            self.delta_floor = self.seq  # every cursor given before now

    # --- the items ------------------------------------------------------------------------
    def _new(self, name: str, parent: str | None, folder: bool, data: bytes = b"") -> Item:
        item = Item(next(self.ids), name, parent, folder, data)
        self.items[item.id] = item
        if parent is not None:
            self.items[parent].children[name.casefold()] = item.id
        self._touch(item)
        return item

    def _touch(self, item: Item, content: bool = False) -> None:
        self.seq += 1
        item.seq = self.seq
        item.version += 1
        item.content_version += content

    def path_of(self, item: Item) -> str:
        parts = []
        while item.parent is not None:
            parts.append(item.name)
            item = self.items[item.parent]
        return "/".join(reversed(parts))

    def lookup(self, path: str) -> Item | None:
        item: Item | None = self.root
        for seg in [s for s in path.split("/") if s]:
            if item is None or not item.folder:
                return None
            child = item.children.get(seg.casefold())
            item = self.items[child] if child else None
        return item

    def get(self, path: str) -> Item:
        item = self.lookup(path)
        if item is None:
            raise Refused(404, "itemNotFound", "The resource could not be found.")
        return item

    def _remove(self, item: Item) -> None:
        for child in list(item.children.values()):
            self._remove(self.items[child])
        del self.items[item.id]
        if item.parent is not None:
            self.items[item.parent].children.pop(item.name.casefold(), None)
        self.seq += 1
        gone: Json = {"id": item.id, "deleted": {"state": "deleted"}}
        gone["parentReference"] = {"driveId": DRIVE_ID, "id": item.parent}
        gone["folder" if item.folder else "file"] = {}
        if not self.business_deletes:
            gone["name"] = item.name
        self.tombstones[item.id] = (self.seq, gone)

    def _write(self, parent: Item, name: str, data: bytes, props: Json) -> tuple[Item, bool]:
        """Create or replace the file `name` in `parent`; (item, created)."""
        check_name(name)
        found = parent.children.get(name.casefold())
        if found and self.items[found].folder:
            raise Refused(409, "nameAlreadyExists", "A folder with that name exists.")
        if found and props.get("@microsoft.graph.conflictBehavior") == "fail":
            raise Refused(409, "nameAlreadyExists", "An item with that name exists.")
        if found:
            item = self.items[found]
            item.data = data
            item.mtime = now()
            self._touch(item, content=True)
        else:
            item = self._new(name, parent.id, folder=False, data=data)
        stamp = (props.get("fileSystemInfo") or {}).get("lastModifiedDateTime")
        if stamp:
            item.mtime = to_seconds(stamp)
        return item, not found

    def item_json(self, item: Item, in_delta: bool = False) -> Json:
        out: Json = {
            "id": item.id,
            "name": item.name,
            "eTag": f'"{{{item.id}}},{item.version}"',
            "cTag": f'"c:{{{item.id}}},{item.content_version}"',
            "createdDateTime": item.created,
            "lastModifiedDateTime": item.mtime,
            "size": len(item.data),
            "fileSystemInfo": {"createdDateTime": item.created, "lastModifiedDateTime": item.mtime},
            "parentReference": {"driveId": DRIVE_ID, "driveType": "personal"},
        }
        if item.parent is None:
            out["root"] = {}
        else:
            out["parentReference"]["id"] = item.parent
            if not in_delta:  # delta items carry no path (docs: track items by id)
                parent_path = self.path_of(self.items[item.parent])
                out["parentReference"]["path"] = "/drive/root:" + (
                    f"/{parent_path}" if parent_path else ""
                )
        if item.folder:
            out["folder"] = {"childCount": len(item.children)}
        else:
            hashes = {"quickXorHash": base64.b64encode(QuickXor(item.data).digest()).decode()}
            if self.sha_hashes:
                hashes["sha1Hash"] = hashlib.sha1(item.data).hexdigest().upper()
                hashes["sha256Hash"] = hashlib.sha256(item.data).hexdigest().upper()
            out["file"] = {"mimeType": "application/octet-stream", "hashes": hashes}
        return out

    # --- dispatch -------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(f"{request.method} {request.url}")
            try:
                return self._dispatch(request)
            except Refused as exc:
                return exc.response

    def _dispatch(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.host == LOGIN_HOST:
            return self._token(request)
        if self.throttle:
            status, wait = self.throttle.pop(0)
            code = "activityLimitReached" if status == 429 else "serviceNotAvailable"
            return error(status, code, "Throttled", {"Retry-After": wait})
        raw = url.raw_path.decode("ascii").partition("?")[0]
        query = {k: v[-1] for k, v in parse_qs(url.query.decode()).items()}
        if url.host == urlsplit(FILES).hostname:
            return self._files(request, raw)
        auth = request.headers.get("Authorization", "")
        if auth.removeprefix("Bearer ") not in self.access_tokens:
            return error(
                401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            )
        for prefix in (
            "/v1.0/me/drive",
            f"/v1.0/drives/{quote(DRIVE_ID)}",
            f"/v1.0/drives/{DRIVE_ID}",
        ):
            if raw.startswith(prefix + "/"):
                return self._drive(request, raw[len(prefix) :], query)
        return error(400, "invalidRequest", f"no such resource {raw}")

    def _drive(self, request: httpx.Request, rest: str, query: dict[str, str]) -> httpx.Response:
        if rest.startswith("/items/"):
            item_id, _, action = rest[len("/items/") :].partition("/")
            item = self.items.get(item_id)
            if item is None:
                raise Refused(404, "itemNotFound", "The resource could not be found.")
            return self._on_item(request, item, None, action, query)
        if rest == "/root" or rest.startswith("/root/"):
            return self._on_item(request, self.root, "", rest[len("/root/") :], query)
        if rest.startswith("/root:"):
            body = rest[len("/root:") :]
            path, _, action = body.partition(":")
            path = unquote(path).strip("/")
            return self._on_item(request, self.lookup(path), path, action.strip("/"), query)
        raise Refused(400, "invalidRequest", f"unknown address {rest}")

    def _on_item(
        self,
        request: httpx.Request,
        item: Item | None,
        path: str | None,
        action: str,
        query: dict[str, str],
    ) -> httpx.Response:
        method = request.method
        if method == "PUT" and action == "content":
            return self._simple_upload(request, item, path, query)
        if method == "POST" and action == "createUploadSession":
            return self._create_session(request, path)
        if item is None:
            raise Refused(404, "itemNotFound", "The resource could not be found.")
        if method == "GET" and action == "":
            return httpx.Response(200, json=self.item_json(item))
        if method == "GET" and action == "children":
            return self._children(request, item, query)
        if method == "GET" and action == "content":
            if item.folder:
                raise Refused(404, "itemNotFound", "A folder has no content.")
            return httpx.Response(302, headers={"Location": f"{FILES}/download/{item.id}"})
        if method == "GET" and action == "delta":
            return self._delta(request, item, query)
        if method == "POST" and action == "children":
            return self._mkdir(item, json.loads(request.content))
        if method == "PATCH" and action == "":
            return self._patch(item, json.loads(request.content), query)
        if method == "DELETE" and action == "":
            if item is self.root:
                raise Refused(403, "accessDenied", "The root cannot be deleted.")
            self._remove(item)
            return httpx.Response(204)
        if method == "POST" and action == "copy":
            return self._copy(item, json.loads(request.content), query)
        raise Refused(400, "invalidRequest", f"{method} {action} is not supported here")

    # --- reading --------------------------------------------------------------------------
    def _children(
        self, request: httpx.Request, item: Item, query: dict[str, str]
    ) -> httpx.Response:
        top = min(int(query.get("$top", "200")), 1000)
        skip = int(query.get("$skiptoken", "0"))
        kids = sorted((self.items[i] for i in item.children.values()), key=lambda i: i.name)
        page = kids[skip : skip + top] if item.folder else []
        body: Json = {"value": [self.item_json(k) for k in page]}
        if skip + top < len(kids):
            body["@odata.nextLink"] = str(
                request.url.copy_merge_params({"$skiptoken": str(skip + top)})
            )
        return httpx.Response(200, json=body)

    def _files(self, request: httpx.Request, raw: str) -> httpx.Response:
        """The pre-authenticated URLs: downloads, upload sessions, copy monitors."""
        kind, _, key = raw.strip("/").partition("/")
        if kind == "download" and request.method == "GET":
            item = self.items.get(key)
            if item is None:
                raise Refused(404, "itemNotFound")
            return self._ranged(request, item.data)
        if kind == "upload":
            if "Authorization" in request.headers:  # the docs: sending one may fail with 401
                raise Refused(401, "unauthenticated", "Do not send Authorization to uploadUrl.")
            return self._upload(request, key)
        if kind == "monitor" and request.method == "GET":
            return self._monitor(key)
        raise Refused(404, "itemNotFound")

    @staticmethod
    def _ranged(request: httpx.Request, data: bytes) -> httpx.Response:
        spec = request.headers.get("Range")
        if not spec:
            return httpx.Response(200, content=data)
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", spec)
        assert m, spec
        start = int(m.group(1))
        end = min(int(m.group(2)) + 1 if m.group(2) else len(data), len(data))
        if start >= len(data):
            return httpx.Response(416, headers={"Content-Range": f"bytes */{len(data)}"})
        headers = {"Content-Range": f"bytes {start}-{end - 1}/{len(data)}"}
        return httpx.Response(206, content=data[start:end], headers=headers)

    # --- writing --------------------------------------------------------------------------
    def _parent_of(self, path: str | None) -> tuple[Item, str]:
        if not path:
            raise Refused(400, "invalidRequest", "Cannot write to the root.")
        parent_path, _, name = path.rpartition("/")
        parent = self.lookup(parent_path)
        if parent is None or not parent.folder:
            raise Refused(404, "itemNotFound", "The parent folder does not exist.")
        return parent, name

    def _simple_upload(
        self, request: httpx.Request, item: Item | None, path: str | None, query: dict[str, str]
    ) -> httpx.Response:
        if len(request.content) > SIMPLE_MAX:
            raise Refused(413, "requestEntityTooLarge", "Use an upload session above 4 MiB.")
        if path is None:  # PUT /items/{id}/content replaces that file
            assert item is not None
            parent, name = self.items[item.parent or ""], item.name
        else:
            parent, name = self._parent_of(path)
        item, created = self._write(parent, name, request.content, query)
        return httpx.Response(201 if created else 200, json=self.item_json(item))

    def _create_session(self, request: httpx.Request, path: str | None) -> httpx.Response:
        parent, name = self._parent_of(path)
        check_name(name)
        props = (json.loads(request.content or b"{}") or {}).get("item") or {}
        sid = next(self.ids)
        self.sessions[sid] = Session(parent.id, name, props)
        body = {
            "uploadUrl": f"{FILES}/upload/{sid}",
            "expirationDateTime": "2099-01-01T00:00:00Z",
            "nextExpectedRanges": ["0-"],
        }
        return httpx.Response(200, json=body)

    def _upload(self, request: httpx.Request, sid: str) -> httpx.Response:
        session = self.sessions.get(sid)
        if session is None:
            raise Refused(404, "itemNotFound", "The upload session does not exist.")
        if request.method == "DELETE":
            del self.sessions[sid]
            return httpx.Response(204)
        if request.method == "GET":  # the session's state, to resume an upload
            missing = (
                f"{len(session.received)}-{'' if session.total is None else session.total - 1}"
            )
            body = {"expirationDateTime": "2099-01-01T00:00:00Z", "nextExpectedRanges": [missing]}
            return httpx.Response(200, json=body)
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers.get("Content-Range", ""))
        if request.method != "PUT" or not m:
            raise Refused(400, "invalidRequest", "A PUT with Content-Range is expected.")
        start, end, total = (int(g) for g in m.groups())
        data = request.content
        if start != len(session.received) or end - start + 1 != len(data) or end >= total:
            raise Refused(416, "invalidRange", "The fragment does not continue the upload.")
        if session.total not in (None, total):
            raise Refused(400, "invalidRequest", "The total size changed.")
        last = end + 1 == total
        if len(data) > FRAGMENT_MAX or (not last and len(data) % FRAGMENT_UNIT):
            raise Refused(400, "invalidRequest", "Fragments are multiples of 320 KiB, ≤ 60 MiB.")
        session.total = total
        session.received += data
        self.fragments += 1
        if self.fragments in self.drop_after:  # stored, but the answer never arrives
            raise httpx.ReadError("connection reset by the fake")
        if not last:
            body = {
                "expirationDateTime": "2099-01-01T00:00:00Z",
                "nextExpectedRanges": [f"{end + 1}-{total - 1}"],
            }
            return httpx.Response(202, json=body)
        del self.sessions[sid]
        parent = self.items.get(session.parent)
        if parent is None:
            raise Refused(404, "itemNotFound", "The parent folder is gone.")
        item, created = self._write(parent, session.name, bytes(session.received), session.props)
        return httpx.Response(201 if created else 200, json=self.item_json(item))

    def _mkdir(self, parent: Item, body: Json) -> httpx.Response:
        name = str(body.get("name", ""))
        check_name(name)
        if "folder" not in body or not parent.folder:
            raise Refused(400, "invalidRequest", "Only folders are made this way.")
        if name.casefold() in parent.children:
            behaviour = body.get("@microsoft.graph.conflictBehavior", "fail")
            if behaviour == "fail":
                raise Refused(409, "nameAlreadyExists", "The specified item name already exists.")
            return httpx.Response(
                200, json=self.item_json(self.items[parent.children[name.casefold()]])
            )
        return httpx.Response(201, json=self.item_json(self._new(name, parent.id, folder=True)))

    def _patch(self, item: Item, body: Json, query: dict[str, str]) -> httpx.Response:
        stamp = (body.get("fileSystemInfo") or {}).get("lastModifiedDateTime")
        if stamp:
            item.mtime = to_seconds(stamp)
        ref = body.get("parentReference") or {}
        if ref or "name" in body:
            target = self.items.get(ref.get("id", item.parent or ""))
            if target is None or not target.folder:
                raise Refused(404, "itemNotFound", "The destination folder does not exist.")
            name = str(body.get("name", item.name))
            check_name(name)
            self._clear_way(target, name, query, keep=item)
            self.items[item.parent or ""].children.pop(item.name.casefold(), None)
            item.parent, item.name = target.id, name
            target.children[name.casefold()] = item.id
        self._touch(item)
        return httpx.Response(200, json=self.item_json(item))

    def _clear_way(
        self, folder: Item, name: str, query: dict[str, str], keep: Item | None = None
    ) -> None:
        """A copy or move onto `name` in `folder`: the item there is replaced when asked (and
        honoured), else the request fails with nameAlreadyExists."""
        found = folder.children.get(name.casefold())
        if found is None or (keep is not None and found == keep.id):
            return
        replace = query.get("@microsoft.graph.conflictBehavior") == "replace"
        if not (replace and self.honour_replace) or self.items[found].folder:
            raise Refused(409, "nameAlreadyExists", "The specified item name already exists.")
        self._remove(self.items[found])

    def _copy(self, item: Item, body: Json, query: dict[str, str]) -> httpx.Response:
        ref = body.get("parentReference") or {}
        target = self.items.get(ref.get("id", ""))
        if target is None or not target.folder or ref.get("driveId", DRIVE_ID) != DRIVE_ID:
            raise Refused(
                400, "invalidRequest", "parentReference must name a folder of this drive."
            )
        name = str(body.get("name", item.name))
        check_name(name)
        self._clear_way(target, name, query)
        mid = next(self.ids)
        self.copies[mid] = (self.copy_polls, {"src": item.id, "parent": target.id, "name": name})
        return httpx.Response(202, headers={"Location": f"{FILES}/monitor/{mid}"})

    def _monitor(self, mid: str) -> httpx.Response:
        left, job = self.copies[mid]
        if left > 0:
            self.copies[mid] = (left - 1, job)
            body = {"operation": "ItemCopy", "status": "inProgress", "percentageComplete": 50.0}
            return httpx.Response(202, json=body)
        src, parent = self.items.get(job["src"]), self.items.get(job["parent"])
        if src is None or parent is None:
            body = {"status": "failed", "error": {"code": "itemNotFound"}}
            return httpx.Response(200, json=body)
        if "done" not in job:
            new, _ = self._write(
                parent,
                job["name"],
                src.data,
                {"fileSystemInfo": {"lastModifiedDateTime": src.mtime}},
            )
            job["done"] = new.id
        body = {"operation": "ItemCopy", "status": "completed", "resourceId": job["done"]}
        return httpx.Response(200, json=body)

    # --- the change feed ------------------------------------------------------------------
    def _delta(self, request: httpx.Request, item: Item, query: dict[str, str]) -> httpx.Response:
        if item is not self.root:
            raise Refused(400, "invalidRequest", "delta is only supported on the root here.")
        base = f"{GRAPH}/drives/{DRIVE_ID}/root/delta"
        token = query.get("token", "0")
        if token == "latest":
            return httpx.Response(
                200, json={"value": [], "@odata.deltaLink": f"{base}?token={self.seq}"}
            )
        since = int(token)
        if since < self.delta_floor:
            raise Refused(410, "resyncRequired", "Resync required: the token expired.")
        changed = [
            (i.seq, self.item_json(i, in_delta=True)) for i in self.items.values() if i.seq > since
        ]
        changed += [t for t in self.tombstones.values() if t[0] > since]
        changed.sort(key=lambda t: t[0])
        skip = int(query.get("skip", "0"))
        page = [body for _, body in changed[skip : skip + self.delta_page]]
        out: Json = {"value": page}
        if skip + self.delta_page < len(changed):
            out["@odata.nextLink"] = f"{base}?token={since}&skip={skip + self.delta_page}"
        else:
            out["@odata.deltaLink"] = f"{base}?token={self.seq}"
        return httpx.Response(200, json=out)

    # --- sign-in --------------------------------------------------------------------------
    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[-1] for k, v in parse_qs(request.content.decode()).items()}
        if not request.url.path.endswith("/oauth2/v2.0/token"):
            return httpx.Response(404)
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") not in self.refresh_tokens
        ):
            body = {
                "error": "invalid_grant",
                "error_description": "AADSTS70000: the grant is invalid.",
            }
            return httpx.Response(400, json=body)
        self.tokens_issued += 1
        access, refresh = f"at-{self.tokens_issued}", f"rt-{self.tokens_issued}"
        self.access_tokens.add(access)
        self.refresh_tokens.add(refresh)
        grant: Json = {
            "token_type": "Bearer",
            "scope": "Files.ReadWrite.All",
            "expires_in": 3600,
            "access_token": access,
            "refresh_token": refresh,
        }
        return httpx.Response(200, json=grant)


def check_name(name: str) -> None:
    if not name or FORBIDDEN.search(name) or name[-1] in ". ":
        raise Refused(
            400, "invalidRequest", "The name contains characters OneDrive does not allow."
        )
