"""`BoxProvider`: the Provider interface on Box paths (see the package docstring)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, ClassVar, TypeVar

from box_sdk_gen.managers.files import CopyFileParent, UpdateFileByIdParent
from box_sdk_gen.managers.folders import CreateFolderParent

from cdir.errors import (
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotFound,
    UsageError,
)
from cdir.providers.base import TMP_PREFIX, Capabilities, ChangeBatch, Provider, RemoteStat
from cdir.providers.box import changes as feed
from cdir.providers.box.client import Settings, boxed, failure, make_client
from cdir.providers.box.items import FIELDS, blocks, kind_of, to_stat
from cdir.providers.box.tree import Node, Tree, join
from cdir.providers.box.upload import (
    spooled,
    stream_chunks,
    upload_chunked,
    upload_small,
)
from cdir.providers.oauth import OAuthEndpoints, OAuthSession
from cdir.providers.options import OptionSpec

T = TypeVar("T")
MiB = 1024 * 1024


class BoxProvider(Provider):
    kind = "box"
    capabilities = Capabilities(
        set_mtime=True,  # content_modified_at, sent with each upload
        mtime_precision_ns=1_000_000_000,
        hash_kinds=frozenset({"sha1"}),
        case_sensitive=False,
        server_side_copy=True,
        server_side_move=True,
        changes=True,
    )
    oauth: ClassVar[OAuthEndpoints] = OAuthEndpoints(
        authorize_url="https://account.box.com/api/oauth2/authorize",
        token_url="https://api.box.com/oauth2/token",
    )
    options = (
        OptionSpec("client_id", "OAuth client id of your Box app (none: you must give one)"),
        OptionSpec("client_secret", "OAuth client secret of the Box app", secret=True),
        OptionSpec("token", "OAuth token (JSON), written by `cdir provider auth`", secret=True),
        OptionSpec("api_url", "Box API base URL", default="https://api.box.com"),
        OptionSpec("upload_url", "Box upload base URL", default="https://upload.box.com/api"),
        OptionSpec("token_url", "OAuth token endpoint", default=oauth.token_url),
        OptionSpec("page_size", "entries per folder listing page", "int", 1000, minimum=1),
        OptionSpec(
            "upload_cutoff",
            "files from this size on go up in chunks (Box's minimum for those is 20 MB)",
            "size",
            50 * MiB,
            minimum=20_000_000,
        ),
        OptionSpec(
            "attempts",
            "tries of a request (throttled, failed, or refused with an expired token)",
            "int",
            5,
            minimum=2,  # the SDK refreshes a token only when it may try again
        ),
        OptionSpec("max_wait", "longest Retry-After waited out, seconds", "float", 60.0, minimum=0),
    )

    def configure(self) -> None:
        self._root = "/".join(p for p in self.root.split("/") if p)
        self._tree = Tree()
        self._client: Any = None
        self._lock = threading.Lock()

    def client(self) -> Any:
        """The SDK client, made on first use (one per provider, shared by its threads)."""
        with self._lock:
            if self._client is None:
                c = self.conf
                if not c["client_id"]:
                    raise UsageError(f"{self.name}: the option client_id is needed")
                endpoints = OAuthEndpoints(self.oauth.authorize_url, c["token_url"])
                session = OAuthSession(
                    self.name,
                    endpoints,
                    c["client_id"],
                    c["client_secret"],
                    self.secrets,
                    self.secret_store,
                )
                settings = Settings(c["api_url"], c["upload_url"], c["attempts"], c["max_wait"])
                self._client = make_client(session, settings)
            return self._client

    # --- paths and ids -----------------------------------------------------------------
    def _box(self, path: str) -> str:
        """The Box path of a provider path."""
        return join(self._root, path) if path else self._root

    def _rel(self, box_path: str) -> str:
        return box_path[len(self._root) :].lstrip("/") if self._root else box_path

    def _child(self, folder: Node, name: str, *, recheck: bool = False) -> Node | None:
        """The item `name` in `folder`, from the tree or a listing. Writes trust a folder
        already listed to say a name is absent (a 409 corrects them); reads `recheck`, as
        another client or process may have written it since."""
        path = join(folder.path, name)
        found = self._tree.get(path)
        if found is None and (recheck or not self._tree.listed(folder.path)):
            for _ in self._scan(folder):
                pass
            found = self._tree.get(path)
        return found

    def _find(self, box_path: str) -> Node | None:
        node = self._tree.get(box_path)
        if node is not None:
            return node
        parent_path, _, name = box_path.rpartition("/")
        parent = self._find(parent_path) if box_path else None
        if parent is None or parent.kind != "dir":
            return None
        return self._child(parent, name, recheck=True)

    def _node(self, path: str) -> Node:
        node = self._find(self._box(path))
        if node is None:
            raise NotFound(f"{self._what(path)}: no such file or directory")
        return node

    def _fresh(self, path: str, op: Callable[[Node], T]) -> T:
        """`op` on the item at `path`; when Box says its remembered id is gone (another
        client deleted or moved it), the path is looked up again once."""
        node = self._node(path)
        try:
            return op(node)
        except NotFound:
            self._tree.forget(node.path, stale=True)
            return op(self._node(path))

    def _folder(self, path: str, create: bool) -> Node:
        """The folder at `path`, made (with its parents) when `create`; the root is never
        made here, since a missing root is a fault (`create_root` makes it)."""
        node = self._find(self._root)
        if node is None:
            raise NotFound(f"{self.name}: the root folder /{self._root} is missing")
        for name in [p for p in path.split("/") if p]:
            child = self._child(node, name)
            if child is None and create:
                child = self._mkdir(node, name)
            if child is None:
                raise NotFound(f"{self._what(path)}: no such directory")
            if child.kind != "dir":
                raise NotADirectory(f"{self._what(self._rel(child.path))}: not a directory")
            node = child
        return node

    def _mkdir(self, parent: Node, name: str) -> Node:
        path = join(parent.path, name)
        try:
            with boxed(self._what(self._rel(path))):
                raw = (
                    self.client()
                    .folders.create_folder(
                        name, CreateFolderParent(parent.id), fields=["id", "type", "name"]
                    )
                    .raw_data
                )
        except Exception as exc:
            taken = self._taken(exc)  # made meanwhile by another thread or client
            if taken is None:
                raise
            raw = taken
        node = Node(str(raw["id"]), kind_of(raw), path)
        self._tree.add(node)
        return node

    @staticmethod
    def _taken(exc: BaseException) -> dict[str, Any] | None:
        """The item in the way, when `exc` is Box's 409 item_name_in_use."""
        cause = exc.__cause__ if exc.__cause__ is not None else exc
        problem = failure(cause)
        if problem is None or problem.code != "item_name_in_use":
            return None
        return problem.conflict()

    # --- reading -----------------------------------------------------------------------
    def _scan(self, folder: Node) -> Iterator[dict[str, Any]]:
        """The items of a folder, page by page (marker paging); the tree learns them all."""
        children: list[Node] = []
        try:
            yield from self._pages(folder, children)
        except NotFound:
            self._tree.forget(folder.path, stale=True)  # gone, or moved by another client
            raise
        self._tree.fill(folder.path, children)

    def _pages(self, folder: Node, children: list[Node]) -> Iterator[dict[str, Any]]:
        marker: str | None = None
        with boxed(self._what(self._rel(folder.path))):
            while True:
                page = (
                    self.client()
                    .folders.get_folder_items(
                        folder.id,
                        fields=FIELDS,
                        usemarker=True,
                        marker=marker,
                        limit=self.conf["page_size"],
                    )
                    .raw_data
                )
                for item in page.get("entries", []):
                    if item["type"] not in ("file", "folder"):
                        continue  # web links and the like are no files
                    path = join(folder.path, item["name"])
                    children.append(Node(str(item["id"]), kind_of(item), path))
                    yield item
                marker = page.get("next_marker")
                if not marker:
                    break

    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        try:
            node = self._node(path)
        except NotFound:
            if path:
                raise
            return  # a root not made yet lists empty
        if node.kind != "dir":
            raise NotADirectory(f"{self._what(path)}: not a directory")
        todo = [node]
        while todo:
            folder = todo.pop()
            for item in self._scan(folder):
                if item["name"].startswith(TMP_PREFIX):
                    continue  # not written by this provider, but others' uploads in flight
                st = to_stat(self._rel(join(folder.path, item["name"])), item)
                if recursive and st.kind == "dir":
                    todo.append(Node(str(item["id"]), "dir", join(folder.path, item["name"])))
                yield st

    def stat(self, path: str) -> RemoteStat:
        def get(node: Node) -> RemoteStat:
            if node.kind == "dir":
                return RemoteStat(path, "dir")
            with boxed(self._what(path)):
                raw = self.client().files.get_file_by_id(node.id, fields=FIELDS).raw_data
            return to_stat(path, raw)

        return self._fresh(path, get)

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if start == 0 and end is None:
            wanted = None
        elif end is None:
            wanted = f"bytes={start}-"
        else:
            wanted = f"bytes={start}-{end - 1}" if end > start else ""

        def download(node: Node) -> Any:
            if node.kind == "dir":
                raise IsADirectory(f"{self._what(path)}: is a directory")
            if wanted == "":
                return None
            try:
                with boxed(self._what(path)):
                    return self.client().downloads.download_file(node.id, range=wanted)
            except Exception as exc:
                problem = failure(exc.__cause__ or exc)
                if problem is not None and problem.status == 416:
                    return None  # the range starts at or past the end: no bytes
                raise

        stream = self._fresh(path, download)
        if stream is None:
            return
        yield from blocks(stream, self._what(path))

    # --- writing -----------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        self._folder(path, create=True)

    def create_root(self) -> None:
        node = self._tree.get("")
        assert node is not None
        for name in [p for p in self._root.split("/") if p]:
            child = self._child(node, name) or self._mkdir(node, name)
            if child.kind != "dir":
                raise NotADirectory(f"{self.name}: /{child.path} is not a folder")
            node = child

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        parent, _, name = path.rpartition("/")
        if not name:
            raise InvalidPath(f"{self._what(path)}: not a file path")
        with spooled(stream_chunks(stream), size, self._what(path)) as body:
            folder = self._folder(parent, create=True)
            existing = self._child(folder, name)
            if existing is not None and existing.kind == "dir":
                raise IsADirectory(f"{self._what(path)}: is a directory")
            raw = self._upload(folder, name, existing, body, mtime_ns, path)
        self._tree.add(Node(str(raw["id"]), "file", join(folder.path, raw["name"])))
        st = to_stat(path, raw)
        return RemoteStat(
            st.path, st.kind, st.size, st.mtime_ns, st.fingerprint, {**st.hashes, "md5": body.md5}
        )

    def _upload(
        self, folder: Node, name: str, existing: Node | None, body: Any, mtime_ns: int | None,
        path: str,
    ) -> dict[str, Any]:  # fmt: skip
        """A new file, or a new version of `existing`; a name another client took meanwhile
        (409 item_name_in_use) gets a new version too, and a remembered file that is gone
        (404) a new file."""
        what = self._what(path)

        def send(file_id: str | None) -> dict[str, Any]:
            body.file.seek(0)
            with boxed(what):
                if body.size >= self.conf["upload_cutoff"]:
                    return upload_chunked(
                        self.client(), folder.id, name, file_id, body, mtime_ns, what
                    )
                return upload_small(self.client(), folder.id, name, file_id, body, mtime_ns, FIELDS)

        try:
            return send(existing.id if existing else None)
        except NotFound:
            if existing is None:
                raise
            self._tree.forget(existing.path, stale=True)
            return send(None)
        except Exception as exc:
            taken = self._taken(exc)
            if taken is None:
                raise
            if taken.get("type") != "file":
                raise IsADirectory(f"{what}: is a directory") from exc
            return send(str(taken["id"]))

    def delete(self, path: str) -> None:
        def remove(node: Node) -> None:
            if node.kind == "dir":
                raise IsADirectory(f"{self._what(path)}: is a directory")
            with boxed(self._what(path)):
                self.client().files.delete_file_by_id(node.id)  # to the trash

        self._fresh(path, remove)
        self._tree.forget(self._box(path))

    def delete_tree(self, path: str) -> None:
        if not path:
            for st in list(self.list("")):
                self.delete_tree(st.path)
            return
        try:
            node = self._node(path)
        except NotFound:
            return
        with boxed(self._what(path)):
            try:
                if node.kind == "dir":
                    self.client().folders.delete_folder_by_id(node.id, recursive=True)
                else:
                    self.client().files.delete_file_by_id(node.id)
            except Exception as exc:
                problem = failure(exc)
                if problem is None or problem.status != 404:
                    raise  # gone already is what was asked
        self._tree.forget(node.path)

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        # Box sets content_modified_at only with new content: the bytes go up again.
        with spooled(self.read_chunks(path), None, self._what(path)) as body:
            return self.put_stream(body.file, path, body.size, mtime_ns)  # type: ignore[arg-type]

    def copy(self, src: str, dst: str) -> RemoteStat:
        return self._relocate(src, dst, copy=True)

    def move(self, src: str, dst: str) -> RemoteStat:
        return self._relocate(src, dst, copy=False)

    def _relocate(self, src: str, dst: str, *, copy: bool) -> RemoteStat:
        """POST /files/{id}/copy or PUT /files/{id} with a new parent and name. Box will not
        replace a file on either, so a file at `dst` goes to the trash first: a reader
        finds nothing there for a moment, never a partial file."""
        parent, _, name = dst.rpartition("/")
        node = self._node(src)
        if node.kind == "dir":
            raise IsADirectory(f"{self._what(src)}: is a directory")
        folder = self._folder(parent, create=True)
        there = self._child(folder, name)
        if there is not None and there.id != node.id:
            if there.kind == "dir":
                raise IsADirectory(f"{self._what(dst)}: is a directory")
            self.delete(dst)
        files = self.client().files

        def send() -> dict[str, Any]:
            with boxed(self._what(src)):
                if copy:
                    return dict(
                        files.copy_file(
                            node.id, CopyFileParent(folder.id), name=name, fields=FIELDS
                        ).raw_data
                    )
                return dict(
                    files.update_file_by_id(
                        node.id, parent=UpdateFileByIdParent(id=folder.id), name=name, fields=FIELDS
                    ).raw_data
                )

        try:
            raw = send()
        except Exception as exc:
            taken = self._taken(exc)  # a file another client put there meanwhile
            if taken is None or taken.get("type") != "file":
                raise
            with boxed(self._what(dst)):
                files.delete_file_by_id(str(taken["id"]))
            raw = send()
        if not copy:
            self._tree.forget(node.path)
        self._tree.add(Node(str(raw["id"]), "file", join(folder.path, raw["name"])))
        return to_stat(dst, raw)

    def check(self) -> None:
        """The root is there and the token works (a listing of a missing root is empty)."""
        root = self._folder("", create=False)
        with boxed(f"{self.name}: /{self._root}"):
            self.client().folders.get_folder_by_id(root.id, fields=["id"])

    # --- the change feed ---------------------------------------------------------------
    def changes(self, cursor: str | None) -> ChangeBatch:
        with boxed(f"{self.name}: events"):
            return feed.changes(self.client(), cursor, self._tree, self._root)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.network_session.network_client.requests_session.close()
