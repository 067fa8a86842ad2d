"""Azure Blob Storage (and Azurite) through azure-storage-blob.

Root is "container" or "container/some/prefix"; files are block blobs named `prefix/path`.
Directories are name prefixes with no marker blob, so an empty directory cannot exist.
The original mtime is kept in blob metadata `mtime` as RFC 3339 with nanoseconds (the key and
format rclone uses, so both tools agree on it).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, BinaryIO

import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobPrefix,
    BlobProperties,
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
    ExponentialRetry,
)

from cdir.errors import (
    AuthError,
    CdirError,
    Conflict,
    ErrorRule,
    IsADirectory,
    NotADirectory,
    NotFound,
    Unavailable,
    UsageError,
    translate,
)
from cdir.providers.base import TMP_PREFIX, Capabilities, OptionSpec, Provider, RemoteStat
from cdir.providers.common import (
    META_MTIME,
    RETRY_STATUS,
    MiB,
    PrependedStream,
    bare_etag,
    check_size,
    datetime_ns,
    format_rfc3339,
    listed_key,
    read_upto,
    rfc3339_meta_mtime,
    split_root,
)
from cdir.providers.sessions import tune_session


def _status(e: BaseException) -> int | None:
    return getattr(e, "status_code", None) if isinstance(e, HttpResponseError) else None


ERRORS: list[ErrorRule] = [
    (lambda e: isinstance(e, ClientAuthenticationError), AuthError, False),
    (lambda e: isinstance(e, ResourceNotFoundError), NotFound, False),
    (lambda e: isinstance(e, ResourceModifiedError), Conflict, False),  # 412: etag changed
    (lambda e: isinstance(e, ResourceExistsError), Conflict, False),  # 409: lease, pending copy
    (lambda e: _status(e) in (401, 403), AuthError, False),
    (lambda e: _status(e) in RETRY_STATUS, Unavailable, True),
    # connection refused/reset, DNS, timeouts (azure-core wraps the requests errors)
    (lambda e: isinstance(e, ServiceRequestError | ServiceResponseError), Unavailable, True),
    (lambda e: isinstance(e, requests.ConnectionError | requests.Timeout), Unavailable, True),
]

# a SAS signature can appear in a URL inside a connection error's text
_SIG = re.compile(r"(?i)(sig=)[^&\s'\")]+")


class AzureProvider(Provider):
    """Azure Blob container. Root: "container" or "container/prefix".

    Authenticate with exactly one secret: `connection_string`, `account_key` (with option
    `account_name`; `account_url` defaults to https://<account_name>.blob.core.windows.net) or
    `sas_token` (with `account_url`). For Azurite use its URL, e.g.
    http://127.0.0.1:10000/devstoreaccount1, and the well-known devstoreaccount1 key.
    """

    kind = "azure"
    capabilities = Capabilities(
        empty_dirs=False,  # directories are name prefixes
        set_mtime=True,  # metadata rewrite, content untouched
        mtime_precision_ns=1,  # kept in metadata at full precision
        hash_kinds=frozenset({"md5"}),  # Content-MD5: set by cdir on every upload
        server_side_copy=True,
        server_side_move=True,  # copy + delete (Azure has no rename for blobs)
        max_name_bytes=255,  # blob names may be 1024 chars, but keep to what filesystems hold
    )
    options = (
        OptionSpec("account_url", "blob endpoint, e.g. https://ACCOUNT.blob.core.windows.net"),
        OptionSpec("account_name", "storage account name (with account_key)"),
        OptionSpec("api_version", "service API version to send (e.g. 2025-11-05)"),
        OptionSpec("account_key", "storage account key", secret=True),
        OptionSpec("sas_token", "shared access signature (account or container)", secret=True),
        OptionSpec("connection_string", "full connection string", secret=True),
        OptionSpec("page_size", "entries per listing request", default=5000),
        OptionSpec(
            "single_put_size", "bytes up to which a file is sent in one request", default=8 * MiB
        ),
        OptionSpec("block_size", "block size of chunked uploads (bytes)", default=8 * MiB),
        OptionSpec("concurrency", "blocks uploaded at once per file", default=4),
        OptionSpec("pool_size", "HTTP connections kept open", default=32),
        OptionSpec("retries", "retries of a failed request inside the SDK", default=3),
        OptionSpec("timeout", "connect/read timeout in seconds", default=60),
    )

    def configure(self) -> None:
        name = self.name
        self.container, self.prefix = split_root(name, self.root, "container")
        ways = [k for k in ("account_key", "sas_token", "connection_string") if self.secrets.get(k)]
        if len(ways) != 1:
            raise UsageError(
                f"{name}: give exactly one of the secrets account_key, sas_token, "
                f"connection_string (got {', '.join(ways) or 'none'})"
            )
        self._auth = ways[0]
        if self._auth == "account_key":
            if not self.opts.get("account_name"):
                raise UsageError(f"{name}: account_key needs the option account_name")
            try:
                base64.b64decode(self.secrets["account_key"], validate=True)
            except (binascii.Error, ValueError):
                raise UsageError(f"{name}: account_key is not valid base64") from None
        if self._auth == "sas_token" and not self.opts.get("account_url"):
            raise UsageError(f"{name}: sas_token needs the option account_url")
        self._page = self.int_option("page_size", 5000)
        self._single_put = self.int_option("single_put_size", 8 * MiB)
        self._block = self.int_option("block_size", 8 * MiB)
        self._concurrency = max(1, self.int_option("concurrency", 4))
        self._lock = threading.Lock()
        self._service: BlobServiceClient | None = None
        self._http: requests.Session | None = None
        self._cc: ContainerClient | None = None

    # --- plumbing ----------------------------------------------------------------------------
    def _container(self) -> ContainerClient:
        """The container client, built on first use (BlobServiceClient is thread-safe)."""
        if self._cc is None:
            with self._lock:
                if self._cc is None:
                    self._service = self._build_service()
                    self._cc = self._service.get_container_client(self.container)
        return self._cc

    def _build_service(self) -> BlobServiceClient:
        timeout = self.float_option("timeout", 60)
        pool = self.int_option("pool_size", 32)
        session = requests.Session()
        kw: dict[str, Any] = {
            # timeouts go to our transport: the client applies its own only to one it makes
            "transport": RequestsTransport(
                session=session,
                session_owner=True,
                connection_timeout=min(timeout, 20),
                read_timeout=timeout,
                connection_data_block_size=256 * 1024,
            ),
            "max_single_put_size": self._single_put,
            "max_block_size": self._block,
            "max_single_get_size": 8 * MiB,
            "max_chunk_get_size": 4 * MiB,
            # the SDK default waits 15 s, then 18 s…; a short backoff, vdir retries above this
            "retry_policy": ExponentialRetry(
                initial_backoff=0.5,  # type: ignore[arg-type]  # the SDK types it int; floats work
                increment_base=2,
                random_jitter_range=0.5,  # type: ignore[arg-type]
                retry_total=self.int_option("retries", 3),
            ),
        }
        if self.opts.get("api_version"):
            kw["api_version"] = self.opts["api_version"]
        with self._errors(""), _bad_settings(self.name):
            if self._auth == "connection_string":
                service = BlobServiceClient.from_connection_string(
                    self.secrets["connection_string"], **kw
                )
            else:
                url = self.opts.get("account_url") or (
                    f"https://{self.opts['account_name']}.blob.core.windows.net"
                )
                cred: Any
                if self._auth == "account_key":
                    cred = {
                        "account_name": self.opts["account_name"],
                        "account_key": self.secrets["account_key"],
                    }
                else:
                    cred = self.secrets["sas_token"].lstrip("?")
                service = BlobServiceClient(url, credential=cred, **kw)
        # a pool big enough for --parallel threads times block concurrency
        tune_session(session, service.url, pool)
        self._http = session
        return service

    def _blob(self, path: str) -> BlobClient:
        return self._container().get_blob_client(self._key(path))

    def _key(self, path: str) -> str:
        return self.prefix + path

    @contextmanager
    def _errors(self, path: str) -> Iterator[None]:
        """Translate SDK errors through ERRORS; a missing container is named in the message."""
        try:
            yield
        except CdirError:
            raise
        except Exception as exc:
            if _code(exc) == "ContainerNotFound":
                raise NotFound(f"{self.name}: container {self.container!r} does not exist") from exc
            err = translate(exc, ERRORS, self._what(path))
            err.message = _SIG.sub(r"\1REDACTED", err.message)
            err.args = (err.message,)
            raise err from exc

    def _stat_props(self, path: str, p: BlobProperties) -> RemoteStat:
        md5 = p.content_settings.content_md5 if p.content_settings else None
        mtime = rfc3339_meta_mtime(p.metadata)
        return RemoteStat(
            path,
            "file",
            int(p.size or 0),
            datetime_ns(p.last_modified) if mtime is None else mtime,
            bare_etag(p.etag),
            {"md5": bytes(md5).hex()} if md5 else {},
        )

    def _props(self, bc: BlobClient, path: str) -> BlobProperties:
        try:
            return bc.get_blob_properties()
        except ResourceNotFoundError as exc:
            if not _blob_missing(exc):
                raise
            raise self._missing(path) from exc

    def _missing(self, path: str) -> CdirError:
        """Why `path` has no blob: IsADirectory when blobs live below it, else NotFound."""
        if self._is_dir(path):
            return IsADirectory(f"{self._what(path)}: is a directory")
        return NotFound(f"{self._what(path)}: not found")

    def _is_dir(self, path: str) -> bool:
        pages = (
            self._container()
            .list_blobs(name_starts_with=self._key(path) + "/", results_per_page=1)
            .by_page()
        )
        return any(True for _ in next(pages, []))

    # --- reading -----------------------------------------------------------------------------
    def list(self, path: str = "", recursive: bool = False) -> Iterator[RemoteStat]:
        base = self._key(path) + "/" if path else self.prefix
        cut = len(self.prefix)
        found = False
        with self._errors(path):
            cc = self._container()
            if recursive:
                seen: set[str] = set()
                for b in cc.list_blobs(
                    name_starts_with=base or None, include=["metadata"], results_per_page=self._page
                ):
                    found = True
                    rel = b.name[cut:]
                    dirs, is_file = listed_key(path, rel, seen)
                    yield from dirs
                    if is_file:
                        yield self._stat_props(rel, b)
            else:
                for item in cc.walk_blobs(
                    name_starts_with=base or None,
                    delimiter="/",
                    include=["metadata"],
                    results_per_page=self._page,
                ):
                    found = True
                    if isinstance(item, BlobPrefix):
                        yield RemoteStat(item.name[cut:].rstrip("/"), "dir")
                    elif item.name != base and not item.name[len(base) :].startswith(TMP_PREFIX):
                        yield self._stat_props(item.name[cut:], item)
            if not found and path:
                if self._blob(path).exists():
                    raise NotADirectory(f"{self._what(path)}: not a directory")
                raise NotFound(f"{self._what(path)}: no such directory")

    def stat(self, path: str) -> RemoteStat:
        if not path:
            return RemoteStat("", "dir")
        with self._errors(path):
            try:
                return self._stat_props(path, self._blob(path).get_blob_properties())
            except ResourceNotFoundError as exc:
                if not _blob_missing(exc):
                    raise
            if self._is_dir(path):
                return RemoteStat(path, "dir")
            raise NotFound(f"{self._what(path)}: not found")

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        with self._errors(path):
            bc = self._blob(path)
            try:
                if start == 0 and end is None:
                    stream = bc.download_blob()  # no Range header: works for empty blobs too
                else:
                    stream = bc.download_blob(
                        offset=start, length=None if end is None else end - start
                    )
            except HttpResponseError as exc:
                if exc.status_code == 416:  # start at or past the end
                    return
                if _blob_missing(exc):
                    raise self._missing(path) from exc
                raise
            # later chunks are fetched with If-Match on the first response's etag
            yield from stream.chunks()

    # --- writing -----------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        """Directories are implied by the names below them."""

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        if not path:
            raise IsADirectory(f"{self._what(path)}: is a directory")
        meta = {META_MTIME: format_rfc3339(mtime_ns)} if mtime_ns is not None else {}
        with self._errors(path):
            bc = self._blob(path)
            head = read_upto(stream, self._single_put + 1)
            if len(head) <= self._single_put:
                check_size(self._what(path), size, len(head))
                md5 = hashlib.md5(head)
                # one Put Blob: atomic, with the MD5 the service checks and stores
                r = bc.upload_blob(
                    head,
                    length=len(head),
                    overwrite=True,
                    metadata=meta,
                    content_settings=ContentSettings(content_md5=bytearray(md5.digest())),
                )
                total = len(head)
            else:
                # a source that ends early or runs long raises before the commit: the old
                # blob stays
                joined = PrependedStream(head, stream, size, self._what(path))
                r, total, md5 = self._put_blocks(bc, joined.blocks(self._block), meta, path)
        return RemoteStat(
            path,
            "file",
            total,
            mtime_ns if mtime_ns is not None else datetime_ns(r["last_modified"]),
            bare_etag(r["etag"]),
            {"md5": md5.hexdigest()},
        )

    def _put_blocks(
        self,
        bc: BlobClient,
        chunks: Iterator[bytes],
        meta: dict[str, str],
        path: str,
    ) -> tuple[dict[str, Any], int, Any]:
        """Stage blocks (a few at once, memory bounded) while hashing in order, then commit the
        list with the MD5: readers see the old blob until the commit, and the hash is stored
        with the content in the same request (upload_blob would commit before we know it)."""
        md5 = hashlib.md5()
        total = 0
        tag = uuid.uuid4().hex  # block ids unique to this upload: concurrent puts cannot mix
        ids: list[BlobBlock] = []
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="cdir-azure") as pool:
            pending: set[Future[Any]] = set()
            try:
                for i, chunk in enumerate(chunks):
                    md5.update(chunk)
                    total += len(chunk)
                    block_id = f"{tag}{i:08d}"
                    ids.append(BlobBlock(block_id))
                    pending.add(pool.submit(bc.stage_block, block_id, chunk, len(chunk)))
                    if len(pending) >= self._concurrency:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for f in done:
                            f.result()
                for f in pending:
                    f.result()
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
        try:
            r = bc.commit_block_list(
                ids,
                metadata=meta,
                content_settings=ContentSettings(content_md5=bytearray(md5.digest())),
            )
        except HttpResponseError as exc:
            if _code(exc) != "InvalidBlockList":
                raise
            # a commit drops every uncommitted block of the blob, ours too
            raise Conflict(
                f"{self._what(path)}: another upload to the same name committed "
                "first and discarded this one's blocks"
            ) from exc
        return r, total, md5

    def delete(self, path: str) -> None:
        with self._errors(path):
            try:
                self._blob(path).delete_blob(delete_snapshots="include")
            except ResourceNotFoundError as exc:
                if not _blob_missing(exc):
                    raise
                raise self._missing(path) from exc

    def delete_tree(self, path: str) -> None:
        key = self._key(path)
        with self._errors(path):
            cc = self._container()
            names = [
                b.name
                for b in cc.list_blobs(name_starts_with=key, results_per_page=self._page)
                if not path or b.name == key or b.name.startswith(key + "/")
            ]
            # Blob Batch: up to 256 deletes per request; already-gone blobs are fine. What the
            # batch refused is deleted one by one, so a real error is raised, not ignored.
            for i in range(0, len(names), 256):
                part = names[i : i + 256]
                replies = cc.delete_blobs(
                    *part, delete_snapshots="include", raise_on_any_failure=False
                )
                for name, reply in zip(part, replies, strict=True):
                    if reply.status_code not in (202, 404):
                        with contextlib.suppress(ResourceNotFoundError):
                            cc.delete_blob(name, delete_snapshots="include")

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        with self._errors(path):
            bc = self._blob(path)
            p = self._props(bc, path)
            # Set Blob Metadata replaces all keys: keep the others, only if nothing changed since
            meta = {**(p.metadata or {}), META_MTIME: format_rfc3339(mtime_ns)}
            r = bc.set_blob_metadata(
                meta, etag=p.etag, match_condition=MatchConditions.IfNotModified
            )
            old = self._stat_props(path, p)
            etag = bare_etag(str(r["etag"]))
            return RemoteStat(path, "file", old.size, mtime_ns, etag, old.hashes)

    def copy(self, src: str, dst: str) -> RemoteStat:
        with self._errors(src):
            s, _ = self._copy(src, dst)
            return s

    def _copy(self, src: str, dst: str) -> tuple[RemoteStat, str]:
        """Copy Blob (metadata and Content-MD5 come along) of the version we stat'ed first;
        returns the new stat and the source etag."""
        sb = self._blob(src)
        p = self._props(sb, src)
        db = self._blob(dst)
        r: dict[str, Any] = db.start_copy_from_url(
            sb.url, source_etag=p.etag, source_match_condition=MatchConditions.IfNotModified
        )
        if r.get("copy_status") != "success":  # within one account it is normally synchronous
            r = self._wait_copy(db, dst)
        old = self._stat_props(src, p)
        return RemoteStat(
            dst,
            "file",
            old.size,
            old.mtime_ns if META_MTIME in (p.metadata or {}) else datetime_ns(r["last_modified"]),
            bare_etag(r["etag"]),
            old.hashes,
        ), p.etag

    def _wait_copy(self, db: BlobClient, dst: str) -> dict[str, Any]:
        ev = threading.Event()
        delay = 0.05
        while True:
            q = db.get_blob_properties()
            status = q.copy.status if q.copy else "success"
            if status == "success":
                return {"etag": q.etag, "last_modified": q.last_modified}
            if status != "pending":
                raise Conflict(f"{self._what(dst)}: copy {status}: {q.copy.status_description}")
            ev.wait(delay)  # server-side copy still running: poll with backoff
            delay = min(delay * 2, 2.0)

    def move(self, src: str, dst: str) -> RemoteStat:
        with self._errors(src):
            st, etag = self._copy(src, dst)
            try:  # delete only the version copied; a newer one written meanwhile stays
                self._blob(src).delete_blob(
                    etag=etag, match_condition=MatchConditions.IfNotModified
                )
            except ResourceModifiedError as exc:
                raise Conflict(
                    f"{self._what(src)}: changed during move; copied the old "
                    "version and kept the new one"
                ) from exc
            except ResourceNotFoundError:
                pass  # someone else removed it: the move's effect holds
            return st

    def check(self) -> None:
        with self._errors(""):
            pages = (
                self._container()
                .list_blobs(name_starts_with=self.prefix, results_per_page=1)
                .by_page()
            )
            next(pages, None)

    def close(self) -> None:
        with self._lock:
            if self._service is not None:
                self._service.close()
            self._service = self._cc = None
            self._http = None


@contextmanager
def _bad_settings(name: str) -> Iterator[None]:
    """The SDK's ValueErrors while building a client (malformed connection string or URL)
    are usage errors; their texts name no secret."""
    try:
        yield
    except ValueError as exc:
        raise UsageError(f"{name}: {str(exc).strip().splitlines()[0]}") from None


def _code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


def _blob_missing(exc: HttpResponseError) -> bool:
    """A 404 about the blob, not the container."""
    return exc.status_code == 404 and _code(exc) != "ContainerNotFound"
