"""Google Cloud Storage (and fake-gcs-server) through google-cloud-storage.

Root is "bucket" or "bucket/some/prefix"; files are objects named `prefix/path`. Directories
are name prefixes with no marker object, so an empty directory cannot exist (the mapping every
object store shares is `cdir.providers.objstore`). The original mtime is kept in object
metadata `mtime` as RFC 3339 with nanoseconds (the key and format rclone uses);
`goog-reserved-file-mtime` (gsutil, whole seconds) is read as a fallback. The service computes
md5 and crc32c of every object written in one request or a resumable session, so cdir hashes
nothing itself (only composed objects lack an md5, and cdir composes none)."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

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
    Conflict,
    ErrorRule,
    NotFound,
    ProviderError,
    Unavailable,
    UsageError,
)
from cdir.providers.base import Capabilities, RemoteStat
from cdir.providers.common import RETRY_STATUS, MiB
from cdir.providers.objstore import ObjectStore, Page, page_size_option
from cdir.providers.options import OptionSpec
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


class GCSProvider(ObjectStore):
    """Google Cloud Storage bucket. Root: "bucket" or "bucket/prefix".

    Credentials: secret `service_account_json` (the key file's JSON text, used from memory),
    option `anonymous` (public buckets, emulators), or else Application Default Credentials.
    Option `endpoint` points at another API host, e.g. fake-gcs-server http://127.0.0.1:4443.
    """

    kind = "gcs"
    error_table = ERRORS
    capabilities = Capabilities(
        empty_dirs=False,  # directories are name prefixes
        set_mtime=True,  # metadata patch, content and generation untouched
        mtime_precision_ns=1,  # kept in metadata at full precision
        hash_kinds=frozenset({"md5", "crc32c"}),  # computed by the service for every upload
        server_side_copy=True,
        server_side_move=False,  # no rename for objects; rewrite + delete is the caller's
        max_name_bytes=255,  # object names may be 1024 bytes, but keep to what filesystems hold
    )
    options = (
        OptionSpec("project", "project id (default: from the service account)"),
        OptionSpec("endpoint", "API endpoint, e.g. http://127.0.0.1:4443 for fake-gcs-server"),
        OptionSpec(
            "anonymous", "send no credentials (public buckets, emulators)", "bool", default=False
        ),
        OptionSpec("service_account_json", "service account key (JSON text)", secret=True),
        page_size_option(1000),
        OptionSpec(
            "multipart_threshold",
            "bytes up to which a file is sent in one request",
            "size",
            default=8 * MiB,
        ),
        OptionSpec(
            "chunk_size",
            "chunk of resumable uploads (multiple of 256 KiB)",
            "size",
            default=16 * MiB,
            minimum=256 * 1024,
        ),
        OptionSpec(
            "read_chunk_size",
            "bytes fetched per ranged read request",
            "size",
            default=8 * MiB,
            minimum=1,
        ),
        OptionSpec("pool_size", "HTTP connections kept open", "int", default=32, minimum=1),
        OptionSpec(
            "retry_timeout",
            "seconds to keep retrying a failed request (0: no retry)",
            "float",
            default=30.0,
            minimum=0,
        ),
        OptionSpec("timeout", "per-request timeout in seconds", "float", default=60.0, minimum=0),
    )

    def configure(self) -> None:
        super().configure()
        name, c = self.name, self.conf
        self._anonymous: bool = c["anonymous"]
        if self._anonymous and self.secrets.get("service_account_json"):
            raise UsageError(f"{name}: anonymous and service_account_json exclude each other")
        self.page_size = c["page_size"]
        self.single_put_max = c["multipart_threshold"]
        self._chunk: int = c["chunk_size"]
        if self._chunk % (256 * 1024):
            raise UsageError(f"{name}: chunk_size must be a positive multiple of 262144")
        self._read_chunk: int = c["read_chunk_size"]
        self._timeout: float = c["timeout"]
        rt = c["retry_timeout"]
        self._retry: Retry | None = DEFAULT_RETRY.with_timeout(rt) if rt > 0 else None
        self._lock = threading.Lock()
        self._http: requests.Session | None = None
        self._bkt: storage.Bucket | None = None

    @property
    def bucket(self) -> str:
        return self.container

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
        c = self.conf
        with self._errors(""):
            project = c["project"] or None
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
            endpoint = c["endpoint"]
            tune_session(session, endpoint or "https://storage.googleapis.com", c["pool_size"])
            client = storage.Client(
                project=project,  # None: no project lookup (it may probe a metadata server)
                credentials=creds,
                _http=session,
                client_options={"api_endpoint": endpoint.rstrip("/")} if endpoint else None,
            )
            self._http = session
            return client.bucket(self.bucket)

    def _container_missing(self, exc: Exception, bucket_level: bool) -> bool:
        # `bucket_level`: the call (a listing, an upload) can only 404 for the bucket
        return isinstance(exc, api_exc.NotFound) and (
            bucket_level or "bucket does not exist" in str(exc).lower()
        )

    def _scrub(self, message: str) -> str:
        return _URL.sub("", message)

    def _blob(self, path: str) -> storage.Blob:
        return self._bucket().blob(self._key(path))

    def _stat_blob(self, path: str, blob: storage.Blob) -> RemoteStat:
        hashes = {}
        if blob.md5_hash:  # composite objects have none
            hashes["md5"] = base64.b64decode(blob.md5_hash).hex()
        if blob.crc32c:
            hashes["crc32c"] = base64.b64decode(blob.crc32c).hex()
        mtime = self._stored_mtime(blob.metadata, blob.updated)
        return RemoteStat(
            path, "file", int(blob.size or 0), mtime, str(blob.generation or ""), hashes
        )

    def _stored_mtime(
        self, meta: Mapping[str, str] | None, modified: datetime | None
    ) -> int | None:
        """rclone's `mtime`, else gsutil's whole seconds, else the upload time."""
        gsutil = (meta or {}).get("goog-reserved-file-mtime", "")
        if gsutil.isdigit() and super()._stored_mtime(meta, None) is None:
            return int(gsutil) * 1_000_000_000
        return super()._stored_mtime(meta, modified)

    # --- the object-store primitives ---------------------------------------------------------
    def _pages(self, prefix: str, delimiter: bool, limit: int | None = None) -> Iterator[Page]:
        b = self._bucket()
        blobs = b.client.list_blobs(
            b,
            prefix=prefix or None,
            delimiter="/" if delimiter else None,
            page_size=limit or self.page_size,
            fields=_LIST_FIELDS,
            retry=self._retry,
            timeout=self._timeout,
        )
        for page in blobs.pages:
            yield Page([(blob.name, blob) for blob in page], list(page.prefixes))

    def _listed_stat(self, path: str, record: Any) -> RemoteStat:
        return self._stat_blob(path, record)

    def _head_object(self, path: str) -> storage.Blob | None:
        blob = self._blob(path)
        try:
            blob.reload(projection="noAcl", retry=self._retry, timeout=self._timeout)
        except api_exc.NotFound:
            return None
        return blob

    def _head_stat(self, path: str, record: Any) -> RemoteStat:
        return self._stat_blob(path, record)

    def _delete_keys(self, path: str, keys: Sequence[str]) -> None:
        bucket = self._bucket()

        def rm(name: str) -> None:
            with contextlib.suppress(api_exc.NotFound):  # already gone
                bucket.blob(name).delete(retry=self._retry, timeout=self._timeout)

        # the JSON batch endpoint is not in fake-gcs-server; a few parallel DELETEs work anywhere
        with ThreadPoolExecutor(8, thread_name_prefix="cdir-gcs") as pool:
            for _ in pool.map(rm, keys):
                pass

    def _delete_object(self, path: str) -> bool:
        try:
            self._blob(path).delete(retry=self._retry, timeout=self._timeout)
        except api_exc.NotFound:
            return False
        return True

    def _new_blob(self, path: str, mtime_ns: int | None) -> storage.Blob:
        blob = self._blob(path)
        if mtime_ns is not None:
            blob.metadata = self._mtime_meta(mtime_ns)
        return blob

    def _put_single(self, path: str, data: bytes, mtime_ns: int | None) -> RemoteStat:
        # one multipart request (object metadata + bytes); crc32c checked by the server
        blob = self._new_blob(path, mtime_ns)
        blob.upload_from_file(
            io.BytesIO(data),
            size=len(data),
            checksum="auto",
            retry=self._retry,
            timeout=self._timeout,
        )
        return self._stat_blob(path, blob)

    def _put_parts(self, path: str, source: io.RawIOBase, mtime_ns: int | None) -> RemoteStat:
        """A resumable session, chunk by chunk from the stream: memory stays at one chunk.
        size=None (total "*" until the last chunk) forces this path even below the SDK's own
        8 MiB multipart limit. `source` checks the announced size before the last chunk is
        sent, so a wrong one never finalizes the upload. The service computes the md5."""
        blob = self._new_blob(path, mtime_ns)
        blob.chunk_size = self._chunk
        blob.upload_from_file(
            source, size=None, checksum="auto", retry=self._retry, timeout=self._timeout
        )
        return self._stat_blob(path, blob)

    # --- reading -----------------------------------------------------------------------------
    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Ranged GETs of read_chunk_size each. After the first the object's generation is
        pinned (the SDK adds it to the URL), so a concurrent overwrite cannot tear the read."""
        blob = self._blob(path)
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

    # --- metadata and copies -----------------------------------------------------------------
    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        with self._errors(path):
            blob = self._blob(path)
            blob.metadata = self._mtime_meta(mtime_ns)  # PATCH merges metadata keys
            try:
                blob.patch(retry=self._retry, timeout=self._timeout)
            except api_exc.NotFound:
                raise self._missing(path) from None
            return self._stat_blob(path, blob)

    def copy(self, src: str, dst: str) -> RemoteStat:
        """Server-side rewrite (metadata, md5 and crc32c come along); big objects take several
        calls."""
        with self._errors(src):
            source, target = self._blob(src), self._blob(dst)
            token = None
            try:
                while True:
                    token, _, _ = target.rewrite(
                        source, token=token, retry=self._retry, timeout=self._timeout
                    )
                    if token is None:
                        break
            except api_exc.NotFound:
                raise self._missing(src) from None
            return self._stat_blob(dst, target)

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
            self._http = None
            self._bkt = None
