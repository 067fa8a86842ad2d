"""`S3Provider`: the object-store primitives (`cdir.providers.objstore`) over boto3, plus
ranged and parallel reads, mtimes in metadata, server-side copy and the fast path for small
objects and listings. What the tree looks like on the bucket is in the package docstring."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

import botocore.exceptions as bexc
import urllib3
from boto3.s3.transfer import TransferConfig

from cdir.errors import NotFound, ProviderError, Unavailable, translated
from cdir.providers.base import CHUNK, Capabilities, RemoteStat
from cdir.providers.common import META_MTIME, MiB, bare_etag, datetime_ns, range_header
from cdir.providers.objstore import ObjectStore, Page, PrependedStream
from cdir.providers.s3.client import new_client, server_copy
from cdir.providers.s3.errors import BUSY_CODES, ERRORS, code, not_found, precondition_failed
from cdir.providers.s3.listing import list_pages
from cdir.providers.s3.metadata import (
    META_MD5,
    PLAIN_MD5,
    format_md5,
    format_mtime,
    parse_md5,
    parse_mtime,
    replace_metadata,
)
from cdir.providers.s3.options import OPTIONS
from cdir.providers.s3.presets import resolve_endpoint
from cdir.providers.s3.signed import SignedRequests

MIN_PART = 5 * MiB  # S3 refuses smaller parts (but the last)
_MTIME_CACHE = 500_000  # entries (~100 MB at most); cleared when full
_HEAD_THREADS = 32  # at most, for the HEADs of a listing (fewer with fewer max_connections)


class S3Provider(ObjectStore):
    """Amazon S3 or any S3-compatible store.

    root: `bucket` or `bucket/prefix/inside/it` (an `s3://` in front is accepted).
    Options: `preset` (see PRESETS), `endpoint_url`, `region`, `addressing_style`
    (path|virtual|auto), the preset placeholders `account_id`/`namespace`, transfer tuning.
    Secrets: `access_key_id`, `secret_access_key`, optional `session_token`. Without keys, boto3's
    default credential chain is used (AWS_* environment variables, `profile`/AWS_PROFILE,
    ~/.aws/credentials, instance roles).
    """

    kind = "s3"
    root_scheme = "s3://"
    error_table = ERRORS
    md5_parts = True  # a multipart ETag is no MD5: keep our own in `md5chksum`
    capabilities = Capabilities(
        empty_dirs=False,  # directories are key prefixes; no marker objects are written
        set_mtime=True,  # CopyObject onto itself with replaced metadata
        mtime_precision_ns=1,  # the mtime is our own metadata string, exact to the ns
        # md5 is not declared: objects written by other tools in parts without `md5chksum`,
        # and SSE-KMS/SSE-C ETags, carry no MD5, so no hash is known for every file. Where it
        # is sure (a plain ETag, `md5chksum`) it is still reported in RemoteStat.hashes.
        hash_kinds=frozenset(),
        case_sensitive=True,
        range_reads=True,
        server_side_copy=True,
        server_side_move=False,  # copy + delete is not atomic: the caller does it
        max_name_bytes=255,  # keys may hold 1024 bytes in all; cdir names stop at 255
    )
    options = OPTIONS

    def configure(self) -> None:
        super().configure()
        c = self.conf
        self.endpoint_url, self.region, self.addressing_style = resolve_endpoint(c)
        self.threshold: int = c["multipart_threshold"]
        self.single_put_max = self.threshold - 1  # from the threshold on, in parts
        self.chunksize: int = max(MIN_PART, c["multipart_chunksize"])
        self.page_size = min(1000, c["page_size"])
        self.list_mtime: str = c["list_mtime"]
        self.etag_md5: bool = c["etag_md5"]
        # SeaweedFS keeps real folders: one emptied by a delete stays a CommonPrefix until an
        # asynchronous cleanup (minutes later). Checking each prefix costs a request per dir.
        verify = c["verify_dirs"]
        self.verify_dirs: bool = c["preset"] == "seaweedfs" if verify is None else verify
        self._lock = threading.Lock()
        self._client: Any = None
        self._transfer: TransferConfig | None = None
        self._pool: ThreadPoolExecutor | None = None
        # path → (ETag, listed Last-Modified, stored mtime, stored md5), for listings (see
        # list_mtime); our own writes drop the entry (Last-Modified may have whole seconds only)
        self._mtimes: dict[str, tuple[str, int | None, int | None, str | None]] = {}
        self._signed = (
            SignedRequests(
                self.endpoint_url,
                self.bucket,
                self.region,
                self.addressing_style,
                self.secrets,
                c["max_connections"],
                urllib3.Timeout(connect=c["connect_timeout"], read=c["read_timeout"]),
            )
            if c["fast_put"]
            and self.endpoint_url
            and self.addressing_style in ("path", "virtual")
            and self.secrets.get("access_key_id")
            and not c["profile"]
            else None
        )

    @property
    def bucket(self) -> str:
        return self.container

    # --- plumbing ---------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The one boto3 client (thread-safe), made on first use."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    with translated(ERRORS, self._what("")):
                        self._client = new_client(
                            self.conf,
                            self.secrets,
                            self.endpoint_url,
                            self.region,
                            self.addressing_style,
                        )
                client = self._client
        return client

    @property
    def transfer(self) -> TransferConfig:
        if self._transfer is None:
            conc = self.conf["upload_concurrency"]
            tc = TransferConfig(
                multipart_threshold=self.threshold,
                multipart_chunksize=self.chunksize,
                max_concurrency=conc,
                preferred_transfer_client="classic",
            )
            # bounds the memory of a streamed (non-seekable) upload to a few parts
            tc.max_in_memory_upload_chunks = conc + 2
            self._transfer = tc
        return self._transfer

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    workers = min(_HEAD_THREADS, self.conf["max_connections"])
                    self._pool = ThreadPoolExecutor(workers, thread_name_prefix="cdir-s3")
        return self._pool

    def _container_missing(self, exc: Exception, bucket_level: bool) -> bool:
        return code(exc) == "NoSuchBucket"

    def _md5(self, etag: str, head: Mapping[str, Any] | None = None) -> dict[str, str]:
        if not self.etag_md5 or not PLAIN_MD5.match(etag):
            return {}
        if head and (
            head.get("SSECustomerAlgorithm")
            or str(head.get("ServerSideEncryption", "")).startswith("aws:kms")
        ):
            return {}  # these ETags are not MD5s of the content
        return {"md5": etag}

    def _file_stat(
        self,
        path: str,
        size: int,
        etag: str,
        mtime_ns: int | None,
        head: Mapping[str, Any] | None = None,
    ) -> RemoteStat:
        hashes = self._md5(etag, head)
        if not hashes and head:
            # cdir's and rclone's multipart uploads carry their MD5 in `md5chksum`
            md5 = parse_md5(head.get("Metadata"))
            if md5:
                hashes = {"md5": md5}
        return RemoteStat(path, "file", size, mtime_ns, etag, hashes)

    # --- the object-store primitives --------------------------------------------------------
    def _pages(self, prefix: str, delimiter: bool, limit: int | None = None) -> Iterator[Page]:
        # the signed fast path where there is one, page by page boto3 where it falls back
        size = limit or self.page_size
        return list_pages(self._signed, lambda: self.client, self.bucket, prefix, delimiter, size)

    def _listed_stat(self, path: str, record: Any) -> RemoteStat:
        etag = bare_etag(record.get("ETag"))
        modified = datetime_ns(record.get("LastModified"))
        return self._file_stat(path, int(record.get("Size", 0)), etag, modified)

    def _head_object(self, path: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(path))
        except bexc.ClientError as exc:
            if not_found(exc):
                return None  # (a missing bucket too: a HEAD's answer cannot say)
            raise

    def _head_stat(self, path: str, record: Any) -> RemoteStat:
        etag = bare_etag(record.get("ETag"))
        mtime = self._stored_mtime(record.get("Metadata"), record.get("LastModified"))
        return self._file_stat(path, int(record.get("ContentLength", 0)), etag, mtime, record)

    def _delete_object(self, path: str) -> bool:
        self._mtimes.pop(path, None)
        # DeleteObject succeeds on missing keys; the interface wants NotFound, so look first
        if self._head_object(path) is None:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=self._key(path))
        return True

    def _delete_keys(self, path: str, keys: Sequence[str]) -> None:
        """The keys, then the directory keys above them (deepest first, so each folder is
        empty when its key goes): servers with real folders (SeaweedFS) drop an emptied folder
        when its `d/` key is deleted, elsewhere that is a no-op."""
        self._mtimes.clear()
        base = self._base(path)
        dirs = {base} if path else set()
        for key in keys:
            if key.startswith(base):
                rel = key[len(base) :].rstrip("/").split("/")
                dirs.update(base + "/".join(rel[:i]) + "/" for i in range(1, len(rel)))
        self._delete_batches(keys)
        self._delete_batches(sorted(dirs - set(keys), key=lambda k: -k.count("/")))

    def _delete_batches(self, keys: Sequence[str]) -> None:
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            r = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            errors = [e for e in r.get("Errors") or () if e.get("Code") != "NoSuchKey"]
            if errors:
                e = errors[0]
                raise ProviderError(
                    f"{self.name}:/{self._rel(e.get('Key', ''))}: "
                    f"delete failed: {e.get('Code')} {e.get('Message', '')}".strip(),
                    retryable=e.get("Code") in BUSY_CODES,
                )

    def _put_single(self, path: str, data: bytes, mtime_ns: int | None) -> RemoteStat:
        self._mtimes.pop(path, None)
        meta = self._mtime_meta(mtime_ns)
        r = self._signed.put(self._key(path), data, meta) if self._signed else None
        if r is None:  # no fast path here, or it met something unusual: boto3 decides
            r = self.client.put_object(
                Bucket=self.bucket, Key=self._key(path), Body=data, Metadata=meta
            )
        etag = bare_etag(r.get("ETag"))
        return self._file_stat(path, len(data), etag, parse_mtime(meta[META_MTIME]), r)

    def _put_parts(self, path: str, source: PrependedStream, mtime_ns: int | None) -> RemoteStat:
        """A multipart upload (s3transfer cuts a part per full read of `source`; parts under
        5 MiB are refused), then its MD5 stored as `md5chksum`.

        The MD5 is computed as `source` is read, in order, by the thread that feeds the part
        uploads: no second pass over the data, and hashlib releases the GIL while the part
        uploads run. Measured on the 2-core test machine, 256 MiB against SeaweedFS on
        loopback (server and client sharing the cores): MD5 alone 0.4-0.5 s (~550 MiB/s), the
        multipart put 1.6-3 s (80-160 MiB/s), so hashing is a fifth of the put's time at most
        even when the server competes for the CPU; against a remote service the network is
        slower still. S3 takes metadata only when an upload starts, before the MD5 is known,
        so it is added by a CopyObject of the object onto itself, only if it is still the one
        uploaded (CopySourceIfMatch): 5 ms for 256 MiB on SeaweedFS (metadata only), a
        server-side copy on AWS (a multipart one above 5 GiB); no bytes through cdir."""
        self._mtimes.pop(path, None)
        meta = self._mtime_meta(mtime_ns)
        # a failure (here or in the source) aborts the multipart upload: nothing is stored
        # and a file already there stays as it was
        self.client.upload_fileobj(
            source,
            self.bucket,
            self._key(path),
            ExtraArgs={"Metadata": meta},
            Config=self.transfer,
        )
        head = self._head_object(path)
        if head is None:
            raise ProviderError(f"{self._what(path)}: upload finished but the object is missing")
        assert source.md5 is not None
        md5 = source.md5.digest()
        meta = {**(head.get("Metadata") or {}), META_MD5: format_md5(md5)}
        extra = replace_metadata(head, meta)
        extra["CopySourceIfMatch"] = head["ETag"]
        key = self._key(path)
        try:
            r = self._server_copy(key, key, int(head.get("ContentLength", 0)), extra)
        except bexc.ClientError as exc:
            if not precondition_failed(exc):
                raise
            # overwritten since: what was uploaded, as the HEAD saw it
            st = self._head_stat(path, head)
            return RemoteStat(
                path, "file", st.size, st.mtime_ns, st.fingerprint, {"md5": md5.hex()}
            )
        if r is None:
            return self._after_upload(path)
        etag = bare_etag(r.get("ETag"))
        size = int(head.get("ContentLength", 0))
        mtime = parse_mtime(meta.get(META_MTIME))
        return self._file_stat(path, size, etag, mtime, {**head, "Metadata": meta})

    def _finish_page(
        self,
        dirs: Sequence[RemoteStat],
        files: Sequence[RemoteStat],
        recursive: bool,
        mtimes: bool = True,
    ) -> Iterable[RemoteStat]:
        if self.verify_dirs and not recursive and dirs:
            keep = self._executor().map(lambda st: self._is_dir(st.path), dirs)
            dirs = [st for st, ok in zip(dirs, keep, strict=True) if ok]
        return [*dirs, *self._with_metadata(files, mtimes)]

    def _with_metadata(
        self, files: Sequence[RemoteStat], mtimes: bool = True
    ) -> Iterable[RemoteStat]:
        """Replace listed Last-Modified times by the stored mtimes, and add the stored MD5 of
        multipart objects: HEADs run in parallel. With `mtimes=False` no HEAD is made: only
        what this process has seen is used, the other files keep their listed record."""
        if self.list_mtime != "metadata" or not files:
            return files
        if not mtimes:
            return [self._stored_metadata(s, head=False) for s in files]
        return self._executor().map(self._stored_metadata, files)

    def _stored_metadata(self, s: RemoteStat, head: bool = True) -> RemoteStat:
        """A listed file with its stored mtime and MD5: remembered, else HEADed (`head`)."""
        # ETag + Last-Modified change whenever the object or its metadata does, so an object
        # seen before needs no second HEAD (a daemon lists the same tree again and again)
        seen = self._mtimes.get(s.path)
        if seen is not None and seen[:2] == (s.fingerprint, s.mtime_ns):
            mtime, md5 = seen[2:]
        elif not head:
            return s
        else:
            record = self._head(s.path)
            if record is None:
                return s  # deleted meanwhile: keep what the listing said
            meta = record.get("Metadata") or {}
            mtime, md5 = parse_mtime(meta.get(META_MTIME)), parse_md5(meta)
            if len(self._mtimes) >= _MTIME_CACHE:
                self._mtimes.clear()
            self._mtimes[s.path] = (s.fingerprint, s.mtime_ns, mtime, md5)
        hashes = s.hashes if s.hashes or not md5 else {"md5": md5}
        if mtime is None:
            mtime = s.mtime_ns  # no stored mtime: the upload time is all there is
        return RemoteStat(s.path, "file", s.size, mtime, s.fingerprint, hashes)

    # --- reading ----------------------------------------------------------------------------
    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(path)}
        if end is not None and end <= start:
            self.stat(path)  # NotFound as for any read; then nothing to send
            return
        if end is not None and end - start >= 2 * self.chunksize:
            yield from self._read_parts(path, start, end)
            return
        kw.update(range_header(start, end))
        fast = self._signed.get(kw["Key"], kw.get("Range")) if self._signed else None
        if fast is not None:
            try:
                yield from fast.stream(CHUNK)
            except urllib3.exceptions.HTTPError as exc:
                raise Unavailable(f"{self._what(path)}: {exc}") from None
            finally:
                fast.release_conn()
            return
        try:
            with self._errors(path):
                resp = self.client.get_object(**kw)
        except NotFound:
            raise self._missing(path) from None
        except ProviderError as exc:
            if code(exc.__cause__ or exc) == "InvalidRange":
                return  # start at or past the end (or an empty file): no bytes
            raise
        body = resp["Body"]
        try:
            while True:
                with self._errors(path):
                    chunk = body.read(CHUNK)
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    def _read_parts(self, path: str, start: int, end: int) -> Iterator[bytes]:
        """A big known range as parallel ranged GETs (`upload_concurrency` in flight, one
        part each), yielded in order: one sequential stream is the bottleneck otherwise."""
        bounds = [(a, min(a + self.chunksize, end)) for a in range(start, end, self.chunksize)]
        width = self.conf["upload_concurrency"]
        pool = ThreadPoolExecutor(width, thread_name_prefix="cdir-s3-get")
        inflight: deque[Future[bytes]] = deque()

        def fetch(a: int, b: int) -> bytes:
            return b"".join(self.read_chunks(path, a, b))

        try:
            for a, b in bounds:
                inflight.append(pool.submit(fetch, a, b))
                if len(inflight) >= width:
                    part = inflight.popleft().result()
                    yield part
                    if not part:
                        return
            while inflight:
                yield inflight.popleft().result()
        finally:
            for fut in inflight:
                fut.cancel()
            pool.shutdown(wait=True)

    # --- writing ----------------------------------------------------------------------------
    def _mtime_meta(self, mtime_ns: int | None) -> dict[str, str]:
        # Always store an mtime (now when none is given): put can then return the stat
        # without a HEAD, and stat/list report the same time. Decimal seconds, as rclone
        # writes them on S3.
        return {META_MTIME: format_mtime(time.time_ns() if mtime_ns is None else mtime_ns)}

    def _stored_mtime(
        self, meta: Mapping[str, str] | None, modified: datetime | None
    ) -> int | None:
        mtime = parse_mtime((meta or {}).get(META_MTIME))
        return datetime_ns(modified) if mtime is None else mtime

    def _after_upload(self, path: str) -> RemoteStat:
        head = self._head(path)
        if head is None:
            raise ProviderError(f"{self._what(path)}: upload finished but the object is missing")
        return self._head_stat(path, head)

    def _server_copy(
        self, src_key: str, dst_key: str, size: int, extra: dict[str, Any]
    ) -> dict[str, Any] | None:
        return server_copy(self.client, self.bucket, src_key, dst_key, size, extra, self.transfer)

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        try:
            with self._errors(path):
                head = self._head_object(path)
                if head is None:
                    raise self._missing(path)
                meta = {**(head.get("Metadata") or {}), META_MTIME: format_mtime(mtime_ns)}
                size = int(head.get("ContentLength", 0))
                key = self._key(path)
                r = self._server_copy(key, key, size, replace_metadata(head, meta))
            if r is None:
                return self._after_upload(path)
            etag = bare_etag(r.get("ETag"))
            return self._file_stat(path, size, etag, mtime_ns, {**head, "Metadata": meta})
        finally:
            # after the copy too: the ETag stays, and Last-Modified may keep its second
            self._mtimes.pop(path, None)

    def copy(self, src: str, dst: str) -> RemoteStat:
        self._mtimes.pop(dst, None)
        head = self._head(src)
        if head is None:
            raise self._missing(src)
        if src == dst:
            return self._head_stat(src, head)  # S3 refuses a copy onto itself
        size = int(head.get("ContentLength", 0))
        with self._errors(src):
            r = self._server_copy(self._key(src), self._key(dst), size, {})
        if r is None:
            return self._after_upload(dst)
        etag = bare_etag(r.get("ETag"))
        # the metadata, and so the mtime (and md5chksum), is copied along
        mtime = self._stored_mtime(head.get("Metadata"), r.get("LastModified"))
        return self._file_stat(dst, size, etag, mtime, head)

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
        if client is not None:
            client.close()
