"""Helpers several providers share: reading upload streams, object-store roots and listings,
and the mtime kept in object metadata. Standard library only: any provider may import it."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, BinaryIO

from cdir.errors import Conflict, NotFound, UsageError

if TYPE_CHECKING:
    from cdir.providers.base import RemoteStat

MiB = 1024 * 1024
# HTTP statuses worth a retry: timeouts, throttling, server trouble
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# the most one read asks for: BufferedReader.read(n) allocates n bytes before reading
_MAX_READ = 16 * MiB


# --- upload streams ---------------------------------------------------------------------------
def read_upto(stream: BinaryIO, n: int) -> bytes:
    """Up to `n` bytes, fewer only at the end of the stream (raw streams, pipes and sockets
    may return short reads)."""
    parts: list[bytes] = []
    left = n
    while left > 0:
        data = stream.read(min(left, _MAX_READ))
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def wrong_size(what: str, got: int, size: int, more: bool = False) -> Conflict:
    """The error for a stream that gave `got` bytes, not the `size` announced (`more`: it went
    on past them, and `got` is only where reading stopped): the source changed while it was
    sent, and the old version stays."""
    gave = (
        f"more than the {size} bytes announced"
        if more
        else f"{got} bytes, not the {size} announced"
    )
    return Conflict(f"{what}: the stream gave {gave} (did the source change?); nothing written")


def check_size(what: str, size: int | None, got: int, more: bool = False) -> None:
    """`wrong_size` unless `size` is None (not announced) or `got` is exactly it."""
    if size is not None and got != size:
        raise wrong_size(what, got, size, more)


class PrependedStream(io.RawIOBase):
    """`head` (bytes already read to choose how to upload), then the rest of `stream`: a
    read-only, non-seekable stream for an SDK's uploader. Reads are full (short only at the
    end: uploaders cut a part or chunk per read) and tell() counts what was read. With `size`,
    a stream that ends early or runs long raises `wrong_size` before the last part is sent, so
    the upload is never completed and the old version stays. `error` keeps what went wrong in
    here (the source's own error included), for the caller to raise as is when the SDK wraps
    it. With `md5`, `self.md5` hashes the bytes as they are read (uploaders read in order), so
    the digest is ready when the last part leaves, without a second pass over the data."""

    def __init__(
        self,
        head: bytes,
        stream: BinaryIO,
        size: int | None = None,
        what: str = "",
        md5: bool = False,
    ) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream
        self._size = size
        self._what = what
        self._pos = 0
        self.error: BaseException | None = None
        self.md5 = hashlib.md5() if md5 else None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = 1 << 62
        out = bytes(self._head[:n])
        self._head = self._head[len(out) :]
        if len(out) < n:
            try:
                out += read_upto(self._stream, n - len(out))
            except BaseException as exc:
                self.error = exc
                raise
        self._pos += len(out)
        if self.md5 is not None:
            self.md5.update(out)
        size = self._size
        if size is not None and (self._pos > size or (len(out) < n and self._pos != size)):
            self.error = wrong_size(self._what, self._pos, size, more=len(out) == n)
            raise self.error
        return out

    def blocks(self, size: int) -> Iterator[bytes]:
        """The stream cut into blocks of `size` bytes (the last may be shorter), to the end."""
        while block := self.read(size):
            yield block


# --- object stores ----------------------------------------------------------------------------
def split_root(
    name: str, root: str, container: str = "bucket", scheme: str = ""
) -> tuple[str, str]:
    """`container/some/prefix` → ("container", "some/prefix/"); ("container", "") for no prefix.
    Empty segments (`a//b`, a trailing `/`) are dropped; `scheme` (e.g. "s3://") may lead."""
    spec = root.strip().removeprefix(scheme) if scheme else root.strip()
    first, _, rest = spec.strip("/").partition("/")
    if not first:
        raise UsageError(
            f"{name}: root must be '{container}' or '{container}/prefix', got {root!r}"
        )
    prefix = "/".join(p for p in rest.split("/") if p)
    return first, f"{prefix}/" if prefix else ""


def bare_etag(text: str | None) -> str:
    """An ETag without quotes or weak marker: listings give it bare, HEAD answers quoted."""
    return (text or "").strip().removeprefix("W/").strip('"')


# --- mtimes in object metadata ------------------------------------------------------------------
# The key rclone keeps the original mtime in. Azure and GCS write it as RFC 3339 with
# nanoseconds (`format_rfc3339`), S3 as decimal seconds (see the s3 module).
META_MTIME = "mtime"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", re.I)


def datetime_ns(dt: datetime | None) -> int | None:
    """A service's timestamp (Last-Modified…) as ns since the epoch; naive ones are UTC."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


def format_rfc3339(ns: int) -> str:
    """ns → "2023-11-14T22:13:20.123456789Z", as rclone writes it."""
    sec, frac = divmod(ns, 1_000_000_000)
    return (_EPOCH + timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def parse_rfc3339(text: str) -> int | None:
    """Inverse of format_rfc3339 (any zone, any digits); None for anything else."""
    m = _RFC3339.match(text.strip())
    if not m:
        return None
    zone = "+00:00" if m.group(3).upper() == "Z" else m.group(3)
    dt = datetime.fromisoformat(m.group(1) + zone)
    frac = (m.group(2) or "")[:9].ljust(9, "0")
    return (dt - _EPOCH) // timedelta(seconds=1) * 1_000_000_000 + int(frac)


def rfc3339_meta_mtime(meta: Mapping[str, str] | None) -> int | None:
    """The mtime stored in metadata as RFC 3339; None when absent or unreadable."""
    text = (meta or {}).get(META_MTIME)
    return parse_rfc3339(text) if text else None


class ChunkReader(io.RawIOBase):
    """A readable, non-seekable file object over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")  # a view: handing out part of a chunk copies nothing

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def chunk_reader(chunks: Iterator[bytes]) -> io.BufferedReader:
    """A buffered file object over chunks: read_chunks of one provider → put_stream of another."""
    return io.BufferedReader(ChunkReader(chunks), buffer_size=1024 * 1024)


def walk_folders(
    top: str, children: Callable[[str], Iterable[RemoteStat]], recursive: bool
) -> Iterator[RemoteStat]:
    """A listing made one folder at a time (`children(folder)`), for services that list
    no deeper than that (WebDAV's Depth 1, Graph's children). NotFound for a `top` that is
    absent, but the root "" lists empty until it exists, and a folder removed while the
    walk goes on is skipped."""
    pending = [top]
    while pending:
        folder = pending.pop()
        try:
            for st in children(folder):
                yield st
                if recursive and st.kind == "dir":
                    pending.append(st.path)
        except NotFound:
            if folder == top and top != "":
                raise


def range_header(start: int, end: int | None) -> dict[str, str]:
    """The HTTP `Range` header for [start, end) (end exclusive, as `read_chunks` takes it);
    none for the whole file."""
    if start <= 0 and end is None:
        return {}
    return {"Range": f"bytes={start}-{'' if end is None else end - 1}"}
