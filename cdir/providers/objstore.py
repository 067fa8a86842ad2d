"""What S3, Azure Blob and Google Cloud Storage share: a tree of files over a flat namespace.

An object store holds keys, not directories. `ObjectStore` turns that into the `Provider`
interface once, over a few primitives each store implements with its SDK:

- `_pages(prefix, delimiter)`: the keys below a prefix, page by page (with `delimiter`, one
  level: deeper keys come back as common prefixes);
- `_head_object(path)`: one object's record, None when there is none;
- `_delete_object(path)`: delete one, False when there was none; `_delete_keys`: many at once;
- `_listed_stat`/`_head_stat`: a listing's or a HEAD's record as a RemoteStat;
- `_put_single`/`_put_parts`: one request for a small file, a multipart (block, resumable)
  upload for a big one, atomic for readers either way;
- `error_table` and `_container_missing`: the SDK's errors in cdir's terms.

The mapping, the same on every store:
- `root` is `container` or `container/some/prefix`; the file `a/b.txt` is the key
  `some/prefix/a/b.txt`.
- Directories are key prefixes: one exists while a key below it does (`empty_dirs=False`,
  `mkdir` is a no-op). Marker keys made by other tools (`dir/`) read as directories, keys that
  are no cdir path (`a//b`) and uploads in flight (`TMP_PREFIX`) are not listed.
- A missing container (bucket) is named in the error of whatever operation met it.
"""

from __future__ import annotations

import builtins
import os
from abc import abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NamedTuple

from cdir.errors import (
    CdirError,
    ErrorRule,
    IsADirectory,
    NotADirectory,
    NotFound,
    translate,
)
from cdir.providers.base import TMP_PREFIX, Provider, RemoteStat
from cdir.providers.common import (
    META_MTIME,
    PrependedStream,
    check_size,
    datetime_ns,
    format_rfc3339,
    read_upto,
    rfc3339_meta_mtime,
    split_root,
)
from cdir.providers.options import OptionSpec

# what a store implementing the primitives needs (PrependedStream: what `_put_parts` reads)
__all__ = ["ObjectStore", "Page", "PrependedStream", "page_size_option"]


class Page(NamedTuple):
    """One page of a key listing."""

    objects: Sequence[tuple[str, Any]]  # (key, the store's record of that object)
    prefixes: Sequence[str] = ()  # common prefixes (delimiter listings), each ending in "/"


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a else b


def page_size_option(default: int, note: str = "") -> OptionSpec:
    """`page_size`, which every object store has: its listings come in pages."""
    return OptionSpec(
        "page_size", "entries per listing request" + note, "int", default=default, minimum=1
    )


class ObjectStore(Provider):
    """A `Provider` over an object store; subclasses implement the primitives."""

    # how messages and roots name the top level: "bucket" or "container"
    container_word: ClassVar[str] = "bucket"
    root_scheme: ClassVar[str] = ""  # accepted before the root, e.g. "s3://"
    error_table: ClassVar[Sequence[ErrorRule]] = ()
    # `_put_parts` gets `source.md5`, for stores that keep no MD5 of big uploads on their own
    md5_parts: ClassVar[bool] = False

    container: str  # the bucket or container
    prefix: str  # "" or "some/prefix/"
    page_size: int  # keys per listing request
    single_put_max: int  # the largest file sent in one request; above it, in parts

    def configure(self) -> None:
        """Subclasses call this first: it splits the root into container and prefix."""
        self.container, self.prefix = split_root(
            self.name, self.root, self.container_word, self.root_scheme
        )

    # --- primitives -------------------------------------------------------------------------
    @abstractmethod
    def _pages(self, prefix: str, delimiter: bool, limit: int | None = None) -> Iterator[Page]:
        """The keys starting with `prefix`, `limit` (or `page_size`) per page, with "/" as the
        delimiter when asked. Raw SDK errors: the caller translates them."""

    @abstractmethod
    def _listed_stat(self, path: str, record: Any) -> RemoteStat:
        """The stat of a file from its record in a listing."""

    @abstractmethod
    def _head_object(self, path: str) -> Any | None:
        """The record of the object at `path`, None when there is none (raw SDK errors)."""

    @abstractmethod
    def _head_stat(self, path: str, record: Any) -> RemoteStat:
        """The stat of a file from what `_head_object` returned."""

    @abstractmethod
    def _delete_object(self, path: str) -> bool:
        """Delete the object at `path`; False when there was none (raw SDK errors)."""

    @abstractmethod
    def _delete_keys(self, path: str, keys: Sequence[str]) -> None:
        """Delete these keys (any number; missing ones are fine) below `path`."""

    @abstractmethod
    def _put_single(self, path: str, data: bytes, mtime_ns: int | None) -> RemoteStat:
        """Store a small file in one request; its stat."""

    @abstractmethod
    def _put_parts(self, path: str, source: PrependedStream, mtime_ns: int | None) -> RemoteStat:
        """Store a big file from `source` in parts, visible only once complete; its stat.
        `source` raises before its last part if it is not the size announced."""

    def _container_missing(self, exc: Exception, bucket_level: bool) -> bool:
        """Is `exc` the store saying the container does not exist? `bucket_level`: the call
        (a listing, an upload) can only miss the container, not an object."""
        return False

    def _scrub(self, message: str) -> str:
        """An error message with anything secret or noisy (signed URLs) taken out."""
        return message

    def _mtime_meta(self, mtime_ns: int | None) -> dict[str, str]:
        """The user metadata that keeps `mtime_ns` (none for None): rclone's key `mtime`, as
        RFC 3339 with nanoseconds (what rclone writes on Azure Blob and GCS)."""
        return {} if mtime_ns is None else {META_MTIME: format_rfc3339(mtime_ns)}

    def _stored_mtime(
        self, meta: Mapping[str, str] | None, modified: datetime | None
    ) -> int | None:
        """The mtime `_mtime_meta` kept in `meta`, else `modified` (the service's upload time)."""
        ns = rfc3339_meta_mtime(meta)
        return datetime_ns(modified) if ns is None else ns

    # --- plumbing ---------------------------------------------------------------------------
    def _key(self, path: str) -> str:
        return self.prefix + path

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) :]

    def _base(self, path: str) -> str:
        """The key prefix of everything below the directory `path`."""
        return self._key(path) + "/" if path else self.prefix

    def _no_container(self) -> NotFound:
        return NotFound(f"{self.name}: {self.container_word} {self.container!r} does not exist")

    @contextmanager
    def _errors(self, path: str, bucket_level: bool = False) -> Iterator[None]:
        """SDK errors as cdir errors (through `error_table`), naming `path`, or the container
        when it is the container that is missing. cdir's own errors pass unchanged."""
        try:
            yield
        except CdirError:
            raise
        except Exception as exc:
            if self._container_missing(exc, bucket_level):
                raise self._no_container() from exc
            err = translate(exc, self.error_table, self._what(path))
            if isinstance(err, NotFound):
                err = NotFound(f"{self._what(path)}: not found")
            else:
                err.message = self._scrub(err.message)
                err.args = (err.message,)
            raise err from exc

    def _head(self, path: str) -> Any | None:
        """`_head_object` with errors translated."""
        with self._errors(path):
            return self._head_object(path)

    def _is_dir(self, path: str) -> bool:
        """Is anything stored below `path/`? (NotFound names a missing container.)"""
        with self._errors(path, bucket_level=True):
            page = next(self._pages(self._base(path), delimiter=False, limit=1), None)
        return page is not None and bool(page.objects or page.prefixes)

    def _missing(self, path: str) -> CdirError:
        """The error for a path with no object: a directory there, or nothing (a missing
        container raises here)."""
        if path and self._is_dir(path):
            return IsADirectory(f"{self._what(path)}: is a directory")
        return NotFound(f"{self._what(path)}: not found")

    # --- reading ----------------------------------------------------------------------------
    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        """`Provider.list`. `mtimes=False`: the caller needs only sizes and fingerprints (a
        sync pass that then stats the few files that differ), so a store that reads the
        stored mtime with a request per file (S3's HEAD) skips it; a file's mtime may then be
        the store's Last-Modified (the upload time), and a multipart object may lack the md5
        that only that request reads. Stores whose listings carry the stored mtime ignore it."""
        base = self._base(path)
        seen: set[str] = set()  # directories reported (recursive listings imply them)
        listed = False
        pages = self._pages(base, delimiter=not recursive)
        while True:
            with self._errors(path, bucket_level=True):
                page = next(pages, None)
            if page is None:
                break
            dirs, files = self._entries(path, base, page, seen)
            out = list(self._finish_page(dirs, files, recursive, mtimes))
            listed = listed or bool(out)
            yield from out
        if not listed and path and not self._is_dir(path):
            # nothing stored below `path`: a file there, or nothing at all
            if self._head(path) is not None:
                raise NotADirectory(f"{self._what(path)}: not a directory")
            raise NotFound(f"{self._what(path)}: no such directory")

    def _entries(
        self, path: str, base: str, page: Page, seen: set[str]
    ) -> tuple[builtins.list[RemoteStat], builtins.list[RemoteStat]]:  # (`list` is a method)
        """The directories (new to `seen`) and files of one page of a listing of `path`."""
        dirs: list[RemoteStat] = []
        files: list[RemoteStat] = []
        for prefix in page.prefixes:
            rel = prefix[len(base) :].rstrip("/")
            if rel and "/" not in rel and not rel.startswith(TMP_PREFIX) and rel not in seen:
                seen.add(rel)
                dirs.append(RemoteStat(_join(path, rel), "dir"))
        for key, record in page.objects:
            rel = key[len(base) :]
            parts = rel.split("/")
            is_marker = parts[-1] == ""  # `d/`, made by consoles and other tools
            if is_marker:
                parts.pop()
            if not parts or "" in parts or parts[-1].startswith(TMP_PREFIX):
                continue  # `path/` itself, a//b (no cdir path), or an upload in flight
            # every directory above a key is reported once (recursive listings have no
            # common prefixes); a marker object only stands for its directory
            for i in range(1, len(parts) + is_marker):
                d = "/".join(parts[:i])
                if d not in seen:
                    seen.add(d)
                    dirs.append(RemoteStat(_join(path, d), "dir"))
            if not is_marker:
                files.append(self._listed_stat(_join(path, rel), record))
        return dirs, files

    def _finish_page(
        self,
        dirs: Sequence[RemoteStat],
        files: Sequence[RemoteStat],
        recursive: bool,
        mtimes: bool = True,
    ) -> Iterable[RemoteStat]:
        """What one page of a listing reports; a store may check or complete entries here
        (`mtimes`: as `list` was asked)."""
        return [*dirs, *files]

    def stat(self, path: str) -> RemoteStat:
        if path:
            record = self._head(path)
            if record is not None:
                return self._head_stat(path, record)
        if self._is_dir(path) or not path:  # the root: NotFound only for a missing container
            return RemoteStat(path, "dir")
        raise NotFound(f"{self._what(path)}: not found")

    # --- writing ----------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        """Nothing to do: directories appear with their first file."""

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        if not path:
            raise IsADirectory(f"{self._what(path)}: is a directory")
        head = read_upto(stream, self.single_put_max + 1)
        if len(head) <= self.single_put_max:
            check_size(self._what(path), size, len(head))
            with self._errors(path, bucket_level=True):
                return self._put_single(path, head, mtime_ns)
        source = PrependedStream(head, stream, size, self._what(path), md5=self.md5_parts)
        try:
            # an upload can only 404 because the container is missing
            with self._errors(path, bucket_level=True):
                return self._put_parts(path, source, mtime_ns)
        except Exception:
            if source.error is not None:
                raise source.error from None  # the source's fault, not the store's
            raise

    def put_file(self, local: Path, path: str, mtime_ns: int | None = None) -> RemoteStat:
        local = Path(local)
        if local.is_dir():
            raise IsADirectory(f"{local}: is a directory")
        if not path:
            raise IsADirectory(f"{self._what(path)}: is a directory")
        with open(local, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > self.single_put_max:
                return self.put_stream(f, path, size, mtime_ns)
            data = f.read()  # exactly the file (a read of single_put_max would allocate that)
        check_size(self._what(path), size, len(data))
        with self._errors(path, bucket_level=True):
            return self._put_single(path, data, mtime_ns)

    def delete(self, path: str) -> None:
        with self._errors(path):
            gone = bool(path) and self._delete_object(path)
        if not gone:
            raise self._missing(path)

    def delete_tree(self, path: str) -> None:
        keys: list[str] = []
        with self._errors(path, bucket_level=True):
            for page in self._pages(self._base(path), delimiter=False):
                keys.extend(key for key, _ in page.objects)
        if path:
            keys.append(self._key(path))  # `path` may be a file
        with self._errors(path):
            self._delete_keys(path, keys)

    def check(self) -> None:
        self._is_dir("")  # NotFound for a missing container, AuthError for bad keys
