"""A folder on this machine (or a mounted network drive)."""

from __future__ import annotations

import os
import shutil
import stat as statmod
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cdir.errors import (
    AlreadyExists,
    AuthError,
    ErrorRule,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
    translated,
)
from cdir.providers.base import CHUNK, TMP_PREFIX, Capabilities, OptionSpec, Provider, RemoteStat

ERRORS: list[ErrorRule] = [
    (lambda e: isinstance(e, FileNotFoundError), NotFound, None),
    (lambda e: isinstance(e, FileExistsError), AlreadyExists, None),
    (lambda e: isinstance(e, IsADirectoryError), IsADirectory, None),
    (lambda e: isinstance(e, NotADirectoryError), NotADirectory, None),
    (lambda e: isinstance(e, PermissionError), AuthError, None),
    (lambda e: isinstance(e, OSError), ProviderError, False),
]


class LocalProvider(Provider):
    kind = "local"
    capabilities = Capabilities(
        empty_dirs=True,
        set_mtime=True,
        mtime_precision_ns=1,
        server_side_copy=True,
        server_side_move=True,
    )
    options = (OptionSpec("root", "directory that holds the files", required=True),)

    def __init__(self, name, root, options=None, secrets=None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(name, root, options, secrets)
        self.base = Path(root).expanduser().absolute()

    def _p(self, path: str) -> Path:
        return self.base / path if path else self.base

    def _what(self, path: str) -> str:
        return f"{self.name}:/{path}"

    @staticmethod
    def _stat(rel: str, st: os.stat_result) -> RemoteStat:
        if statmod.S_ISDIR(st.st_mode):
            return RemoteStat(rel, "dir", 0, st.st_mtime_ns, "")
        return RemoteStat(rel, "file", st.st_size, st.st_mtime_ns, f"{st.st_size}:{st.st_mtime_ns}")

    def list(self, path: str = "", recursive: bool = False) -> Iterator[RemoteStat]:
        top = self._p(path)
        with translated(ERRORS, self._what(path)):
            if not top.is_dir():
                if path == "" and not top.exists():
                    return
                raise (NotADirectory if top.exists() else NotFound)(
                    f"{self._what(path)}: not a directory" if top.exists() else
                    f"{self._what(path)}: no such directory"
                )
        stack = [path]
        while stack:
            rel_dir = stack.pop()
            with translated(ERRORS, self._what(rel_dir)), os.scandir(self._p(rel_dir)) as it:
                for de in it:
                    if de.name.startswith(TMP_PREFIX):
                        continue  # an upload in flight
                    rel = f"{rel_dir}/{de.name}" if rel_dir else de.name
                    try:
                        st = de.stat()
                    except FileNotFoundError:
                        continue  # removed while listing
                    item = self._stat(rel, st)
                    yield item
                    if recursive and item.kind == "dir":
                        stack.append(rel)

    def stat(self, path: str) -> RemoteStat:
        with translated(ERRORS, self._what(path)):
            return self._stat(path, os.stat(self._p(path)))

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with translated(ERRORS, self._what(path)):
            f = open(self._p(path), "rb")  # noqa: SIM115 - closed by the generator
        with f:
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
            _atomic_copy(src, local)

    def mkdir(self, path: str) -> None:
        with translated(ERRORS, self._what(path)):
            self._p(path).mkdir(parents=True, exist_ok=True)

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        dst = self._p(path)
        with translated(ERRORS, self._what(path)):
            if dst.is_dir():
                raise IsADirectory(f"{self._what(path)}: is a directory")
            dst.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=TMP_PREFIX)
            try:
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(stream, out, CHUNK)
                if mtime_ns is not None:
                    os.utime(tmp, ns=(mtime_ns, mtime_ns))
                os.replace(tmp, dst)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return self._stat(path, os.stat(dst))

    def put_file(self, local: Path, path: str, mtime_ns: int | None = None) -> RemoteStat:
        dst = self._p(path)
        with translated(ERRORS, self._what(path)):
            if dst.is_dir():
                raise IsADirectory(f"{self._what(path)}: is a directory")
            _atomic_copy(Path(local), dst, mtime_ns)
            return self._stat(path, os.stat(dst))

    def delete(self, path: str) -> None:
        with translated(ERRORS, self._what(path)):
            p = self._p(path)
            if p.is_dir():
                raise IsADirectory(f"{self._what(path)}: is a directory")
            p.unlink()

    def delete_tree(self, path: str) -> None:
        p = self._p(path)
        with translated(ERRORS, self._what(path)):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists():
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
            _atomic_copy(s, self._p(dst), os.stat(s).st_mtime_ns)
            return self.stat(dst)

    def move(self, src: str, dst: str) -> RemoteStat:
        with translated(ERRORS, self._what(src)):
            s, d = self._p(src), self._p(dst)
            if not s.exists():
                raise NotFound(f"{self._what(src)}: not found")
            d.parent.mkdir(parents=True, exist_ok=True)
            os.replace(s, d)
            return self.stat(dst)

    def check(self) -> None:
        with translated(ERRORS, self._what("")):
            if not self.base.is_dir():
                raise NotFound(f"{self.name}: root {self.base} is not a directory")
            if not os.access(self.base, os.W_OK):
                raise AuthError(f"{self.name}: root {self.base} is not writable")


def _atomic_copy(src: Path, dst: Path, mtime_ns: int | None = None) -> None:
    """copyfile (sendfile/copy_file_range in the kernel) to a temp name, then rename."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=TMP_PREFIX)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
