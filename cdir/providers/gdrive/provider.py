"""`GDriveProvider`: the provider interface on a Google Drive folder (the package docstring
says how). Paths become file IDs in `Tree`; `DriveAPI` sends the requests."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO, ClassVar

import httpx

from cdir.errors import (
    Conflict,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
    Unsupported,
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
from cdir.providers.common import PrependedStream, check_size, parse_rfc3339, read_upto
from cdir.providers.gdrive.api import DriveAPI, Item
from cdir.providers.gdrive.changes import changes
from cdir.providers.gdrive.errors import ERRORS, DriveError
from cdir.providers.gdrive.options import OPTIONS, TOKEN_URL, settings
from cdir.providers.gdrive.tree import Tree, duplicate, is_folder, is_native, join
from cdir.providers.oauth import OAuthEndpoints, OAuthSession

log = logging.getLogger(__name__)


# hash kind → the field Drive reports it in (sha1 and sha256 only where Drive has them)
HASH_FIELDS = {"md5": "md5Checksum", "sha1": "sha1Checksum", "sha256": "sha256Checksum"}


def drive_time(ns: int) -> str:
    """ns → RFC 3339 in milliseconds, the precision Drive keeps."""
    ms = ns // 1_000_000
    stamp = datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{ms % 1000:03d}Z"


def to_stat(rel: str, item: Item) -> RemoteStat:
    mtime = parse_rfc3339(item["modifiedTime"]) if item.get("modifiedTime") else None
    if is_folder(item):
        return RemoteStat(rel, "dir", 0, mtime, str(item["id"]))
    hashes = {kind: str(item[key]) for kind, key in HASH_FIELDS.items() if item.get(key)}
    # the md5 is the content's own; a file without one (none of ours) falls back to its ID
    fingerprint = hashes.get("md5") or str(item["id"])
    return RemoteStat(rel, "file", int(item.get("size", 0)), mtime, fingerprint, hashes)


class GDriveProvider(Provider):
    """A folder of Google Drive: My Drive, or a shared drive with option `drive_id`."""

    kind = "gdrive"
    capabilities = Capabilities(
        empty_dirs=True,
        set_mtime=True,
        mtime_precision_ns=1_000_000,  # modifiedTime keeps milliseconds
        hash_kinds=frozenset({"md5"}),
        case_sensitive=True,
        range_reads=True,
        server_side_copy=True,
        server_side_move=True,
        changes=True,
    )
    options = OPTIONS
    oauth: ClassVar[OAuthEndpoints] = OAuthEndpoints(
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth",
        token_url=TOKEN_URL,
        device_url="https://oauth2.googleapis.com/device/code",
        scopes=("https://www.googleapis.com/auth/drive",),
        authorize_params={"access_type": "offline", "prompt": "consent"},
    )

    def configure(self) -> None:
        s = settings(self.name, self.conf)
        self.trash = bool(self.conf["trash"])
        self._api = DriveAPI(s, self._auth)
        segs = [unicodedata.normalize("NFC", seg) for seg in self.root.split("/") if seg]
        self._tree = Tree(self._api, s.drive_id or "root", segs, self._what)

    def _auth(self) -> httpx.Auth:
        client_id = self.conf["client_id"]
        if not client_id:
            raise UsageError(f"{self.name}: option client_id is required (an OAuth client ID)")
        endpoints = dataclasses.replace(self.oauth, token_url=self.conf["token_url"])
        session = OAuthSession(
            self.name,
            endpoints,
            client_id,
            self.conf["client_secret"],
            self.secrets,
            self.secret_store,
        )
        return session.auth()

    @staticmethod
    def _rel(path: str) -> str:
        rel = unicodedata.normalize("NFC", path.strip("/"))
        if rel and any(seg in ("", ".", "..") for seg in rel.split("/")):
            raise InvalidPath(f"invalid provider path {path!r}")
        return rel

    # --- reading ---------------------------------------------------------------------------
    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            if not rel and self._tree.root_id() is None:
                return  # a root not made yet lists empty
            top = self._tree.lookup(rel)
            if not is_folder(top):
                raise NotADirectory(f"{self._what(rel)}: not a directory")
            pending = [(rel, str(top["id"]))]
            while pending:
                folder, folder_id = pending.pop()
                for st in self._children(folder, folder_id):
                    yield st
                    if recursive and st.kind == "dir":  # a folder's fingerprint is its ID
                        pending.append((st.path, st.fingerprint))

    def _children(self, rel: str, folder_id: str) -> Iterator[RemoteStat]:
        """One folder's entries. Google Docs files (no bytes) and names cdir cannot use as
        path segments are left out with a warning; two entries of one name are an error."""
        seen: dict[str, Item] = {}
        for item in self._tree.children(folder_id):
            name = unicodedata.normalize("NFC", item["name"])
            path = join(rel, name)
            if is_native(item):
                log.warning(
                    "%s: skipped, a Google Docs file (%s)", self._what(path), item["mimeType"]
                )
                continue
            if "/" in name or name in ("", ".", "..") or name.startswith(TMP_PREFIX):
                log.warning(
                    "%s: skipped, a name cdir cannot use (ID %s)", self._what(rel), item["id"]
                )
                continue
            if name in seen:
                raise duplicate(self._what(path), [seen[name], item])
            seen[name] = item
            self._tree.remember(path, item)
            yield to_stat(path, item)

    def stat(self, path: str) -> RemoteStat:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            return to_stat(rel, self._tree.file(rel))

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            item = self._tree.file(rel)
            if is_folder(item):
                raise IsADirectory(f"{self._what(rel)}: is a directory")
            size = int(item.get("size", 0))
            end = size if end is None else min(end, size)
            if start >= end:
                return
            with self._api.download(str(item["id"]), start, end) as resp:
                yield from resp.iter_bytes(CHUNK)

    # --- writing ---------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            self._tree.make_folders(rel)

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        rel = self._rel(path)
        what = self._what(rel)
        if not rel:
            raise IsADirectory(f"{what}: is a directory")
        parent, _, name = rel.rpartition("/")
        with translated(ERRORS, what):
            folder = self._tree.make_folders(parent)
            there = self._tree.child(folder, name, what)
            if there is not None and is_folder(there):
                raise IsADirectory(f"{what}: is a directory")
            if there is not None and is_native(there):
                raise Unsupported(f"{what}: a Google Docs file is in the way")
            # a new version of the file there keeps its ID (and Drive's revision history)
            meta: Item = {} if there else {"name": name, "parents": [folder]}
            if mtime_ns is not None:
                meta["modifiedTime"] = drive_time(mtime_ns)
            try:
                target = None if there is None else str(there["id"])
                item, md5 = self._upload(stream, target, meta, size, what)
            except DriveError as exc:
                if exc.status != 404:
                    raise
                self._tree.forget(parent)  # a folder we knew was removed behind our back
                raise Conflict(
                    f"{what}: the file or its folder vanished during the upload", retryable=True
                ) from exc
            if "md5Checksum" not in item:
                item = self._api.file(str(item["id"]))
            if item.get("md5Checksum", md5) != md5:
                raise ProviderError(f"{what}: Drive stored other bytes than were sent (md5)")
            return to_stat(rel, item)

    def _upload(
        self, stream: BinaryIO, target: str | None, meta: Item, size: int | None, what: str
    ) -> tuple[Item, str]:
        """Upload to a new file (`target` None) or over `target`; the file and the md5 of the
        bytes sent. Up to `upload_cutoff` in one multipart request, else a resumable session
        whose last chunk is sent only once the stream proved to have the announced size."""
        s = self._api.s
        head = b""
        if size is None or size <= s.upload_cutoff:
            head = read_upto(stream, (s.upload_cutoff if size is None else size) + 1)
            check_size(what, size, len(head), more=size is not None and len(head) > size)
            if len(head) <= s.upload_cutoff:
                item = self._api.upload_multipart(target, meta, head)
                return item, hashlib.md5(head, usedforsecurity=False).hexdigest()
        source = PrependedStream(head, stream, size, what, md5=True)
        session = self._api.start_session(target, meta, size)
        offset, chunk = 0, source.read(s.chunk_size)
        while True:
            ahead = source.read(s.chunk_size)  # the last chunk must say the total
            total = offset + len(chunk) if not ahead else size
            done = self._api.put_chunk(session, chunk, offset, total)
            if not ahead:
                break
            offset, chunk = offset + len(chunk), ahead
        if done is None:
            raise ProviderError(f"{what}: the upload session did not complete")
        assert source.md5 is not None
        return done, source.md5.hexdigest()

    def delete(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            item = self._tree.lookup(rel)
            if is_folder(item):
                raise IsADirectory(f"{self._what(rel)}: is a directory")
            self._api.remove(str(item["id"]), self.trash)

    def delete_tree(self, path: str) -> None:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            try:
                item = self._tree.lookup(rel)
            except (NotFound, NotADirectory):
                return
            if rel:
                self._api.remove(str(item["id"]), self.trash)
            else:  # never the root folder itself: empty it
                for child in list(self._tree.children(str(item["id"]))):
                    self._api.remove(str(child["id"]), self.trash)
            self._tree.forget(rel)

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        rel = self._rel(path)
        with translated(ERRORS, self._what(rel)):
            item = self._tree.file(rel)
            return to_stat(
                rel, self._api.update(str(item["id"]), {"modifiedTime": drive_time(mtime_ns)})
            )

    def copy(self, src: str, dst: str) -> RemoteStat:
        s, d = self._rel(src), self._rel(dst)
        with translated(ERRORS, self._what(s)):
            item = self._tree.file(s)
            if is_folder(item) or not d:
                raise IsADirectory(f"{self._what(s if d else d)}: is a directory")
            parent, _, name = d.rpartition("/")
            folder = self._tree.make_folders(parent)
            old = self._in_the_way(folder, name, d)
            meta = {"name": name, "parents": [folder], "modifiedTime": item["modifiedTime"]}
            made = self._api.copy(str(item["id"]), meta)
            if old is not None:  # replaced only once the copy exists
                self._api.remove(old, self.trash)
            return to_stat(d, made)

    def move(self, src: str, dst: str) -> RemoteStat:
        s, d = self._rel(src), self._rel(dst)
        with translated(ERRORS, self._what(s)):
            if not s or not d:
                raise UsageError(f"{self._what(s)}: cannot move the root or onto it")
            item = self._tree.lookup(s)
            parent, _, name = d.rpartition("/")
            folder = self._tree.make_folders(parent)
            old = self._in_the_way(folder, name, d)
            if old == item["id"]:
                return to_stat(d, item)
            was = [str(p) for p in item.get("parents", [])]
            params = (
                {} if was == [folder] else {"addParents": folder, "removeParents": ",".join(was)}
            )
            moved = self._api.update(str(item["id"]), {"name": name}, **params)
            if old is not None:
                self._api.remove(old, self.trash)
            self._tree.forget(s)
            self._tree.remember(d, moved)
            return to_stat(d, moved)

    def _in_the_way(self, folder: str, name: str, rel: str) -> str | None:
        """The ID of the file a copy or move to `rel` replaces; a folder there is refused."""
        there = self._tree.child(folder, name, self._what(rel))
        if there is None:
            return None
        if is_folder(there):
            raise IsADirectory(f"{self._what(rel)}: is a directory")
        return str(there["id"])

    def create_root(self) -> None:
        with translated(ERRORS, self._what("")):
            self._tree.make_root()

    def check(self) -> None:
        with translated(ERRORS, self._what("")):
            root = self._tree.root_id()
            if root is None:
                raise NotFound(f"{self._what('')}: the root folder {self.root!r} does not exist")
            self._api.file(root)  # a request even when the root's ID is known: signed in?

    # --- the change feed -------------------------------------------------------------------
    def changes(self, cursor: str | None) -> ChangeBatch:
        with translated(ERRORS, self._what("")):
            return changes(self._api, self._tree, cursor)

    def close(self) -> None:
        self._api.close()
