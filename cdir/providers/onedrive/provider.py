"""The OneDrive provider on provider paths: listing, reading, writing, copy, move, mtimes."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any, BinaryIO, ClassVar, cast

import httpx

from cdir.errors import (
    AlreadyExists,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    ProviderError,
    UsageError,
    translated,
)
from cdir.providers.base import (
    CHUNK,
    TMP_PREFIX,
    Capabilities,
    ChangeBatch,
    Provider,
    RemoteStat,
)
from cdir.providers.common import (
    MiB,
    PrependedStream,
    check_size,
    parse_rfc3339,
    range_header,
    read_upto,
    walk_folders,
)
from cdir.providers.oauth import OAuthEndpoints, OAuthSession
from cdir.providers.onedrive import delta, upload
from cdir.providers.onedrive.api import Graph, Json, item_url
from cdir.providers.onedrive.errors import ERRORS, GraphError
from cdir.providers.onedrive.options import FRAGMENT_UNIT, OPTIONS, endpoints
from cdir.providers.onedrive.quickxor import QuickXor, base64_to_hex

SIMPLE_MAX = 4 * MiB  # the most one PUT /content takes; bigger files go through a session
SPOOL_IN_MEMORY = 64 * MiB  # an upload of unknown size is spooled, in memory up to this
REPLACE = {"@microsoft.graph.conflictBehavior": "replace"}
# Characters OneDrive refuses in names (besides "/"); names may not end in "." or " " either.
FORBIDDEN = frozenset('"*:<>?\\|')


class OneDriveProvider(Provider):
    kind = "onedrive"
    capabilities = Capabilities(
        empty_dirs=True,
        set_mtime=True,  # fileSystemInfo.lastModifiedDateTime, kept to the second
        mtime_precision_ns=1_000_000_000,
        hash_kinds=frozenset({"quickxor"}),  # sha1/sha256 too where Graph gives them
        case_sensitive=False,
        range_reads=True,
        server_side_copy=True,
        server_side_move=True,
        max_name_bytes=255,
        changes=True,  # the delta feed
    )
    options = OPTIONS
    oauth: ClassVar[OAuthEndpoints] = endpoints("common")
    # The test seam: a subclass sets an httpx transport (a MockTransport over a fake Graph).
    transport: ClassVar[httpx.BaseTransport | None] = None

    def configure(self) -> None:
        c = self.conf
        if not c["client_id"]:
            raise UsageError(f"{self.name}: option client_id is required (an Azure app's id)")
        if c["chunk_size"] % FRAGMENT_UNIT or c["chunk_size"] > 60 * MiB:
            raise UsageError(f"{self.name}: chunk_size must be a multiple of 320 KiB, ≤ 60 MiB")
        drive = c["drive_id"].strip("/")
        drive = drive if "/" in drive else f"drives/{drive}"
        self._base = f"{c['graph_url'].rstrip('/')}/{drive}"
        self._root = self._check("/".join(s for s in self.root.split("/") if s), self.root)
        self._graph: Graph | None = None
        self._lock = threading.Lock()
        self._known_dirs: set[str] = {""}  # folders known to exist (casefolded drive paths)
        self._ids: dict[str, str] = {}  # drive paths of item ids met in the change feed

    @classmethod
    def oauth_for(cls, options: Mapping[str, Any]) -> OAuthEndpoints:
        """The sign-in endpoints for `options` (their tenant; `oauth` is the "common" one,
        which takes personal and work accounts alike)."""
        return endpoints(str(options.get("tenant") or "common"))

    def oauth_endpoints(self) -> OAuthEndpoints:
        return self.oauth_for(self.conf)

    # --- plumbing --------------------------------------------------------------------------
    @property
    def graph(self) -> Graph:
        """The Graph client, made on first use (one per provider, shared by its threads)."""
        with self._lock:
            if self._graph is None:
                c = self.conf
                http = httpx.Client(
                    transport=self.transport,
                    timeout=httpx.Timeout(c["timeout"], connect=min(c["timeout"], 15.0)),
                    headers={"User-Agent": "cdir"},
                )
                session = OAuthSession(
                    self.name,
                    self.oauth_endpoints(),
                    c["client_id"],
                    c["client_secret"],
                    self.secrets,
                    store=self.secret_store,
                    http=http,
                )
                self._graph = Graph(self._base, http, session.auth(), c["retries"])
            return self._graph

    def close(self) -> None:
        with self._lock:
            graph, self._graph = self._graph, None
        if graph is not None:
            graph.close()

    def _check(self, rel: str, shown: str) -> str:
        for seg in rel.split("/") if rel else ():
            if seg in ("", ".", ".."):
                raise InvalidPath(f"invalid provider path {shown!r}")
            if not FORBIDDEN.isdisjoint(seg) or seg[-1] in ". ":
                raise InvalidPath(
                    f'{self._what(rel)}: OneDrive does not allow the characters " * : < > ? \\ |'
                    " in names, nor names ending in '.' or ' '"
                )
        return rel

    def _rel(self, path: str) -> str:
        return self._check(path.strip("/"), path)

    def _full(self, rel: str) -> str:
        """The path from the drive root."""
        return f"{self._root}/{rel}" if self._root and rel else self._root or rel

    def _to_stat(self, rel: str, item: Json) -> RemoteStat:
        fs = item.get("fileSystemInfo") or {}
        stamp = fs.get("lastModifiedDateTime") or item.get("lastModifiedDateTime") or ""
        mtime = parse_rfc3339(stamp)
        if "folder" in item or "root" in item:
            return RemoteStat(rel, "dir", mtime_ns=mtime, fingerprint=item.get("eTag", ""))
        hashes = (item.get("file") or {}).get("hashes") or {}
        found = {
            "quickxor": base64_to_hex(hashes.get("quickXorHash", "")),
            "sha1": str(hashes.get("sha1Hash", "")).lower(),
            "sha256": str(hashes.get("sha256Hash", "")).lower(),
        }
        return RemoteStat(
            rel,
            "file",
            size=int(item.get("size", 0)),
            mtime_ns=mtime,
            # cTag changes with the content only; eTag with any change
            fingerprint=item.get("cTag") or item.get("eTag", ""),
            hashes={k: v for k, v in found.items() if v},
        )

    # --- reading ---------------------------------------------------------------------------
    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        return walk_folders(self._rel(path), self._children, recursive)

    def _children(self, rel: str) -> Iterator[RemoteStat]:
        what = self._what(rel)
        seen = False
        with translated(ERRORS, what):
            top = {"$top": str(self.conf["page_size"])}
            for item in self.graph.pages(item_url(self._full(rel), "children"), top):
                seen = True
                name = item.get("name", "")
                if name and not name.startswith(TMP_PREFIX):
                    yield self._to_stat(f"{rel}/{name}" if rel else name, item)
        if not seen and rel and self.stat(rel).kind == "file":
            raise NotADirectory(f"{what}: not a directory")  # a file has no children

    def stat(self, path: str) -> RemoteStat:
        rel = self._rel(path)
        return self._to_stat(rel, self._item(rel))

    def _item(self, rel: str) -> Json:
        with translated(ERRORS, self._what(rel)):
            return self.graph.json("GET", item_url(self._full(rel)))

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        rel = self._rel(path)
        if end is not None and end <= start:
            self.stat(rel)  # nothing to read, but a missing file is still NotFound
            return
        headers = range_header(start, end)
        with translated(ERRORS, self._what(rel)):
            # /content answers 302 to a pre-authenticated download URL
            resp = self.graph.send(
                "GET",
                item_url(self._full(rel), "content"),
                headers=headers,
                ok=(416,),
                stream=True,
                follow=True,
            )
            try:
                if resp.status_code == 416:
                    return  # start is at or past the end
                # 200 to a range request: the whole file came, so cut it here
                skip = start if headers and resp.status_code == 200 else 0
                left = None if end is None else end - start
                for chunk in resp.iter_bytes(CHUNK):
                    if skip:
                        chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                    if left is not None:
                        chunk = chunk[:left]
                        left -= len(chunk)
                    if chunk:
                        yield chunk
                    if left == 0:
                        break
            finally:
                resp.close()

    # --- folders ---------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            self._ensure_dirs(self._full(rel), below=self._root, exact=True)

    def create_root(self) -> None:
        with translated(ERRORS, self._what("")):
            self._ensure_dirs(self._root, below="")

    def _ensure_dirs(self, full: str, below: str, exact: bool = False) -> None:
        """Create the folders from `below` (which must exist: the provider root, or the
        drive's) down to `full`, one POST per level not known to exist. With `exact`, a file
        in the way of `full` itself is AlreadyExists."""
        segs = full.split("/") if full else []
        start = len(below.split("/")) if below else 0
        for level in range(start + 1, len(segs) + 1):
            sub = "/".join(segs[:level])
            if sub.casefold() in self._known_dirs and not (exact and level == len(segs)):
                continue
            parent = "/".join(segs[: level - 1])
            body: Json = {
                "name": segs[level - 1],
                "folder": {},
                "@microsoft.graph.conflictBehavior": "fail",
            }
            resp = self.graph.send("POST", item_url(parent, "children"), json=body, ok=(409,))
            if resp.status_code == 409:  # something is there already: a folder, we hope
                item = self.graph.json("GET", item_url(sub))
                if "folder" not in item:
                    rel = sub[len(self._root) :].lstrip("/")
                    cls = AlreadyExists if exact and level == len(segs) else NotADirectory
                    raise cls(f"{self._what(rel)}: a file is in the way")
            with self._lock:
                self._known_dirs.add(sub.casefold())

    def _forget_dirs(self, full: str) -> None:
        key = full.casefold()
        with self._lock:
            self._known_dirs = {
                k for k in self._known_dirs if k != key and not k.startswith(key + "/")
            }
            self._known_dirs.add("")

    def _retry_with_parents(self, rel: str, op: Callable[[], Json]) -> Json:
        """`op()`; when Graph says the parent folder is missing, create it, then once more."""
        try:
            return op()
        except GraphError as exc:
            if exc.status != 404 or "/" not in rel:
                raise
        self._ensure_dirs(self._full(rel).rpartition("/")[0], below=self._root)
        return op()

    # --- writing ---------------------------------------------------------------------------
    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        rel = self._rel(path)
        what = self._what(rel)
        if not rel:
            raise IsADirectory(f"{what}: is a directory")
        head = read_upto(stream, SIMPLE_MAX + 1)
        qx = QuickXor()  # checked against the server's, so a corrupted upload shows
        with translated(ERRORS, what):
            # A session also sets the mtime with the content, in one step (not empty files:
            # a session takes at least one byte; those get a PATCH after the PUT).
            if len(head) <= SIMPLE_MAX and (mtime_ns is None or not head):
                check_size(what, size, len(head))
                md5 = hashlib.md5(head)
                qx.update(head)
                item = self._put_small(rel, head, mtime_ns)
            else:
                reader = PrependedStream(head, stream, size, what, md5=True)
                assert reader.md5 is not None
                md5 = reader.md5
                with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY) as spool:
                    if size is None:  # a session needs the total: spool first
                        shutil.copyfileobj(reader, spool, CHUNK)
                        size = spool.tell()
                        spool.seek(0)
                        reader = PrependedStream(b"", cast(BinaryIO, spool), size, what)
                    item = self._put_session(rel, reader, size, mtime_ns, qx)
            st = self._to_stat(rel, item)
        server_qx = st.hashes.get("quickxor")
        if server_qx and server_qx != qx.hexdigest():
            raise ProviderError(f"{what}: OneDrive's quickXorHash differs from the bytes sent")
        hashes = {**st.hashes, "quickxor": qx.hexdigest(), "md5": md5.hexdigest()}
        return dataclasses.replace(st, hashes=hashes)

    def _put_small(self, rel: str, data: bytes, mtime_ns: int | None) -> Json:
        """PUT /content (up to 4 MiB), then the mtime by PATCH when one is given."""
        url = item_url(self._full(rel), "content")
        put = partial(self.graph.json, "PUT", url, params=REPLACE, content=data)
        try:
            item = self._retry_with_parents(rel, put)
        except GraphError as exc:
            if exc.status == 409 and "folder" in self._item(rel):
                raise IsADirectory(f"{self._what(rel)}: is a directory") from None
            raise
        if mtime_ns is None:
            return item
        return self.graph.json("PATCH", f"/items/{item['id']}", json=upload.mtime_body(mtime_ns))

    def _put_session(
        self, rel: str, reader: PrependedStream, size: int, mtime_ns: int | None, qx: QuickXor
    ) -> Json:
        """An upload session: fragments of `chunk_size` (a multiple of 320 KiB) PUT in order
        with Content-Range; the file appears when the last byte arrives, so a failure before
        (the session is then cancelled) leaves any older version as it was."""
        props: Json = {**REPLACE}
        if mtime_ns is not None:
            props["fileSystemInfo"] = upload.mtime_body(mtime_ns)["fileSystemInfo"]
        url = item_url(self._full(rel), "createUploadSession")
        create = partial(self.graph.json, "POST", url, json={"item": props})
        upload_url = self._retry_with_parents(rel, create)["uploadUrl"]
        chunk = self.conf["chunk_size"]
        return upload.send_fragments(self.graph, upload_url, reader, size, chunk, qx)

    def delete(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            self.graph.send("DELETE", item_url(self._full(rel)))

    def delete_tree(self, path: str) -> None:
        rel = self._rel(path)
        if not rel:  # the root stays: empty it
            for st in list(self.list("")):
                self.delete_tree(st.path)
            return
        with translated(ERRORS, self._what(rel)):
            self.graph.send("DELETE", item_url(self._full(rel)), ok=(404,))
        self._forget_dirs(self._full(rel))

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            item = self.graph.json(
                "PATCH", item_url(self._full(rel)), json=upload.mtime_body(mtime_ns)
            )
        return self._to_stat(rel, item)

    # --- server-side copy and move ---------------------------------------------------------
    def copy(self, src: str, dst: str) -> RemoteStat:
        s, d = self._rel(src), self._rel(dst)
        with translated(ERRORS, f"{self._what(s)} → {self._what(d)}"):
            body = self._destination(d)
            url = item_url(self._full(s), "copy")
            resp = self._replacing(
                d, partial(self.graph.send, "POST", url, params=REPLACE, json=body)
            )
            self.graph.wait_for_job(resp.headers["Location"], self.conf["copy_timeout"])
        return self.stat(d)

    def move(self, src: str, dst: str) -> RemoteStat:
        s, d = self._rel(src), self._rel(dst)
        with translated(ERRORS, f"{self._what(s)} → {self._what(d)}"):
            body = self._destination(d)
            url = item_url(self._full(s))
            resp = self._replacing(
                d, partial(self.graph.send, "PATCH", url, params=REPLACE, json=body)
            )
        return self._to_stat(d, resp.json())

    def _destination(self, rel: str) -> Json:
        """The body naming where a copy or move goes: the parent folder (created if need be)
        by id, and the name."""
        parent, _, name = self._full(rel).rpartition("/")
        self._ensure_dirs(parent, below=self._root)
        folder = self.graph.json("GET", item_url(parent))
        ref = {"id": folder["id"]}
        drive = (folder.get("parentReference") or {}).get("driveId")
        return {"parentReference": {**ref, **({"driveId": drive} if drive else {})}, "name": name}

    def _replacing(self, rel: str, op: Callable[[], httpx.Response]) -> httpx.Response:
        """`op()`; on "nameAlreadyExists" (OneDrive Personal ignores conflictBehavior on copy
        and move) the file in the way is deleted and `op` tried once more."""
        try:
            return op()
        except GraphError as exc:
            if exc.status != 409:
                raise
        if "folder" in self._item(rel):
            raise IsADirectory(f"{self._what(rel)}: is a directory")
        self.graph.send("DELETE", item_url(self._full(rel)), ok=(404,))
        return op()

    # --- changes and service ---------------------------------------------------------------
    def changes(self, cursor: str | None) -> ChangeBatch:
        with translated(ERRORS, self._what("")):
            return delta.changes(self.graph, self._root, cursor, self._ids)

    def check(self) -> None:
        self.stat("")  # the root must exist: an empty listing would hide a vanished one
