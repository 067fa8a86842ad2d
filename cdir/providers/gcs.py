"""Google Cloud Storage (and fake-gcs-server) through google-cloud-storage.

Root is "bucket" or "bucket/some/prefix"; files are objects named `prefix/path`. Directories
are name prefixes with no marker object, so an empty directory cannot exist. The original mtime
is kept in object metadata `mtime` as RFC 3339 with nanoseconds (the key and format rclone
uses); `goog-reserved-file-mtime` (gsutil, whole seconds) is read as a fallback.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from typing import Any, BinaryIO

import google.auth
import google.auth.exceptions as auth_exc
import requests
from google.api_core import exceptions as api_exc
from google.api_core.retry import Retry
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.transport.requests import AuthorizedSession
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption, InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY
from google.oauth2 import service_account

from cdir.errors import (
    AuthError,
    CdirError,
    Conflict,
    ErrorRule,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
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
    check_size,
    datetime_ns,
    format_rfc3339,
    listed_key,
    read_upto,
    rfc3339_meta_mtime,
    split_root,
)
from cdir.providers.sessions import tune_session

_SCOPES = ("https://www.googleapis.com/auth/devstorage.read_write",)
# only the fields cdir reads: smaller listing pages
_LIST_FIELDS = "items(name,size,updated,generation,md5Hash,crc32c,metadata),prefixes,nextPageToken"


def _bad_status(e: BaseException) -> bool:
    resp = getattr(e, "response", None)
    return isinstance(e, InvalidResponse) and getattr(resp, "status_code", 0) in RETRY_STATUS


ERRORS: list[ErrorRule] = [
    (lambda e: isinstance(e, api_exc.NotFound), NotFound, False),
    (lambda e: isinstance(e, api_exc.Unauthorized | api_exc.Forbidden), AuthError, False),
    (
        lambda e: isinstance(e, auth_exc.RefreshError | auth_exc.DefaultCredentialsError),
        AuthError,
        False,
    ),
    (lambda e: isinstance(e, api_exc.PreconditionFailed), Conflict, False),
    (
        lambda e: isinstance(e, api_exc.GoogleAPICallError) and e.code in RETRY_STATUS,
        Unavailable,
        True,
    ),
    (lambda e: isinstance(e, api_exc.RetryError), Unavailable, True),  # retries ran out
    (_bad_status, Unavailable, True),
    # connection refused/reset, DNS, timeouts; token endpoint unreachable
    (
        lambda e: isinstance(
            e, requests.ConnectionError | requests.Timeout | auth_exc.TransportError
        ),
        Unavailable,
        True,
    ),
    (lambda e: isinstance(e, DataCorruption), ProviderError, True),  # checksum mismatch in transit
]

# "404 GET http://host/storage/v1/b/x/o/y?...: Not Found" → "404 Not Found"
_URL = re.compile(r"\b(GET|POST|PUT|PATCH|DELETE|HEAD) https?://\S+?: ")


class GCSProvider(Provider):
    """Google Cloud Storage bucket. Root: "bucket" or "bucket/prefix".

    Credentials: secret `service_account_json` (the key file's JSON text, used from memory),
    option `anonymous` (public buckets, emulators), or else Application Default Credentials.
    Option `endpoint` points at another API host, e.g. fake-gcs-server http://127.0.0.1:4443.
    """

    kind = "gcs"
    capabilities = Capabilities(
        empty_dirs=False,  # directories are name prefixes
        set_mtime=True,  # metadata patch, content and generation untouched
        mtime_precision_ns=1,  # kept in metadata at full precision
        hash_kinds=frozenset({"md5", "crc32c"}),  # computed by the service for every upload
        server_side_copy=True,
        server_side_move=True,  # rewrite + delete (no rename for objects)
        max_name_bytes=255,  # object names may be 1024 bytes, but keep to what filesystems hold
    )
    options = (
        OptionSpec("project", "project id (default: from the service account)"),
        OptionSpec("endpoint", "API endpoint, e.g. http://127.0.0.1:4443 for fake-gcs-server"),
        OptionSpec("anonymous", "send no credentials (public buckets, emulators)", default=False),
        OptionSpec("service_account_json", "service account key (JSON text)", secret=True),
        OptionSpec("page_size", "entries per listing request", default=1000),
        OptionSpec(
            "multipart_threshold",
            "bytes up to which a file is sent in one request",
            default=8 * MiB,
        ),
        OptionSpec(
            "chunk_size", "chunk of resumable uploads (multiple of 256 KiB)", default=16 * MiB
        ),
        OptionSpec("read_chunk_size", "bytes fetched per ranged read request", default=8 * MiB),
        OptionSpec("pool_size", "HTTP connections kept open", default=32),
        OptionSpec(
            "retry_timeout", "seconds to keep retrying a failed request (0: no retry)", default=30
        ),
        OptionSpec("timeout", "per-request timeout in seconds", default=60),
    )

    def configure(self) -> None:
        name = self.name
        self.bucket, self.prefix = split_root(name, self.root)
        self._anonymous = self.bool_option("anonymous", False)
        if self._anonymous and self.secrets.get("service_account_json"):
            raise UsageError(f"{name}: anonymous and service_account_json exclude each other")
        self._page = self.int_option("page_size", 1000)
        self._threshold = self.int_option("multipart_threshold", 8 * MiB)
        self._chunk = self.int_option("chunk_size", 16 * MiB)
        if self._chunk <= 0 or self._chunk % (256 * 1024):
            raise UsageError(f"{name}: chunk_size must be a positive multiple of 262144")
        self._read_chunk = max(1, self.int_option("read_chunk_size", 8 * MiB))
        self._timeout = self.float_option("timeout", 60)
        rt = self.float_option("retry_timeout", 30)
        self._retry: Retry | None = DEFAULT_RETRY.with_timeout(rt) if rt > 0 else None
        self._lock = threading.Lock()
        self._http: requests.Session | None = None
        self._bkt: storage.Bucket | None = None

    # --- plumbing ----------------------------------------------------------------------------
    def _bucket(self) -> storage.Bucket:
        """The bucket handle, built on first use (no request). One client and one requests
        Session shared by all threads, with a connection pool sized for them."""
        if self._bkt is None:
            with self._lock:
                if self._bkt is None:
                    self._bkt = self._build()
        return self._bkt

    def _build(self) -> storage.Bucket:
        with self._errors(""):
            project = self.opts.get("project") or None
            creds: Credentials
            if self._anonymous:
                creds = AnonymousCredentials()
            elif self.secrets.get("service_account_json"):
                try:
                    info = json.loads(self.secrets["service_account_json"])
                    creds = service_account.Credentials.from_service_account_info(
                        info, scopes=_SCOPES
                    )
                except (ValueError, TypeError, KeyError):
                    raise UsageError(
                        f"{self.name}: service_account_json is not a service account key"
                    ) from None
                project = project or info.get("project_id")
            else:
                creds, default_project = google.auth.default(scopes=_SCOPES)
                project = project or default_project
            session = AuthorizedSession(creds)
            endpoint = self.opts.get("endpoint")
            tune_session(
                session,
                endpoint or "https://storage.googleapis.com",
                self.int_option("pool_size", 32),
            )
            client = storage.Client(
                project=project,  # None: no project lookup (it may probe a metadata server)
                credentials=creds,
                _http=session,
                client_options={"api_endpoint": endpoint.rstrip("/")} if endpoint else None,
            )
            self._http = session
            return client.bucket(self.bucket)

    def _key(self, path: str) -> str:
        return self.prefix + path

    def _no_bucket(self) -> NotFound:
        return NotFound(f"{self.name}: bucket {self.bucket!r} does not exist")

    @contextmanager
    def _errors(self, path: str, bucket_level: bool = False) -> Iterator[None]:
        """Translate SDK errors through ERRORS. `bucket_level`: the call can only 404 because
        the bucket is missing (listings, uploads), so say that."""
        try:
            yield
        except CdirError:
            raise
        except Exception as exc:
            if isinstance(exc, api_exc.NotFound) and (
                bucket_level or "bucket does not exist" in str(exc).lower()
            ):
                raise self._no_bucket() from exc
            err = translate(exc, ERRORS, self._what(path))
            err.message = _URL.sub("", err.message)
            err.args = (err.message,)
            raise err from exc

    def _stat_blob(self, path: str, blob: storage.Blob) -> RemoteStat:
        hashes = {}
        if blob.md5_hash:  # composite objects have none
            hashes["md5"] = base64.b64decode(blob.md5_hash).hex()
        if blob.crc32c:
            hashes["crc32c"] = base64.b64decode(blob.crc32c).hex()
        return RemoteStat(
            path,
            "file",
            int(blob.size or 0),
            _mtime(blob.metadata, blob.updated),
            str(blob.generation or ""),
            hashes,
        )

    def _list_blobs(
        self, prefix: str, delimiter: str | None = None, page_size: int | None = None
    ) -> Any:
        b = self._bucket()
        return b.client.list_blobs(
            b,
            prefix=prefix or None,
            delimiter=delimiter,
            page_size=page_size or self._page,
            fields=_LIST_FIELDS,
            retry=self._retry,
            timeout=self._timeout,
        )

    def _is_dir(self, path: str) -> bool:
        with self._errors(path, bucket_level=True):
            pages = self._list_blobs(self._key(path) + "/", page_size=1).pages
            page = next(pages, None)
            return page is not None and any(True for _ in page)

    def _missing(self, path: str) -> CdirError:
        """Why `path` has no object: IsADirectory when objects live below it, else NotFound."""
        if self._is_dir(path):
            return IsADirectory(f"{self._what(path)}: is a directory")
        return NotFound(f"{self._what(path)}: not found")

    # --- reading -----------------------------------------------------------------------------
    def list(self, path: str = "", recursive: bool = False) -> Iterator[RemoteStat]:
        base = self._key(path) + "/" if path else self.prefix
        cut = len(self.prefix)
        found = False
        with self._errors(path, bucket_level=True):
            if recursive:
                seen: set[str] = set()
                for page in self._list_blobs(base).pages:
                    for blob in page:
                        found = True
                        rel = blob.name[cut:]
                        dirs, is_file = listed_key(path, rel, seen)
                        yield from dirs
                        if is_file:
                            yield self._stat_blob(rel, blob)
            else:
                for page in self._list_blobs(base, delimiter="/").pages:
                    for blob in page:
                        found = True
                        if blob.name != base and not blob.name[len(base) :].startswith(TMP_PREFIX):
                            yield self._stat_blob(blob.name[cut:], blob)
                    for pfx in page.prefixes:
                        found = True
                        yield RemoteStat(pfx[cut:].rstrip("/"), "dir")
        if not found and path:
            with self._errors(path):
                try:
                    self._bucket().blob(self._key(path)).reload(
                        projection="noAcl", retry=self._retry, timeout=self._timeout
                    )
                except api_exc.NotFound:
                    raise NotFound(f"{self._what(path)}: no such directory") from None
                raise NotADirectory(f"{self._what(path)}: not a directory")

    def stat(self, path: str) -> RemoteStat:
        if not path:
            return RemoteStat("", "dir")
        with self._errors(path):
            blob = self._bucket().blob(self._key(path))
            try:
                blob.reload(projection="noAcl", retry=self._retry, timeout=self._timeout)
                return self._stat_blob(path, blob)
            except api_exc.NotFound:
                pass
        if self._is_dir(path):
            return RemoteStat(path, "dir")
        raise NotFound(f"{self._what(path)}: not found")

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Ranged GETs of read_chunk_size each. After the first the object's generation is
        pinned (the SDK adds it to the URL), so a concurrent overwrite cannot tear the read."""
        blob = self._bucket().blob(self._key(path))
        pos = start
        with self._errors(path):
            while end is None or pos < end:
                want = self._read_chunk if end is None else min(self._read_chunk, end - pos)
                try:
                    data = blob.download_as_bytes(
                        start=pos,
                        end=pos + want - 1,  # GCS ranges are inclusive
                        raw_download=True,
                        checksum=None,
                        retry=self._retry,
                        timeout=self._timeout,
                    )
                except api_exc.RequestRangeNotSatisfiable:
                    return  # start at or past the end (also: any range of an empty object)
                except api_exc.NotFound:
                    if pos == start:
                        raise self._missing(path) from None
                    raise Conflict(f"{self._what(path)}: replaced while reading") from None
                if data:
                    yield data
                pos += len(data)
                if len(data) < want:
                    return

    # --- writing -----------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        """Directories are implied by the names below them."""

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        if not path:
            raise IsADirectory(f"{self._what(path)}: is a directory")
        # 404 on upload means the bucket is missing
        with self._errors(path, bucket_level=True):
            head = read_upto(stream, self._threshold + 1)
            blob = self._bucket().blob(self._key(path))
            if mtime_ns is not None:
                blob.metadata = {META_MTIME: format_rfc3339(mtime_ns)}
            kw = {"checksum": "auto", "retry": self._retry, "timeout": self._timeout}
            if len(head) <= self._threshold:
                check_size(self._what(path), size, len(head))
                # one multipart request (object metadata + bytes); crc32c checked by the server
                blob.upload_from_file(io.BytesIO(head), size=len(head), **kw)
            else:
                # resumable session, chunk by chunk from the stream: memory stays at one chunk.
                # size=None (total "*" until the last chunk) forces this path even below the
                # SDK's own 8 MiB multipart limit. The joined stream checks the announced size
                # before the last chunk is sent, so a wrong one never finalizes the upload.
                blob.chunk_size = self._chunk
                joined = PrependedStream(head, stream, size, self._what(path))
                blob.upload_from_file(joined, size=None, **kw)
            return self._stat_blob(path, blob)

    def delete(self, path: str) -> None:
        with self._errors(path):
            try:
                self._bucket().blob(self._key(path)).delete(
                    retry=self._retry, timeout=self._timeout
                )
            except api_exc.NotFound:
                raise self._missing(path) from None

    def delete_tree(self, path: str) -> None:
        key = self._key(path)
        bucket = self._bucket()
        with self._errors(path, bucket_level=True):
            names = [
                blob.name
                for page in self._list_blobs(key).pages
                for blob in page
                if not path or blob.name == key or blob.name.startswith(key + "/")
            ]

        def rm(name: str) -> None:
            with contextlib.suppress(api_exc.NotFound):  # already gone
                bucket.blob(name).delete(retry=self._retry, timeout=self._timeout)

        # the JSON batch endpoint is not in fake-gcs-server; a few parallel DELETEs work anywhere
        with self._errors(path), ThreadPoolExecutor(8, thread_name_prefix="cdir-gcs") as pool:
            for _ in pool.map(rm, names):
                pass

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        with self._errors(path):
            blob = self._bucket().blob(self._key(path))
            blob.metadata = {META_MTIME: format_rfc3339(mtime_ns)}  # PATCH merges metadata keys
            try:
                blob.patch(retry=self._retry, timeout=self._timeout)
            except api_exc.NotFound:
                raise self._missing(path) from None
            return self._stat_blob(path, blob)

    def copy(self, src: str, dst: str) -> RemoteStat:
        with self._errors(src):
            return self._rewrite(src, dst, None)

    def _rewrite(self, src: str, dst: str, generation: int | None) -> RemoteStat:
        """Server-side rewrite (metadata, md5 and crc32c come along); big objects take several
        calls. `generation` pins the source version."""
        bucket = self._bucket()
        source = bucket.blob(self._key(src))
        target = bucket.blob(self._key(dst))
        token = None
        try:
            while True:
                token, _, _ = target.rewrite(
                    source,
                    token=token,
                    if_source_generation_match=generation,
                    retry=self._retry,
                    timeout=self._timeout,
                )
                if token is None:
                    break
        except api_exc.NotFound:
            raise self._missing(src) from None
        return self._stat_blob(dst, target)

    def move(self, src: str, dst: str) -> RemoteStat:
        with self._errors(src):
            source = self._bucket().blob(self._key(src))
            try:
                source.reload(projection="noAcl", retry=self._retry, timeout=self._timeout)
            except api_exc.NotFound:
                raise self._missing(src) from None
            gen = source.generation
            # the destination is overwritten like any put; only the source is pinned, so the
            # delete below removes exactly the version copied, never a newer one
            st = self._rewrite(src, dst, gen)
            try:
                source.delete(if_generation_match=gen, retry=self._retry, timeout=self._timeout)
            except api_exc.PreconditionFailed:
                raise Conflict(
                    f"{self._what(src)}: changed during move; copied the old "
                    "version and kept the new one"
                ) from None
            except api_exc.NotFound:
                pass  # removed meanwhile: the move's effect holds
            return st

    def check(self) -> None:
        with self._errors("", bucket_level=True):
            next(self._list_blobs(self.prefix, page_size=1).pages, None)

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
            self._http = None
            self._bkt = None


def _mtime(meta: Mapping[str, str] | None, updated: datetime | None) -> int | None:
    """rclone's `mtime`, else gsutil's whole seconds, else the upload time."""
    ns = rfc3339_meta_mtime(meta)
    if ns is not None:
        return ns
    gsutil = (meta or {}).get("goog-reserved-file-mtime", "")
    if gsutil.isdigit():
        return int(gsutil) * 1_000_000_000
    return datetime_ns(updated)
