"""A tree of files held in this process's memory, for tests and experiments.

The first segment of `root` names a *store*, the rest is a directory in it: providers made with
the same store name in one process share one tree (roots `lab` and `lab/sub` see the same
files, the second below `sub/`). `MemoryProvider.reset()` forgets the stores. Every operation
holds its store's lock while it reads or changes the tree, so several threads may call it.
Files are immutable `bytes` replaced whole: a reader sees the old version or the new one, and
a move (of a file or a directory) is atomic. Each store logs what every write changed, for
`changes` (a change feed like the drives' ones; the cursor is a position in that log).
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO, ClassVar

from cdir.errors import (
    AlreadyExists,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotFound,
    UsageError,
)
from cdir.providers.base import (
    CHUNK,
    TMP_PREFIX,
    Capabilities,
    ChangeBatch,
    Provider,
    RemoteStat,
)
from cdir.providers.common import check_size, read_upto
from cdir.providers.options import OptionSpec


@dataclass(frozen=True)
class _File:
    data: bytes
    mtime_ns: int
    md5: str
    serial: int  # the store's write counter when written: the fingerprint changes every write


@dataclass
class _Dir:
    mtime_ns: int
    children: dict[str, _Dir | _File] = field(default_factory=dict)


@dataclass
class _Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    top: _Dir = field(default_factory=lambda: _Dir(time.time_ns()))
    serials: Iterator[int] = field(default_factory=itertools.count)
    # (path segments, deleted?) per write; log[0] is change number `first`
    log: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)
    first: int = 0

    def record(self, segs: list[str], deleted: bool = False) -> None:
        self.log.append((tuple(segs), deleted))
        if len(self.log) > LOG_MAX:  # the oldest cursors expire, as on the drives
            del self.log[: LOG_MAX // 2]
            self.first += LOG_MAX // 2


LOG_MAX = 100_000  # changes a store remembers
_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


class MemoryProvider(Provider):
    """Files in memory; `root` is `store` or `store/some/dir`."""

    kind = "memory"
    # and the defaults: empty dirs, exact mtimes that can be set, names up to 255 bytes (enforced)
    capabilities = Capabilities(
        hash_kinds=frozenset({"md5"}),  # computed once per write: it costs nothing
        server_side_copy=True,
        server_side_move=True,
        changes=True,
    )
    options: ClassVar[tuple[OptionSpec, ...]] = (
        OptionSpec("root", "a store name, or store/dir: 'lab', 'lab/sub'"),
    )

    def configure(self) -> None:
        store, *prefix = self.root.strip("/").split("/")
        self._prefix = [s for s in prefix if s]
        with _STORES_LOCK:
            self._store = _STORES.setdefault(store, _Store())

    @classmethod
    def reset(cls, store: str | None = None) -> None:
        """Forget one store (by name), or all of them: providers opened afterwards start empty."""
        with _STORES_LOCK:
            if store is None:
                _STORES.clear()
            else:
                _STORES.pop(store, None)

    # --- the tree (callers hold the store's lock) -------------------------------------------
    def _segs(self, path: str) -> list[str]:
        if not path:
            return list(self._prefix)
        segs = path.split("/")
        if path.startswith("/") or any(s in ("", ".", "..") or "\0" in s for s in segs):
            raise InvalidPath(f"{self._what(path)}: not a clean path relative to the root")
        if any(len(s.encode()) > self.capabilities.max_name_bytes for s in segs):
            raise InvalidPath(f"{self._what(path)}: a name is longer than 255 bytes")
        return self._prefix + segs

    def _find(self, segs: list[str]) -> _Dir | _File | None:
        node: _Dir | _File = self._store.top
        for seg in segs:
            if not isinstance(node, _Dir) or seg not in node.children:
                return None
            node = node.children[seg]
        return node

    def _node(self, path: str) -> _Dir | _File:
        node = self._find(self._segs(path))
        if node is None:
            if not path:  # the root always exists, empty until something is written
                return _Dir(0)
            raise NotFound(f"{self._what(path)}: not found")
        return node

    def _file(self, path: str) -> _File:
        node = self._node(path)
        if isinstance(node, _Dir):
            raise IsADirectory(f"{self._what(path)}: is a directory")
        return node

    def _makedirs(self, path: str, segs: list[str]) -> _Dir:
        """The directory at `segs`, made with its parents where missing."""
        node = self._store.top
        for depth, seg in enumerate(segs, 1):
            child = node.children.get(seg)
            if child is None:
                child = node.children[seg] = _Dir(time.time_ns())
                self._store.record(segs[:depth])
            elif isinstance(child, _File):
                raise NotADirectory(f"{self._what(path)}: a file is in the way")
            node = child
        return node

    def _place(self, path: str, make: _File | _Dir) -> RemoteStat:
        """Put `make` at `path`, replacing a file there (never a directory); its stat."""
        if not path:
            raise IsADirectory(f"{self._what(path)}: is a directory")
        *parents, name = self._segs(path)
        parent = self._makedirs(path, parents)
        if isinstance(parent.children.get(name), _Dir):
            raise IsADirectory(f"{self._what(path)}: is a directory")
        parent.children[name] = make
        self._store.record([*parents, name])
        return self._stat(path, make)

    def _detach(self, path: str) -> None:
        """Take what is at `path` (which exists) out of its directory."""
        *parents, name = self._segs(path)
        parent = self._find(parents)
        assert isinstance(parent, _Dir)
        del parent.children[name]
        self._store.record([*parents, name], deleted=True)

    def _new(self, data: bytes, md5: str, mtime_ns: int | None) -> _File:
        mtime_ns = time.time_ns() if mtime_ns is None else mtime_ns
        return _File(data, mtime_ns, md5, next(self._store.serials))

    @staticmethod
    def _stat(path: str, node: _Dir | _File) -> RemoteStat:
        if isinstance(node, _Dir):
            return RemoteStat(path, "dir", 0, node.mtime_ns)
        size, mtime = len(node.data), node.mtime_ns
        fingerprint = f"{size}:{mtime}:{node.serial}"
        return RemoteStat(path, "file", size, mtime, fingerprint, {"md5": node.md5})

    # --- reading ------------------------------------------------------------------------------
    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        with self._store.lock:  # a snapshot: later changes do not show in this listing
            top = self._node(path)
            if isinstance(top, _File):
                raise NotADirectory(f"{self._what(path)}: not a directory")
            out: list[RemoteStat] = []
            stack = [(path, top)]
            while stack:
                rel, node = stack.pop()
                for name, child in node.children.items():
                    if name.startswith(TMP_PREFIX):
                        continue
                    sub = f"{rel}/{name}" if rel else name
                    out.append(self._stat(sub, child))
                    if recursive and isinstance(child, _Dir):
                        stack.append((sub, child))
        yield from out

    def stat(self, path: str) -> RemoteStat:
        with self._store.lock:
            return self._stat(path, self._node(path))

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with self._store.lock:
            data = memoryview(self._file(path).data)[start:end]
        for pos in range(0, len(data), CHUNK):
            yield bytes(data[pos : pos + CHUNK])

    def changes(self, cursor: str | None) -> ChangeBatch:
        """What writes (through any provider on this store) did below the root since
        `cursor`: one entry per path, its last change deciding changed or deleted (a moved
        directory is one entry, not one per file in it)."""
        with self._store.lock:
            end = self._store.first + len(self._store.log)
            if cursor is None:
                return ChangeBatch(str(end))
            start = int(cursor) if cursor.isdigit() else -1
            if not self._store.first <= start <= end:
                return ChangeBatch(str(end), reset=True)
            todo = self._store.log[start - self._store.first :]
        n, last = len(self._prefix), {}
        for segs, deleted in todo:
            if len(segs) <= n and tuple(self._prefix[: len(segs)]) == segs:
                if deleted:  # the root itself went
                    return ChangeBatch(str(end), reset=True)
            elif list(segs[:n]) == self._prefix:
                last["/".join(segs[n:])] = deleted
        changed = tuple(p for p, gone in last.items() if not gone)
        return ChangeBatch(str(end), changed, tuple(p for p, gone in last.items() if gone))

    # --- writing ------------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        with self._store.lock:
            self._makedirs(path, self._segs(path))

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        self._segs(path)  # a bad path is refused before the stream is read
        # one byte more than announced: a stream that runs long is refused
        data = read_upto(stream, sys.maxsize if size is None else size + 1)
        check_size(self._what(path), size, len(data), more=size is not None and len(data) > size)
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        with self._store.lock:  # nothing changes before the whole stream is read
            return self._place(path, self._new(data, md5, mtime_ns))

    def delete(self, path: str) -> None:
        with self._store.lock:
            self._file(path)
            self._detach(path)

    def delete_tree(self, path: str) -> None:
        with self._store.lock:
            node = self._find(self._segs(path))
            if isinstance(node, _Dir) and not path:
                for name in list(node.children):  # the root stays; what is in it goes
                    self._detach(name)
            elif node is not None:
                self._detach(path)

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        with self._store.lock:
            node = self._node(path)
            if isinstance(node, _Dir):
                node.mtime_ns = mtime_ns
                return self._stat(path, node)
            serial = next(self._store.serials)  # a new fingerprint, as a changed mtime shows
            return self._place(path, replace(node, mtime_ns=mtime_ns, serial=serial))

    def copy(self, src: str, dst: str) -> RemoteStat:
        with self._store.lock:
            old = self._file(src)
            return self._place(dst, self._new(old.data, old.md5, old.mtime_ns))

    def move(self, src: str, dst: str) -> RemoteStat:
        with self._store.lock:
            node = self._node(src)
            s, d = self._segs(src), self._segs(dst)
            if not src or not dst:
                raise UsageError(f"{self._what(src)}: cannot move the root or onto it")
            if d == s:
                return self._stat(dst, node)
            if isinstance(node, _Dir):
                if d[: len(s)] == s:
                    raise InvalidPath(f"{self._what(dst)}: cannot move a directory into itself")
                if self._find(d) is not None:
                    raise AlreadyExists(f"{self._what(dst)}: already exists")
            moved = self._place(dst, node)
            self._detach(src)
            return moved
