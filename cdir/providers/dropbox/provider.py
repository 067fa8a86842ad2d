"""`DropboxProvider`: provider paths onto Dropbox paths, and each operation as API calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, BinaryIO, ClassVar

from cdir.errors import (
    AlreadyExists,
    CdirError,
    Conflict,
    IsADirectory,
    NotFound,
    ProviderError,
    UsageError,
    translated,
)
from cdir.providers.base import TMP_PREFIX, Capabilities, ChangeBatch, Provider, RemoteStat
from cdir.providers.common import MiB, PrependedStream, parse_rfc3339, range_header
from cdir.providers.dropbox.api import DropboxAPI
from cdir.providers.dropbox.errors import ERRORS, ApiError
from cdir.providers.dropbox.hashing import BLOCK, ContentHasher, content_hash
from cdir.providers.oauth import OAuthEndpoints, OAuthSession, Token
from cdir.providers.options import OptionSpec

API_URL = "https://api.dropboxapi.com"
CONTENT_URL = "https://content.dropboxapi.com"
AUTHORIZE_URL = "https://www.dropbox.com/oauth2/authorize"
MAX_CHUNK = 148 * MiB  # a request carries at most 150 MB

OPTIONS = (
    OptionSpec("root", "folder in the Dropbox that holds the files ('' = all of it)", default=""),
    OptionSpec("client_id", "app key of your Dropbox app (required to sign in)"),
    OptionSpec("client_secret", "app secret (not needed: sign-in uses PKCE)", secret=True),
    OptionSpec("token", "OAuth token (JSON), written by `cdir provider auth`", secret=True),
    OptionSpec("api_url", "base URL of the RPC endpoints", default=API_URL),
    OptionSpec("content_url", "base URL of the upload and download endpoints", default=CONTENT_URL),
    OptionSpec(
        "chunk_size",
        "bytes per upload request, a multiple of 4 MiB; smaller files go in one request",
        "size",
        default=16 * MiB,
        minimum=BLOCK,
    ),
    OptionSpec("page_size", "entries per listing page (1 to 2000)", "int", default=2000, minimum=1),
    OptionSpec("max_retries", "tries again after 429 or 5xx answers", "int", default=6, minimum=0),
    OptionSpec(
        "max_wait", "longest wait before a retry, seconds", "float", default=60.0, minimum=0
    ),
    OptionSpec("timeout", "seconds to wait for the server on each request", "float", default=60.0),
    OptionSpec("max_connections", "HTTP connections kept open", "int", default=16, minimum=1),
)


class DropboxProvider(Provider):
    kind = "dropbox"
    capabilities = Capabilities(
        set_mtime=False,  # client_modified is set only by an upload
        mtime_precision_ns=1_000_000_000,
        hash_kinds=frozenset({"dropbox"}),
        case_sensitive=False,
        server_side_copy=True,
        server_side_move=True,
        changes=True,
    )
    options = OPTIONS
    oauth: ClassVar[OAuthEndpoints] = OAuthEndpoints(
        authorize_url=AUTHORIZE_URL,
        token_url=f"{API_URL}/oauth2/token",
        authorize_params={"token_access_type": "offline"},  # a refresh token too
    )

    def configure(self) -> None:
        c = self.conf
        if c["chunk_size"] % BLOCK or c["chunk_size"] > MAX_CHUNK:
            raise UsageError(f"{self.name}: chunk_size must be a multiple of 4 MiB up to 148 MiB")
        if c["page_size"] > 2000:
            raise UsageError(f"{self.name}: page_size must be at most 2000")
        self._base = "/".join(s for s in self.root.split("/") if s)
        self._api: DropboxAPI | None = None

    @property
    def api(self) -> DropboxAPI:
        """The API client, made on first use (signing in needs the vault's secrets)."""
        if self._api is None:
            c = self.conf
            api_url = c["api_url"].rstrip("/")
            endpoints = OAuthEndpoints(
                self.oauth.authorize_url,
                f"{api_url}/oauth2/token",
                authorize_params=self.oauth.authorize_params,
            )
            session = OAuthSession(
                self.name,
                endpoints,
                c["client_id"] or "",
                c["client_secret"],
                self.secrets,
                self.secret_store,
            )
            self._api = DropboxAPI(
                api_url,
                c["content_url"],
                session.auth(),
                timeout=c["timeout"],
                max_retries=c["max_retries"],
                max_wait=c["max_wait"],
                max_connections=c["max_connections"],
            )
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    # --- paths -----------------------------------------------------------------------------
    def remote(self, path: str) -> str:
        """The Dropbox path of a provider path: "/root/path"; "" for the account's root."""
        joined = "/".join(p for p in (self._base, path) if p)
        return f"/{joined}" if joined else ""

    def namer(self, path: str) -> Callable[[Mapping[str, Any]], str]:
        """Names the entries listed below provider path `path`: the path its parent was given
        (this listing's folder, or a folder listed before it) + the entry's `name`. Only the
        last component of Dropbox's `path_display` surely has the case it was written with."""
        known = {self.remote(path).lower(): path}
        cut = len(self.remote(""))

        def name(meta: Mapping[str, Any]) -> str:
            lower = str(meta["path_lower"])
            parent = known.get(lower.rpartition("/")[0])
            rel = (
                f"{parent}/{meta['name']}".lstrip("/")
                if parent is not None
                else str(meta["path_display"])[cut:].lstrip("/")
            )
            if meta.get(".tag") == "folder":
                known[lower] = rel
            return rel

        return name

    def to_stat(self, path: str, meta: Mapping[str, Any]) -> RemoteStat:
        if meta.get(".tag", "file") == "folder":
            return RemoteStat(path, "dir", fingerprint=str(meta.get("id", "")))
        mtime = parse_rfc3339(str(meta.get("client_modified", "")))
        hashes = {"dropbox": meta["content_hash"]} if meta.get("content_hash") else {}
        return RemoteStat(
            path, "file", int(meta.get("size", 0)), mtime, str(meta.get("rev", "")), hashes
        )

    def call(self, what: str, endpoint: str, arg: Mapping[str, Any]) -> dict[str, Any]:
        """An RPC call about provider path `what`, its failure as a cdir error."""
        with translated(ERRORS, self._what(what)):
            return self.api.rpc(endpoint, arg)

    # --- reading ---------------------------------------------------------------------------
    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        folder = self.remote(path)
        arg = {"path": folder, "recursive": recursive, "limit": self.conf["page_size"]}
        try:
            page = self.call(path, "files/list_folder", arg)
        except NotFound:
            if path:
                raise
            return  # a root that was never written to lists empty
        name = self.namer(path)
        while True:
            for meta in page.get("entries", ()):
                if str(meta["path_lower"]) == folder.lower() or _hidden(meta):
                    continue  # a recursive listing names the folder itself first
                yield self.to_stat(name(meta), meta)
            if not page.get("has_more"):
                return
            page = self.call(path, "files/list_folder/continue", {"cursor": page["cursor"]})

    def stat(self, path: str) -> RemoteStat:
        if not self.remote(path):
            return RemoteStat("", "dir")  # the account's root has no metadata
        return self.to_stat(
            path, self.call(path, "files/get_metadata", {"path": self.remote(path)})
        )

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            self.stat(path)  # nothing to read, but a missing file is still an error
            return
        headers = range_header(start, end)
        with (
            translated(ERRORS, self._what(path)),
            self.api.download({"path": self.remote(path)}, headers) as resp,
        ):
            if resp.status_code == 416:
                return  # the range starts at or past the end
            yield from resp.iter_bytes()

    # --- writing ---------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        if not self.remote(path):
            return
        try:
            self.call(path, "files/create_folder_v2", {"path": self.remote(path)})
        except IsADirectory:
            return  # path/conflict/folder: already there
        except Conflict as exc:
            raise AlreadyExists(f"{self._what(path)}: a file is in the way") from exc

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        """One files/upload for a file smaller than a chunk, else an upload session: start,
        append_v2 per chunk, finish committing it. Each request sends the content_hash of
        its bytes, which the server checks; the whole file's hash is compared at the end."""
        commit: dict[str, Any] = {
            "path": self.remote(path),
            "mode": "overwrite",
            "autorename": False,
            "mute": True,
        }
        if mtime_ns is not None:
            commit["client_modified"] = _seconds(mtime_ns)
        source = PrependedStream(b"", stream, size, self._what(path), md5=True)
        whole = ContentHasher()
        with translated(ERRORS, self._what(path)):
            meta = self._upload(source.blocks(self.conf["chunk_size"]), commit, whole)
        st = self.to_stat(path, meta)
        if st.hashes.get("dropbox") != whole.hexdigest():
            raise ProviderError(
                f"{self._what(path)}: the stored file's content_hash is not that of the bytes sent",
                retryable=True,
            )
        assert source.md5 is not None
        return RemoteStat(
            st.path,
            st.kind,
            st.size,
            st.mtime_ns,
            st.fingerprint,
            {**st.hashes, "md5": source.md5.hexdigest()},
        )

    def _upload(
        self, blocks: Iterator[bytes], commit: dict[str, Any], whole: ContentHasher
    ) -> dict[str, Any]:
        api = self.api

        def part(data: bytes) -> bytes:
            whole.update(data)
            return data

        first = part(next(blocks, b""))
        nxt = next(blocks, None)
        if nxt is None:
            return api.upload(
                "files/upload", {**commit, "content_hash": content_hash(first)}, first
            )
        started = api.upload(
            "files/upload_session/start", {"content_hash": content_hash(first)}, first
        )
        cursor = {"session_id": started["session_id"], "offset": len(first)}
        data = part(nxt)
        for following in blocks:  # reading one ahead: the last block goes with finish
            self._append(cursor, data)
            cursor = {**cursor, "offset": cursor["offset"] + len(data)}
            data = part(following)
        arg = {"cursor": cursor, "commit": commit, "content_hash": content_hash(data)}
        return api.upload("files/upload_session/finish", arg, data)

    def _append(self, cursor: dict[str, Any], data: bytes) -> None:
        arg = {"cursor": cursor, "close": False, "content_hash": content_hash(data)}
        try:
            self.api.upload("files/upload_session/append_v2", arg, data)
        except ApiError as exc:
            # a retry of a request the server had done, its answer lost: appended already
            done = cursor["offset"] + len(data)
            if not (exc.has("incorrect_offset") and exc.field("correct_offset") == done):
                raise

    def delete(self, path: str) -> None:
        if self.stat(path).kind == "dir":  # delete_v2 would take the whole folder
            raise IsADirectory(f"{self._what(path)}: is a directory")
        self.call(path, "files/delete_v2", {"path": self.remote(path)})

    def delete_tree(self, path: str) -> None:
        if not self.remote(path):  # the account's root cannot go: empty it
            for st in self.list(""):
                self.delete_tree(st.path)
            return
        with suppress(NotFound):
            self.call(path, "files/delete_v2", {"path": self.remote(path)})

    def copy(self, src: str, dst: str) -> RemoteStat:
        return self._relocate("files/copy_v2", src, dst)

    def move(self, src: str, dst: str) -> RemoteStat:
        return self._relocate("files/move_v2", src, dst)

    def _relocate(self, endpoint: str, src: str, dst: str) -> RemoteStat:
        """copy_v2/move_v2 never replace: a file at `dst` is deleted first, then once more."""
        arg = {"from_path": self.remote(src), "to_path": self.remote(dst), "autorename": False}
        try:
            return self.to_stat(dst, self.call(src, endpoint, arg)["metadata"])
        except Conflict as exc:
            if not {"to", "file"} <= set(api_tags(exc)):
                raise
        self.delete(dst)
        return self.to_stat(dst, self.call(src, endpoint, arg)["metadata"])

    # --- the change feed -------------------------------------------------------------------
    def changes(self, cursor: str | None) -> ChangeBatch:
        """list_folder/continue from a cursor of list_folder/get_latest_cursor (recursive,
        with deleted entries); an expired cursor (`reset`) starts again from the latest."""
        root = self.remote("").lower()
        if cursor is None:
            arg = {"path": self.remote(""), "recursive": True, "include_deleted": True}
            return ChangeBatch(self.call("", "files/list_folder/get_latest_cursor", arg)["cursor"])
        changed: dict[str, bool] = {}  # path → deleted, the last word on each path
        name = self.namer("")
        while True:
            try:
                page = self.call("", "files/list_folder/continue", {"cursor": cursor})
            except CdirError as exc:
                if "reset" not in api_tags(exc):
                    raise
                return ChangeBatch(self.changes(None).cursor, reset=True)
            for meta in page.get("entries", ()):
                lower = str(meta["path_lower"])
                if not lower.startswith(root + "/") or _hidden(meta):
                    continue  # the root itself, or outside it
                rel = name(meta)
                changed.pop(rel, None)
                changed[rel] = meta.get(".tag") == "deleted"
            cursor = page["cursor"]
            if not page.get("has_more"):
                return ChangeBatch(
                    cursor,
                    tuple(p for p, gone in changed.items() if not gone),
                    tuple(p for p, gone in changed.items() if gone),
                )

    def create_root(self) -> None:
        self.mkdir("")  # the account's root always exists: a no-op there


def api_tags(exc: BaseException) -> tuple[str, ...]:
    """The tags of the Dropbox error behind a translated cdir error (`("to", "conflict")`)."""
    cause = exc.__cause__
    return cause.tags if isinstance(cause, ApiError) else ()


def _hidden(meta: Mapping[str, Any]) -> bool:
    """Uploads in flight of other providers' kind (TMP_PREFIX names) stay out of listings."""
    return str(meta.get("name", "")).startswith(TMP_PREFIX)


def _seconds(mtime_ns: int) -> str:
    """client_modified: UTC, whole seconds (the API keeps no more)."""
    return datetime.fromtimestamp(mtime_ns // 1_000_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_secret(access_token: str, refresh_token: str | None = None) -> str:
    """A `token` secret for tests and scripts (what `cdir provider auth` writes)."""
    return Token(access_token, refresh_token).to_secret()
