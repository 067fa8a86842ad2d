"""A folder on this machine (or a mounted network drive)."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat as statmod
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from cdir.errors import (
    AlreadyExists,
    AuthError,
    ErrorRule,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
    Unavailable,
    translate,
    translated,
)
from cdir.providers.base import (
    CHUNK,
    TMP_PREFIX,
    Capabilities,
    Provider,
    RemoteStat,
    atomic_write,
    create_temp,
    reap,
)
from cdir.providers.common import check_size
from cdir.providers.options import OptionSpec

ERRORS: list[ErrorRule] = [
    (lambda e: isinstance(e, FileNotFoundError), NotFound, None),
    (lambda e: isinstance(e, FileExistsError), AlreadyExists, None),
    (lambda e: isinstance(e, IsADirectoryError), IsADirectory, None),
    (lambda e: isinstance(e, NotADirectoryError), NotADirectory, None),
    (lambda e: isinstance(e, PermissionError), AuthError, None),
    (lambda e: isinstance(e, OSError), ProviderError, False),
]

# One directory's entries, each with a (dev, ino) key when it is a directory. An alias, as
# `list` inside the class body names the method.
_Page = list[tuple[RemoteStat, tuple[int, int] | None]]
_Temps = list[tuple[str, float | None]]  # (name, mtime in seconds) of uploads in flight

# Characters Windows reads as drive or separator: a path holding them could leave the root.
_UNSAFE = ("\0", ":", "\\") if os.name == "nt" else ("\0",)


class _Landing:
    """A write in progress: the temporary's fd, then the stat of what landed."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.st: os.stat_result | None = None

    @property
    def landed(self) -> os.stat_result:
        assert self.st is not None, "read after the write's block ended"
        return self.st


class LocalProvider(Provider):
    kind = "local"
    capabilities = Capabilities(
        empty_dirs=True,
        set_mtime=True,
        mtime_precision_ns=1,
        server_side_copy=True,
        server_side_move=True,
        # measured: from Python, several threads copying small files contend for the GIL and
        # are slower than one; a network mount may want more (option max_parallel)
        max_parallel=1,
        local_folder=True,
        temporaries=True,
    )
    options = (
        OptionSpec("root", "directory that holds the files", required=True),
        OptionSpec(
            "max_parallel",
            "transfers at once (raise it for a network mount)",
            "int",
            default=1,
            minimum=1,
        ),
    )

    def configure(self) -> None:
        self.base = Path(self.root).expanduser().absolute()
        self.root = str(self.base)
        width = self.conf["max_parallel"]
        if width != self.capabilities.max_parallel:
            self.capabilities = replace(self.capabilities, max_parallel=width)

    def _p(self, path: str) -> Path:
        # The last line of defence: "/etc/x" or "../x" joined to the root would leave it.
        if not path:
            return self.base
        if (
            path.startswith("/")
            or any(seg in ("", ".", "..") for seg in path.split("/"))
            or any(ch in path for ch in _UNSAFE)
        ):
            raise InvalidPath(f"{self._what(path)}: not a clean path relative to the root")
        return self.base / path

    @staticmethod
    def _stat(
        rel: str, st: os.stat_result, ino: int | None = None, md5: str | None = None
    ) -> RemoteStat:
        """`md5`: of the bytes just written (a write hashes them on the way)."""
        if statmod.S_ISDIR(st.st_mode):
            return RemoteStat(rel, "dir", 0, st.st_mtime_ns, "")
        # size:mtime alone misses a same-size rewrite within one tick of the kernel's coarse
        # clock, or one that keeps the mtime. An atomic write makes a new inode and any change
        # sets ctime, so ino+ctime catch those (a chmod also changes ctime: a harmless re-check).
        fp = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{ino or st.st_ino}"
        return RemoteStat(rel, "file", st.st_size, st.st_mtime_ns, fp, {"md5": md5} if md5 else {})

    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        what = self._what(path)
        with translated(ERRORS, what):
            try:
                top = os.stat(self._p(path))
            except FileNotFoundError:
                if path == "":
                    return  # a root not created yet holds nothing
                raise NotFound(f"{what}: no such directory") from None
            if not statmod.S_ISDIR(top.st_mode):
                raise NotADirectory(f"{what}: not a directory")
        seen = {(top.st_dev, top.st_ino)}  # directories entered, so symlink loops end
        stack = [path]
        while stack:
            rel_dir = stack.pop()
            try:
                page = self._scan(rel_dir)
            except FileNotFoundError:
                if rel_dir == path:
                    raise NotFound(f"{what}: no such directory") from None
                continue  # a subdirectory removed while listing
            except OSError as exc:
                raise translate(exc, ERRORS, self._what(rel_dir)) from exc
            for item, key in page:
                yield item
                if recursive and key is not None and key not in seen:
                    seen.add(key)
                    stack.append(item.path)

    def _scan(self, rel_dir: str) -> _Page:
        """One directory's entries (a page), with a (dev, ino) key for each subdirectory."""
        out: _Page = []
        with os.scandir(self._p(rel_dir)) as it:
            for de in it:
                if de.name.startswith(TMP_PREFIX):
                    continue  # an upload in flight
                rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                try:
                    st = de.stat()
                    # On Windows DirEntry.stat() leaves st_ino 0; inode() fetches the real one.
                    ino = st.st_ino or de.inode()
                except FileNotFoundError:
                    continue  # removed while listing, or a dangling symlink
                item = self._stat(rel, st, ino)
                out.append((item, (st.st_dev, ino) if item.kind == "dir" else None))
        return out

    @contextmanager
    def _replacing(self, dst: Path, mtime_ns: int | None) -> Iterator[_Landing]:
        """A temporary file beside `dst` for the block to fill (`.fd`); then given `mtime_ns`
        and renamed onto `dst` (`.st` is then the stat of what landed), or removed if the
        block fails. Missing parents are made, but never the root itself: a root that
        vanished (an unmounted disk) is a fault, not a folder to recreate on the wrong disk."""
        fd, tmp = self._temp_in(dst.parent)
        landing = _Landing(fd)
        try:
            try:
                yield landing
                if mtime_ns is not None:
                    os.utime(fd, ns=(mtime_ns, mtime_ns))
                ours = os.fstat(fd)
            finally:
                os.close(fd)
            os.replace(tmp, dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        # the path's stat (a rename may change ctime), unless another writer of the same
        # path renamed its own file over ours meanwhile: then what we wrote is `ours`
        now = os.stat(dst)
        landing.st = now if now.st_ino == ours.st_ino else ours

    def _temp_in(self, folder: Path) -> tuple[int, Path]:
        try:
            return create_temp(folder)  # the common case: the folder exists, one syscall
        except FileNotFoundError:
            self._check_root()
            folder.mkdir(parents=True, exist_ok=True)
            return create_temp(folder)
        except NotADirectoryError:
            self._check_root()  # a file where the root was: say so, not "…/.cdir-tmp-…"
            raise

    def _check_root(self) -> None:
        if self.base.is_dir():
            return
        if os.path.lexists(self.base):
            raise Unavailable(
                f"{self.name}: root {self.base} is not a directory; not replaced — "
                "move what is there, or re-add the provider"
            )
        raise Unavailable(
            f"{self.name}: root {self.base} is missing (an unmounted disk?); "
            "not recreated — mount it, or re-add the provider"
        )

    def stat(self, path: str) -> RemoteStat:
        with translated(ERRORS, self._what(path)):
            return self._stat(path, os.stat(self._p(path)))

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with translated(ERRORS, self._what(path)), open(self._p(path), "rb") as f:
            f.seek(start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                chunk = f.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    break
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def get_file(self, path: str, local: Path) -> None:
        with translated(ERRORS, self._what(path)):
            src = self._p(path)
            if src.is_dir():
                raise IsADirectory(f"{self._what(path)}: is a directory")
            _atomic_copy(src, Path(local))

    def mkdir(self, path: str) -> None:
        with translated(ERRORS, self._what(path)):
            self._p(path).mkdir(parents=True, exist_ok=True)

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        what = self._what(path)
        with translated(ERRORS, what):
            dst = self._p(path)
            if dst.is_dir():
                raise IsADirectory(f"{what}: is a directory")
            with self._replacing(dst, mtime_ns) as w:
                md5, written = _copy_hashed(_stream_reader(stream), w.fd)
                check_size(what, size, written)  # the source changed: the old file stays
            return self._stat(path, w.landed, md5=md5)

    def put_file(self, local: Path, path: str, mtime_ns: int | None = None) -> RemoteStat:
        """Copied through Python so it is hashed on the way (`_copy_hashed`); it was a
        kernel copy (sendfile) that hashed nothing. Measured on the 2-core test machine,
        the provider alone, medians, before → now: 5,000 files of 4 KiB 79 → 92 µs a file
        on ext4 (52 → 63 µs on tmpfs; MD5 itself is 6 µs of that); one 256 MiB file 0.06 →
        0.5-0.7 s on ext4 (not yet written back) and 0.11 → 0.38 s on tmpfs, where MD5 alone
        takes 0.35 s (~725 MiB/s) and the copy hides behind it (0.50 s without the helper
        thread of `_pipelined`). put_stream of that file: 0.13 → 0.39 s on tmpfs."""
        with translated(ERRORS, self._what(path)):
            dst = self._p(path)
            if dst.is_dir():
                raise IsADirectory(f"{self._what(path)}: is a directory")
            with self._replacing(dst, mtime_ns) as w, open(local, "rb", buffering=0) as src:
                md5, _ = _copy_hashed(_file_reader(src.fileno()), w.fd)
            return self._stat(path, w.landed, md5=md5)

    def delete(self, path: str) -> None:
        with translated(ERRORS, self._what(path)):
            p = self._p(path)
            if p.is_dir():
                raise IsADirectory(f"{self._what(path)}: is a directory")
            p.unlink()

    def delete_tree(self, path: str) -> None:
        with translated(ERRORS, self._what(path)):
            p = self._p(path)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif os.path.lexists(p):  # a file, or a symlink (even a dangling one)
                p.unlink()

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        with translated(ERRORS, self._what(path)):
            os.utime(self._p(path), ns=(mtime_ns, mtime_ns))
            return self.stat(path)

    def copy(self, src: str, dst: str) -> RemoteStat:
        with translated(ERRORS, self._what(src)):
            s = self._p(src)
            if s.is_dir():
                raise IsADirectory(f"{self._what(src)}: is a directory")
            with self._replacing(self._p(dst), os.stat(s).st_mtime_ns) as w, open(s, "rb") as f:
                _send(f.fileno(), w.fd)
            return self._stat(dst, w.landed)

    def move(self, src: str, dst: str) -> RemoteStat:
        with translated(ERRORS, self._what(src)):
            s, d = self._p(src), self._p(dst)
            if not s.exists():
                raise NotFound(f"{self._what(src)}: not found")
            d.parent.mkdir(parents=True, exist_ok=True)
            os.replace(s, d)
            return self.stat(dst)

    def reap_temporaries(self, folders: Iterable[str]) -> int:
        return reap(
            folders, self._temporaries, lambda folder, name: os.unlink(self._p(folder) / name)
        )

    def _temporaries(self, folder: str) -> _Temps:
        found: _Temps = []
        with os.scandir(self._p(folder)) as it:
            for de in it:
                if de.name.startswith(TMP_PREFIX):
                    try:
                        found.append((de.name, de.stat(follow_symlinks=False).st_mtime))
                    except FileNotFoundError:
                        continue  # renamed into place meanwhile
        return found

    def create_root(self) -> None:
        with translated(ERRORS, self._what("")):
            self.base.mkdir(parents=True, exist_ok=True)

    def check(self) -> None:
        with translated(ERRORS, self._what("")):
            if not self.base.is_dir():
                raise NotFound(f"{self.name}: root {self.base} is not a directory")
            if not os.access(self.base, os.W_OK):
                raise AuthError(f"{self.name}: root {self.base} is not writable")


# A source that has given this much goes on in `_pipelined` (a thread is worth it there).
PIPELINE_AFTER = 4 * CHUNK
# A chunk of a source: read(i) gives the next bytes (in this thread's buffer i, 0 or 1, for
# a file; a fresh bytes object for a stream), empty at the end.
_Read = Callable[[int], memoryview | bytes]
_buffers = threading.local()  # copy buffers per thread, reused: no allocation per file


def _buffer(i: int) -> bytearray:
    bufs = getattr(_buffers, "bufs", None)
    if bufs is None:
        bufs = _buffers.bufs = (bytearray(CHUNK), bytearray(CHUNK))
    return bufs[i]


def _file_reader(src: int) -> _Read:
    return lambda i: memoryview(_buffer(i))[: os.readv(src, [_buffer(i)])]


def _stream_reader(stream: BinaryIO) -> _Read:
    # to EOF, accepting the short reads of raw (socket, pipe) streams
    return lambda _: stream.read(CHUNK) or b""


def _write_all(fd: int, data: memoryview | bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_hashed(read: _Read, dst: int) -> tuple[str, int]:
    """Copy the source to `dst`; the MD5 of the bytes, hashed while they pass through memory
    (one pass), and their count. A big source goes on in `_pipelined`. What it costs:
    `LocalProvider.put_file`."""
    md5 = hashlib.md5(usedforsecurity=False)
    total = 0
    while part := read(0):
        if total >= PIPELINE_AFTER:
            return _pipelined(read, dst, md5, part, total)
        md5.update(part)
        _write_all(dst, part)
        total += len(part)
    return md5.hexdigest(), total


def _pipelined(
    read: _Read, dst: int, md5: hashlib._Hash, part: memoryview | bytes, total: int
) -> tuple[str, int]:
    """The rest of a big source: a helper thread hashes one chunk while this thread writes
    it and reads the next into the other buffer (hashlib lets go of the GIL), so the copy
    hides behind MD5, the slower of the two (~720 MiB/s here)."""
    i = 0
    with ThreadPoolExecutor(1, thread_name_prefix="cdir-md5") as hasher:
        while part:
            hashing = hasher.submit(md5.update, part)
            _write_all(dst, part)
            total += len(part)
            i ^= 1  # the other buffer: its hash was waited for in the last round
            nxt = read(i)
            hashing.result()
            part = nxt
    return md5.hexdigest(), total


def _atomic_copy(src: Path, dst: Path, mtime_ns: int | None = None) -> None:
    """A download to a local path outside any provider: temp name, copy, rename."""
    with atomic_write(dst, mtime_ns) as (fd, _), open(src, "rb", buffering=0) as f:
        try:
            _send(f.fileno(), fd)
        finally:
            os.close(fd)


def _send(src: int, dst: int) -> None:
    """Copy in the kernel (sendfile) where it can; read/write otherwise. Leaner than
    shutil.copyfile, whose four extra stat calls per file cost as much as the copy of a
    4 KiB file (measured)."""
    if hasattr(os, "sendfile"):
        try:
            while os.sendfile(dst, src, None, 1 << 30):
                pass
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
                raise
    while chunk := os.read(src, CHUNK):
        os.write(dst, chunk)
