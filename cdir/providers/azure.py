"""Azure Blob Storage (and Azurite) through azure-storage-blob.

Root is "container" or "container/some/prefix"; files are block blobs named `prefix/path`.
Directories are name prefixes with no marker blob, so an empty directory cannot exist (the
mapping every object store shares is `cdir.providers.objstore`). The original mtime is kept in
blob metadata `mtime` as RFC 3339 with nanoseconds (the key and format rclone uses, so both
tools agree on it). Every upload stores its Content-MD5, a block upload too (hashed while the
blocks stream, committed with the block list), so every blob cdir writes has an md5.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
import threading
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any

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

from cdir.errors import AuthError, Conflict, ErrorRule, NotFound, Unavailable, UsageError
from cdir.providers.base import Capabilities, RemoteStat
from cdir.providers.common import RETRY_STATUS, MiB, bare_etag, datetime_ns
from cdir.providers.objstore import ObjectStore, Page, PrependedStream, page_size_option
from cdir.providers.options import OptionSpec
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


class AzureProvider(ObjectStore):
    """Azure Blob container. Root: "container" or "container/prefix".

    Authenticate with exactly one secret: `connection_string`, `account_key` (with option
    `account_name`; `account_url` defaults to https://<account_name>.blob.core.windows.net) or
    `sas_token` (with `account_url`). For Azurite use its URL, e.g.
    http://127.0.0.1:10000/devstoreaccount1, and the well-known devstoreaccount1 key.
    """

    kind = "azure"
    container_word = "container"
    error_table = ERRORS
    md5_parts = True  # block uploads commit the MD5 hashed while they streamed
    capabilities = Capabilities(
        empty_dirs=False,  # directories are name prefixes
        set_mtime=True,  # metadata rewrite, content untouched
        mtime_precision_ns=1,  # kept in metadata at full precision
        hash_kinds=frozenset({"md5"}),  # Content-MD5: set by cdir on every upload
        server_side_copy=True,
        server_side_move=False,  # no rename for blobs; copy + delete is the caller's
        max_name_bytes=255,  # blob names may be 1024 chars, but keep to what filesystems hold
    )
    options = (
        OptionSpec("account_url", "blob endpoint, e.g. https://ACCOUNT.blob.core.windows.net"),
        OptionSpec("account_name", "storage account name (with account_key)"),
        OptionSpec("api_version", "service API version to send (e.g. 2025-11-05)"),
        OptionSpec("account_key", "storage account key", secret=True),
        OptionSpec("sas_token", "shared access signature (account or container)", secret=True),
        OptionSpec("connection_string", "full connection string", secret=True),
        page_size_option(5000),
        OptionSpec("single_put_size", "largest file sent in one Put Blob", "size", default=8 * MiB),
        OptionSpec("block_size", "block of chunked uploads", "size", default=8 * MiB, minimum=1),
        OptionSpec("concurrency", "blocks uploaded at once per file", "int", default=4, minimum=1),
        OptionSpec("pool_size", "HTTP connections kept open", "int", default=32, minimum=1),
        OptionSpec(
            "retries", "retries of a failed request inside the SDK", "int", default=3, minimum=0
        ),
        OptionSpec("timeout", "connect/read timeout in seconds", "float", default=60.0, minimum=0),
    )

    def configure(self) -> None:
        """One way to authenticate, and what it needs; the sizes of uploads."""
        super().configure()
        name, c = self.name, self.conf
        ways = [k for k in ("account_key", "sas_token", "connection_string") if self.secrets.get(k)]
        if len(ways) != 1:
            raise UsageError(
                f"{name}: give exactly one of the secrets account_key, sas_token, "
                f"connection_string (got {', '.join(ways) or 'none'})"
            )
        self._auth = ways[0]
        if self._auth == "account_key":
            if not c["account_name"]:
                raise UsageError(f"{name}: account_key needs the option account_name")
            try:
                base64.b64decode(self.secrets["account_key"], validate=True)
            except (binascii.Error, ValueError):
                raise UsageError(f"{name}: account_key is not valid base64") from None
        if self._auth == "sas_token" and not c["account_url"]:
            raise UsageError(f"{name}: sas_token needs the option account_url")
        self.page_size = c["page_size"]
        self.single_put_max = c["single_put_size"]
        self._block: int = c["block_size"]
        self._concurrency: int = c["concurrency"]
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
        c = self.conf
        timeout = c["timeout"]
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
            "max_single_put_size": self.single_put_max,
            "max_block_size": self._block,
            "max_single_get_size": 8 * MiB,
            "max_chunk_get_size": 4 * MiB,
            # the SDK default waits 15 s, then 18 s…; a short backoff, vdir retries above this
            "retry_policy": ExponentialRetry(
                initial_backoff=0.5,  # type: ignore[arg-type]  # the SDK types it int; floats work
                increment_base=2,
                random_jitter_range=0.5,  # type: ignore[arg-type]
                retry_total=c["retries"],
            ),
        }
        if c["api_version"]:
            kw["api_version"] = c["api_version"]
        with self._errors(""), _bad_settings(self.name):
            if self._auth == "connection_string":
                service = BlobServiceClient.from_connection_string(
                    self.secrets["connection_string"], **kw
                )
            else:
                url = c["account_url"] or f"https://{c['account_name']}.blob.core.windows.net"
                cred: Any
                if self._auth == "account_key":
                    cred = {
                        "account_name": c["account_name"],
                        "account_key": self.secrets["account_key"],
                    }
                else:
                    cred = self.secrets["sas_token"].lstrip("?")
                service = BlobServiceClient(url, credential=cred, **kw)
        # a pool big enough for --parallel threads times block concurrency
        tune_session(session, service.url, c["pool_size"])
        self._http = session
        return service

    def _blob(self, path: str) -> BlobClient:
        return self._container().get_blob_client(self._key(path))

    def _container_missing(self, exc: Exception, bucket_level: bool) -> bool:
        return _code(exc) == "ContainerNotFound"

    def _scrub(self, message: str) -> str:
        return _SIG.sub(r"\1REDACTED", message)

    def _stat_props(self, path: str, p: BlobProperties) -> RemoteStat:
        md5 = p.content_settings.content_md5 if p.content_settings else None
        hashes = {"md5": bytes(md5).hex()} if md5 else {}
        mtime = self._stored_mtime(p.metadata, p.last_modified)
        return RemoteStat(path, "file", int(p.size or 0), mtime, bare_etag(p.etag), hashes)

    # --- the object-store primitives ---------------------------------------------------------
    def _pages(self, prefix: str, delimiter: bool, limit: int | None = None) -> Iterator[Page]:
        cc = self._container()
        kw: dict[str, Any] = {
            "name_starts_with": prefix or None,
            "include": ["metadata"],
            "results_per_page": limit or self.page_size,
        }
        items = cc.walk_blobs(delimiter="/", **kw) if delimiter else cc.list_blobs(**kw)
        for page in items.by_page():
            objects: list[tuple[str, Any]] = []
            prefixes: list[str] = []
            for item in page:
                if isinstance(item, BlobPrefix):
                    prefixes.append(item.name)
                else:
                    objects.append((item.name, item))
            yield Page(objects, prefixes)

    def _listed_stat(self, path: str, record: Any) -> RemoteStat:
        return self._stat_props(path, record)

    def _head_object(self, path: str) -> BlobProperties | None:
        try:
            return self._blob(path).get_blob_properties()
        except ResourceNotFoundError as exc:
            if not _blob_missing(exc):
                raise
            return None

    def _head_stat(self, path: str, record: Any) -> RemoteStat:
        return self._stat_props(path, record)

    def _delete_object(self, path: str) -> bool:
        try:
            self._blob(path).delete_blob(delete_snapshots="include")
        except ResourceNotFoundError as exc:
            if not _blob_missing(exc):
                raise
            return False
        return True

    def _delete_keys(self, path: str, keys: Sequence[str]) -> None:
        """Blob Batch: up to 256 deletes per request; already-gone blobs are fine. What the
        batch refused is deleted one by one, so a real error is raised, not ignored."""
        cc = self._container()
        for i in range(0, len(keys), 256):
            part = keys[i : i + 256]
            replies = cc.delete_blobs(*part, delete_snapshots="include", raise_on_any_failure=False)
            for name, reply in zip(part, replies, strict=True):
                if reply.status_code not in (202, 404):
                    with contextlib.suppress(ResourceNotFoundError):
                        cc.delete_blob(name, delete_snapshots="include")

    def _stat_put(
        self, path: str, r: dict[str, Any], size: int, mtime_ns: int | None, md5: Any
    ) -> RemoteStat:
        mtime = datetime_ns(r["last_modified"]) if mtime_ns is None else mtime_ns
        return RemoteStat(path, "file", size, mtime, bare_etag(r["etag"]), {"md5": md5.hexdigest()})

    def _put_single(self, path: str, data: bytes, mtime_ns: int | None) -> RemoteStat:
        md5 = hashlib.md5(data)
        # one Put Blob: atomic, with the MD5 the service checks and stores
        r = self._blob(path).upload_blob(
            data,
            length=len(data),
            overwrite=True,
            metadata=self._mtime_meta(mtime_ns),
            content_settings=ContentSettings(content_md5=bytearray(md5.digest())),
        )
        return self._stat_put(path, r, len(data), mtime_ns, md5)

    def _put_parts(self, path: str, source: PrependedStream, mtime_ns: int | None) -> RemoteStat:
        """Stage blocks (a few at once, memory bounded) while `source` hashes them in order,
        then commit the list with the MD5: readers see the old blob until the commit, and the
        hash is stored with the content in the same request (upload_blob would commit before
        we know it). A source that ends early or runs long raises before the commit."""
        bc = self._blob(path)
        tag = uuid.uuid4().hex  # block ids unique to this upload: concurrent puts cannot mix
        ids: list[BlobBlock] = []
        with ThreadPoolExecutor(self._concurrency, thread_name_prefix="cdir-azure") as pool:
            pending: set[Future[Any]] = set()
            try:
                for i, chunk in enumerate(source.blocks(self._block)):
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
        md5 = source.md5
        assert md5 is not None
        try:
            r = bc.commit_block_list(
                ids,
                metadata=self._mtime_meta(mtime_ns),
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
        return self._stat_put(path, r, source.tell(), mtime_ns, md5)

    # --- reading -----------------------------------------------------------------------------
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

    # --- metadata and copies -----------------------------------------------------------------
    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        with self._errors(path):
            bc = self._blob(path)
            p = self._head_object(path)
            if p is None:
                raise self._missing(path)
            # Set Blob Metadata replaces all keys: keep the others, only if nothing changed since
            meta = {**(p.metadata or {}), **self._mtime_meta(mtime_ns)}
            r = bc.set_blob_metadata(
                meta, etag=p.etag, match_condition=MatchConditions.IfNotModified
            )
            old = self._stat_props(path, p)
            etag = bare_etag(str(r["etag"]))
            return RemoteStat(path, "file", old.size, mtime_ns, etag, old.hashes)

    def copy(self, src: str, dst: str) -> RemoteStat:
        """Copy Blob (metadata and Content-MD5 come along) of the version stat'ed first."""
        with self._errors(src):
            sb = self._blob(src)
            p = self._head_object(src)
            if p is None:
                raise self._missing(src)
            db = self._blob(dst)
            r: dict[str, Any] = db.start_copy_from_url(
                sb.url, source_etag=p.etag, source_match_condition=MatchConditions.IfNotModified
            )
            if r.get("copy_status") != "success":  # within one account normally synchronous
                r = self._wait_copy(db, dst)
            old = self._stat_props(src, p)
            mtime = self._stored_mtime(p.metadata, r["last_modified"])  # metadata comes along
            return RemoteStat(dst, "file", old.size, mtime, bare_etag(r["etag"]), old.hashes)

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
