"""The provider: libcloud's common StorageDriver API under the object-store algorithm."""

from __future__ import annotations

import base64
import binascii
import hashlib
import inspect
import json
import re
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from itertools import islice
from typing import Any

from libcloud.storage.base import Container, Object, StorageDriver
from libcloud.storage.providers import get_driver
from libcloud.storage.types import ContainerDoesNotExistError, ObjectDoesNotExistError, ObjectError

from cdir.errors import ProviderError, UsageError
from cdir.providers.base import CHUNK, Capabilities, RemoteStat
from cdir.providers.common import MiB, bare_etag, datetime_ns, parse_rfc3339
from cdir.providers.libcloud.errors import ERRORS, scrub, status, tune
from cdir.providers.objstore import ObjectStore, Page, PrependedStream
from cdir.providers.options import OptionSpec

META_MD5 = "md5chksum"  # rclone's key: base64 of the md5 digest
_PAGE = 1000  # keys handed to the object-store algorithm at once (the driver pages on its own)


@dataclass(frozen=True)
class Quirks:
    """What a driver keeps and does beyond the common API."""

    metadata: bool = True  # keeps user metadata (the mtime, the md5)
    listed_metadata: bool = False  # listings carry it (else a HEAD per file reads the mtime)
    prefix_filter: bool = True  # filters listings by prefix itself (else here, without its warning)
    # the hash changes with the content; LOCAL's is the file's mtime, so its fingerprint adds
    # the size (two same-size writes within one tick of a coarse file clock look alike)
    content_etag: bool = True


QUIRKS: dict[str, Quirks] = {
    "local": Quirks(metadata=False, prefix_filter=False, content_etag=False),
    "azure_blobs": Quirks(listed_metadata=True),
    "backblaze_b2": Quirks(prefix_filter=False),
}


def _takes(cls: type, name: str) -> bool:
    """Does `cls(...)` accept the keyword `name` (directly or through **kwargs)?"""
    params = inspect.signature(cls).parameters.values()
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in params)


def _last_modified(text: Any) -> int | None:
    """A listing's or a HEAD's Last-Modified (RFC 1123 or ISO 8601; LOCAL: epoch seconds)."""
    if isinstance(text, int | float):
        return round(text * 1e9)
    if not text:
        return None
    try:
        return datetime_ns(parsedate_to_datetime(str(text)))
    except (TypeError, ValueError):
        return parse_rfc3339(str(text))


class LibcloudProvider(ObjectStore):
    """A container of any libcloud storage driver. Root: "container" or "container/prefix".

    Options: `driver` (libcloud's provider name: s3, azure_blobs, google_storage, backblaze_b2,
    local…), `key` (access key id, account name, or LOCAL's folder), secret `secret`, and
    `host`/`port`/`secure`/`region` for self-hosted endpoints (MinIO, SeaweedFS, Azurite);
    `driver_options` is a JSON object of further keyword arguments for the driver.
    """

    kind = "libcloud"
    container_word = "container"
    error_table = ERRORS
    md5_parts = True  # streamed uploads are hashed on the way: put_stream returns the md5
    options = (
        OptionSpec(
            "driver", "libcloud storage provider name (s3, azure_blobs, local…)", required=True
        ),
        OptionSpec(
            "key", "access key id / account name; for `local`, the base folder", required=True
        ),
        OptionSpec("secret", "secret key", secret=True),
        OptionSpec("host", "endpoint host of a self-hosted service"),
        OptionSpec("port", "endpoint port", "int", minimum=1),
        OptionSpec("secure", "use HTTPS", "bool", default=True),
        OptionSpec("region", "region, for drivers that have one (s3)"),
        OptionSpec(
            "driver_options", 'more driver arguments as JSON, e.g. {"ex_use_locking": false}'
        ),
        OptionSpec(
            "single_put_size",
            "largest file read whole and sent with its md5",
            "size",
            default=8 * MiB,
            minimum=0,
        ),
        OptionSpec("timeout", "connect/read timeout in seconds", "float", default=60.0, minimum=0),
        OptionSpec(
            "workers",
            "requests at once where one is needed per object (HEADs, deletes)",
            "int",
            default=8,
            minimum=1,
        ),
    )

    def configure(self) -> None:
        """The driver class and its arguments; what it keeps decides the capabilities."""
        super().configure()
        c = self.conf
        if not c["driver"] or not c["key"]:
            raise UsageError(f"{self.name}: the options driver and key are required")
        try:
            self._cls: type[StorageDriver] = get_driver(c["driver"])
        except AttributeError:
            raise UsageError(
                f"{self.name}: libcloud has no storage driver {c['driver']!r}"
            ) from None
        except ImportError as exc:  # LOCAL needs fasteners
            raise UsageError(f"{self.name}: driver {c['driver']}: {exc}") from None
        try:
            extra = json.loads(c["driver_options"] or "{}")
        except json.JSONDecodeError as exc:
            raise UsageError(f"{self.name}: driver_options is not JSON: {exc}") from None
        if not isinstance(extra, dict):
            raise UsageError(f"{self.name}: driver_options must be a JSON object")
        self._args: dict[str, Any] = {"secure": c["secure"], **extra}
        for name in ("host", "port", "region"):
            if c[name] is not None:
                self._args[name] = c[name]
        if _takes(self._cls, "timeout"):
            self._args.setdefault("timeout", c["timeout"])
        self.quirks = QUIRKS.get(c["driver"], Quirks())
        self.capabilities = Capabilities(
            empty_dirs=False,  # directories are key prefixes
            set_mtime=self.quirks.metadata,  # kept in user metadata
            hash_kinds=frozenset(),  # streamed uploads store no md5 (see the module docstring)
            server_side_copy=False,  # not in libcloud's common API
            server_side_move=False,
        )
        self.page_size = _PAGE
        self.single_put_max = c["single_put_size"]
        self._local = threading.local()
        self._lock = threading.Lock()
        # every thread's driver, to close their sessions; a dead thread's goes with it
        self._drivers: weakref.WeakSet[StorageDriver] = weakref.WeakSet()
        self._executor: ThreadPoolExecutor | None = None

    # --- plumbing ----------------------------------------------------------------------------
    def _session(self) -> tuple[StorageDriver, Container]:
        """This thread's driver and container (looked up once: a missing one raises)."""
        s = getattr(self._local, "session", None)
        if s is None:
            driver = self._cls(self.conf["key"], self.secrets.get("secret"), **self._args)
            tune(driver)
            with self._lock:
                self._drivers.add(driver)
            s = self._local.session = (driver, driver.get_container(self.container))
        return s

    def _container_missing(self, exc: Exception, bucket_level: bool) -> bool:
        return isinstance(exc, ContainerDoesNotExistError) or (
            bucket_level and status(exc) == 404 and not isinstance(exc, ObjectError)
        )

    def _scrub(self, message: str) -> str:
        return scrub(message)

    def _object(self, path: str) -> Object:
        """An object by name, for calls that take one (no request)."""
        driver, container = self._session()
        return Object(self._key(path), 0, "", {}, {}, container, driver)

    def _stat(self, path: str, obj: Object) -> RemoteStat:
        meta, extra = obj.meta_data or {}, obj.extra or {}
        modified = extra.get("modify_time") or extra.get("last_modified")
        kept = self._stored_mtime(meta, None) if self.quirks.metadata else None
        mtime = kept if kept is not None else _last_modified(modified)
        etag = bare_etag(extra.get("etag") or obj.hash)
        fingerprint = etag if self.quirks.content_etag else f"{etag}-{obj.size}"
        return RemoteStat(path, "file", int(obj.size), mtime, fingerprint, _md5(meta, extra))

    def _meta(self, mtime_ns: int | None, md5: Any = None) -> dict[str, Any]:
        """`extra` for an upload: the mtime (and md5) as user metadata."""
        if not self.quirks.metadata:
            return {}
        meta = self._mtime_meta(mtime_ns)
        if md5 is not None:
            meta[META_MD5] = base64.b64encode(md5.digest()).decode()
        return {"meta_data": meta} if meta else {}

    # --- the object-store primitives ---------------------------------------------------------
    def _pages(self, prefix: str, delimiter: bool, limit: int | None = None) -> Iterator[Page]:
        driver, container = self._session()
        native = self.quirks.prefix_filter
        wanted = (prefix or None) if native else None
        objects = iter(driver.iterate_container_objects(container, prefix=wanted))
        dirs: set[str] = set()
        batches = iter(lambda: list(islice(objects, limit or self.page_size)), [])
        for batch in batches:
            found: list[tuple[str, Any]] = []
            prefixes: list[str] = []
            for obj in batch:
                if not obj.name.startswith(prefix):
                    continue  # a driver that lists everything
                cut = obj.name.find("/", len(prefix)) if delimiter else -1
                if cut < 0:
                    found.append((obj.name, obj))
                elif (d := obj.name[: cut + 1]) not in dirs:
                    dirs.add(d)  # what a delimiter listing gives as a common prefix
                    prefixes.append(d)
            if found or prefixes:
                yield Page(found, prefixes)

    def _listed_stat(self, path: str, record: Any) -> RemoteStat:
        return self._stat(path, record)

    def _head_object(self, path: str) -> Object | None:
        driver, _ = self._session()
        try:
            return driver.get_object(self.container, self._key(path))
        except ObjectError:  # missing, or (LOCAL) a directory there
            return None

    def _head_stat(self, path: str, record: Any) -> RemoteStat:
        return self._stat(path, record)

    def _delete_object(self, path: str) -> bool:
        obj = self._head_object(path)
        if obj is None:
            return False
        if not self._drop(obj):
            raise ProviderError(f"{self._what(path)}: the store did not delete it")
        return True

    def _delete_keys(self, path: str, keys: Sequence[str]) -> None:
        """One request per key (libcloud has no bulk delete), a few at once. Missing keys
        are fine."""
        list(self._pool().map(lambda key: self._drop(self._object(self._rel(key))), keys))

    def _drop(self, obj: Object) -> bool:
        """Delete `obj`; False when the store says it was not there."""
        driver, _ = self._session()
        try:
            return bool(driver.delete_object(obj))
        except ObjectDoesNotExistError:
            return False
        except FileNotFoundError:
            return True  # LOCAL, after the file: an emptied folder another delete removed first

    def _pool(self) -> ThreadPoolExecutor:
        """Threads for requests made one per object; they live as long as the provider, and
        so do their drivers."""
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    self.conf["workers"], thread_name_prefix="cdir-libcloud"
                )
            return self._executor

    def _upload(self, path: str, chunks: Iterator[bytes], extra: dict[str, Any]) -> Object:
        driver, container = self._session()
        return driver.upload_object_via_stream(chunks, container, self._key(path), extra=extra)

    def _put_single(self, path: str, data: bytes, mtime_ns: int | None) -> RemoteStat:
        md5 = hashlib.md5(data)
        obj = self._upload(path, iter([data]), self._meta(mtime_ns, md5))
        return self._put_stat(path, obj, len(data), mtime_ns, md5)

    def _put_parts(self, path: str, source: PrependedStream, mtime_ns: int | None) -> RemoteStat:
        obj = self._upload(path, source.blocks(CHUNK), self._meta(mtime_ns))
        return self._put_stat(path, obj, source.tell(), mtime_ns, source.md5)

    def _put_stat(
        self, path: str, obj: Object, size: int, mtime_ns: int | None, md5: Any
    ) -> RemoteStat:
        """What was written, from the driver's answer (the etag `stat` then gives)."""
        st = self._stat(path, obj)
        mtime = mtime_ns if mtime_ns is not None and self.quirks.metadata else st.mtime_ns
        return RemoteStat(path, "file", size, mtime, st.fingerprint, {"md5": md5.hexdigest()})

    def _finish_page(
        self,
        dirs: Sequence[RemoteStat],
        files: Sequence[RemoteStat],
        recursive: bool,
        mtimes: bool = True,
    ) -> list[RemoteStat]:
        """Where listings lack user metadata (S3), the stored mtimes come from a HEAD each."""
        if not (mtimes and files and self.quirks.metadata and not self.quirks.listed_metadata):
            return [*dirs, *files]

        def exact(st: RemoteStat) -> RemoteStat:
            obj = self._head(st.path)  # translated here: `list` calls this outside `_errors`
            return st if obj is None else self._stat(st.path, obj)

        return [*dirs, *self._pool().map(exact, files)]

    # --- reading -----------------------------------------------------------------------------
    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        obj = self._head(path)
        if obj is None:
            raise self._missing(path)
        size = int(obj.size)
        end = size if end is None else min(end, size)
        if start >= end:
            return  # a slice past the end, or empty: no request (drivers refuse these ranges)
        driver, _ = self._session()
        with self._errors(path):
            if start == 0 and end == size:
                chunks = driver.download_object_as_stream(obj, chunk_size=CHUNK)
            else:
                chunks = driver.download_object_range_as_stream(obj, start, end, chunk_size=CHUNK)
            for chunk in chunks:
                yield bytes(chunk)

    # --- metadata ----------------------------------------------------------------------------
    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        if not self.quirks.metadata:
            return super().set_mtime(path, mtime_ns)  # Unsupported
        obj = self._head(path)
        if obj is None:
            raise self._missing(path)
        driver, _ = self._session()
        meta = {k: v for k, v in (obj.meta_data or {}).items() if isinstance(v, str)}
        meta.update(self._mtime_meta(mtime_ns))
        with self._errors(path):
            setter = getattr(driver, "ex_set_object_metadata", None)
            if setter is not None:
                setter(obj, meta)
            else:  # no copy in libcloud: the content streams back onto the same key
                chunks = driver.download_object_as_stream(obj, chunk_size=CHUNK)
                self._upload(path, (bytes(c) for c in chunks), {"meta_data": meta})
            now = self._head_object(path)
        if now is None:
            raise self._missing(path)
        return self._stat(path, now)

    def close(self) -> None:
        with self._lock:
            drivers, self._drivers = list(self._drivers), weakref.WeakSet()
            executor, self._executor = self._executor, None
            self._local = threading.local()
        if executor is not None:
            executor.shutdown(cancel_futures=True)
        for driver in drivers:
            session = getattr(getattr(driver.connection, "connection", None), "session", None)
            if session is not None:
                session.close()


def _md5(meta: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, str]:
    """The md5 a record carries: ours in metadata, else the store's (Azure's Content-MD5)."""
    text = meta.get(META_MD5)
    if isinstance(text, str):
        try:
            digest = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) == 16:
            return {"md5": digest.hex()}
    hexed = extra.get("md5_hash")
    if isinstance(hexed, str) and re.fullmatch(r"[0-9a-f]{32}", hexed):
        return {"md5": hexed}
    return {}
