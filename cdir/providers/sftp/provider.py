"""`SFTPProvider`: the provider interface over the pieces of this package."""

from __future__ import annotations

import posixpath
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import asyncssh

from cdir.errors import (
    CdirError,
    IsADirectory,
    NotADirectory,
    NotFound,
    Unavailable,
    UsageError,
    translated,
)
from cdir.providers.base import Capabilities, Provider, RemoteStat, reap, temp_name
from cdir.providers.options import OptionSpec
from cdir.providers.sftp import transfer, tree
from cdir.providers.sftp.connection import Conn, Login, connect, load_key
from cdir.providers.sftp.errors import ERRORS
from cdir.providers.sftp.hostkeys import fetch_host_key, parse_pin, show_host_key
from cdir.providers.sftp.pool import Pool

T = TypeVar("T")
Listing = list[tuple[RemoteStat, str | None]]


class SFTPProvider(Provider):
    """Files in a directory on an SSH server, over SFTP.

    `root` is that directory: absolute, or relative to the login directory. Authentication by
    private key (`private_key` text or `key_file`) and/or `password`. The server's host key must
    match the pinned `host_key` fingerprint; `fetch_host_key()` reads it for pinning. Listings
    need no paging option: the server sends a directory in pages of its own (OpenSSH: 100 names).
    """

    kind = "sftp"
    capabilities = Capabilities(
        empty_dirs=True,
        set_mtime=True,
        # SFTP v3 carries mtimes as whole seconds
        mtime_precision_ns=1_000_000_000,
        # v3 has no hash request; OpenSSH offers no hashing extension (rclone runs md5sum
        # in a shell instead, one command per file, which is what makes it slow)
        hash_kinds=frozenset(),
        case_sensitive=True,
        range_reads=True,
        # no copy request in v3 (only the rare copy-data extension): callers stream instead
        server_side_copy=False,
        server_side_move=True,  # posix-rename@openssh.com
        max_name_bytes=255,
        temporaries=True,  # uploads go to a hidden name, then are renamed
    )
    options = (
        OptionSpec(
            "root", "remote directory: absolute, or relative to the login directory", required=True
        ),
        OptionSpec("host", "SSH server name or address", required=True),
        OptionSpec("port", "SSH port", "int", default=22, minimum=1),
        OptionSpec("username", "login name", required=True),
        OptionSpec(
            "host_key",
            "pinned host key fingerprint, e.g. 'ssh-ed25519 SHA256:…' "
            "(`cdir provider add` shows it)",
        ),
        OptionSpec("key_file", "path of a private key file on this machine"),
        OptionSpec("connections", "most SSH connections open at once", "int", default=8, minimum=1),
        OptionSpec("timeout", "seconds to wait for the server", "float", default=30.0, minimum=1),
        OptionSpec("password", "login password", secret=True),
        OptionSpec("private_key", "private key text (OpenSSH or PEM)", secret=True),
        OptionSpec("key_passphrase", "passphrase of the private key", secret=True),
    )

    def configure(self) -> None:
        conf = self.conf
        for required in ("host", "username"):
            if not conf[required]:
                raise UsageError(f"{self.name}: option '{required}' is required")
        self.host: str = conf["host"]
        self.port: int = conf["port"]
        self.username: str = conf["username"]
        self.timeout: float = conf["timeout"]
        self._pin = parse_pin(conf["host_key"]) if conf["host_key"] else None
        r = self.root.rstrip("/") if self.root not in ("", "/") else self.root
        self._root = r or "."
        self._login: Login | None = None
        self._login_lock = threading.Lock()
        self._pool = Pool(self._connect, conf["connections"])

    # --- connections ----------------------------------------------------------------------------
    def _server(self) -> str:
        return f"{self.name}: {self.username}@{self.host}:{self.port}"

    def _private_key(self) -> asyncssh.SSHKey | None:
        text, path = self.conf["private_key"], self.conf["key_file"]
        if not text and not path:
            return None
        if not text:
            try:
                text = Path(path).expanduser().read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(
                    f"{self.name}: key_file {path}: cannot read it ({type(exc).__name__})"
                ) from None
        return load_key(text, self.conf["key_passphrase"], self.name)

    def _credentials(self) -> Login:
        """Who logs in, and how; the private key is read once."""
        with self._login_lock:
            if self._login is None:
                key, password = self._private_key(), self.conf["password"]
                if key is None and not password:
                    raise UsageError(f"{self.name}: give a password, private_key or key_file")
                self._login = Login(
                    self.name, self.host, self.port, self.username, self.timeout, self._pin,
                    key, password,
                )  # fmt: skip
            return self._login

    def _connect(self) -> Conn:
        with translated(ERRORS, self._server()):
            return connect(self._credentials())

    @contextmanager
    def _conn(self, path: str) -> Iterator[Conn]:
        """A pooled connection, with SDK errors translated for `path`."""
        conn, generation = self._pool.borrow()
        broken = True
        try:
            with translated(ERRORS, self._what(path)):
                yield conn
            broken = False
        except Unavailable:
            raise  # timeout or dropped session: replies may be half read
        except (CdirError, GeneratorExit):
            # an SFTP error reply, or a reader that stopped early, leaves it usable
            broken = not conn.alive()
            raise
        finally:
            self._pool.give_back(conn, generation, broken)

    def _run(
        self, path: str, work: Callable[[Conn], Coroutine[Any, Any, T]], paced: bool = False
    ) -> T:
        """`work` on a pooled connection, run on the event loop (`paced`: work that keeps its
        own timeout, `tree.paced`)."""
        with self._conn(path) as c:
            return c.run_paced(work(c)) if paced else c.run(work(c))

    def close(self) -> None:
        self._pool.close()

    # --- paths ----------------------------------------------------------------------------------
    def _full(self, path: str) -> str:
        if not path:
            return self._root
        return f"/{path}" if self._root == "/" else f"{self._root}/{path}"

    @staticmethod
    def _stat(rel: str, a: asyncssh.SFTPAttrs, md5: str | None = None) -> RemoteStat:
        """`md5`: of the bytes just written (an upload hashes them on the way)."""
        mtime = None if a.mtime is None else int(a.mtime) * 1_000_000_000
        if tree.is_dir(a):
            return RemoteStat(rel, "dir", 0, mtime, "")
        size = int(a.size or 0)
        return RemoteStat(rel, "file", size, mtime, f"{size}:{mtime}", {"md5": md5} if md5 else {})

    # --- reading --------------------------------------------------------------------------------
    def _list_dir(self, rel: str, top: bool) -> Listing | None:
        """One directory on a borrowed connection, handed back before anything is yielded, so a
        slow consumer never holds one. None when it is absent and that is no error."""
        full, what = self._full(rel), self._what(rel)

        async def work(c: Conn) -> Listing | None:
            try:
                found = await tree.listdir(c, full, rel)
            except asyncssh.SFTPNoSuchFile:
                if not top or rel == "":
                    return None  # removed while listing; or a root that holds nothing yet
                # OpenSSH reports "not a directory" as "no such file"
                async with tree.paced(c):
                    there = await tree.exists(c, full)
                if there:
                    raise NotADirectory(f"{what}: not a directory") from None
                raise NotFound(f"{what}: no such directory") from None
            return [(self._stat(child, a), real) for child, a, real in found]

        return self._run(rel, work, paced=True)

    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        entries = self._list_dir(path, top=True)
        if entries is None:
            return
        if not recursive:
            for st, _ in entries:
                yield st
            return
        # Subdirectories are read by several connections at once (a round trip or three
        # each, which adds up over a WAN); each real directory is entered once.
        real = self._run(path, lambda c: tree.realpath(c, self._full(path)))
        seen = {real}
        workers = ThreadPoolExecutor(self._pool.size, thread_name_prefix=f"cdir-sftp-{self.name}")
        pending: deque[tuple[Future[Listing | None], str]] = deque()
        try:
            batch: Listing | None = entries
            while True:
                for st, target in batch or ():
                    yield st
                    if st.kind == "dir":
                        where = target or posixpath.join(real, st.name)
                        if where not in seen:
                            seen.add(where)
                            pending.append((workers.submit(self._list_dir, st.path, False), where))
                if not pending:
                    break
                future, real = pending.popleft()
                batch = future.result()
        finally:
            workers.shutdown(wait=False, cancel_futures=True)

    def stat(self, path: str) -> RemoteStat:
        return self._stat(path, self._run(path, lambda c: c.sftp.stat(self._full(path))))

    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with self._conn(path) as c:
            yield from transfer.read(c, self._full(path), self._what(path), start, end)

    # --- writing --------------------------------------------------------------------------------
    def mkdir(self, path: str) -> None:
        self._run(path, lambda c: tree.makedirs(c, self._full(path), self._what(path)))

    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        full = self._full(path)
        tmp = posixpath.join(posixpath.dirname(full), temp_name())
        with self._conn(path) as c:
            a, md5 = transfer.put(
                c, stream, full, tmp, self._what(path), size, mtime_ns,
                self._what(posixpath.dirname(path)),
            )  # fmt: skip
        return self._stat(path, a, md5)

    def delete(self, path: str) -> None:
        full, what = self._full(path), self._what(path)

        async def work(c: Conn) -> None:
            try:
                await c.sftp.remove(full)
            except asyncssh.SFTPError as exc:
                if not isinstance(exc, asyncssh.SFTPNoSuchFile) and await tree.dir_at(c, full):
                    raise IsADirectory(f"{what}: is a directory") from exc
                raise

        self._run(path, work)

    def delete_tree(self, path: str) -> None:
        full = self._full(path)

        async def top(c: Conn) -> bool:
            """Whether `full` is a directory to empty (a file there is removed now)."""
            try:
                a = await c.sftp.lstat(full)
            except asyncssh.SFTPNoSuchFile:
                return False
            if not tree.is_dir(a):
                await c.sftp.remove(full)
                return False
            return True

        with self._conn(path) as c:
            if c.run(top(c)):
                self._remove_dir(c, full)

    def _remove_dir(self, c: Conn, full: str) -> None:
        """Depth first, one directory at a time."""
        files, dirs = c.run_paced(tree.contents(c, full))
        for d in dirs:
            self._remove_dir(c, d)
        c.run_paced(tree.remove_dir(c, full, files))

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        full = self._full(path)
        t = transfer.seconds(mtime_ns)

        async def work(c: Conn) -> asyncssh.SFTPAttrs:
            done = tree.start(c.sftp.setstat(full, asyncssh.SFTPAttrs(atime=t, mtime=t)))
            stat = tree.start(c.sftp.stat(full))
            try:
                await done
                return await stat
            finally:
                await tree.settle(done, stat)

        return self._stat(path, self._run(path, work))

    def move(self, src: str, dst: str) -> RemoteStat:
        fs, fd, what = self._full(src), self._full(dst), self._what(dst)

        async def work(c: Conn) -> asyncssh.SFTPAttrs:
            try:
                await tree.replace(c, fs, fd, what)
            except asyncssh.SFTPNoSuchFile:
                if not await tree.exists(c, fs):
                    raise NotFound(f"{self._what(src)}: not found") from None
                parent = self._what(posixpath.dirname(dst))
                await tree.makedirs(c, posixpath.dirname(fd) or ".", parent)
                await tree.replace(c, fs, fd, what)
            return await c.sftp.stat(fd)

        return self._stat(dst, self._run(src, work))

    def reap_temporaries(self, folders: Iterable[str]) -> int:
        # All folders are listed at once on one connection (vdir calls this after every
        # put). Measured behind a proxy adding a 50 ms round trip, 100 folders: one by one
        # 25-27 s (about five round trips each), 8 threads 3.4-4.7 s, at once 0.7-0.8 s.
        folders = list(folders)
        if not folders:
            return 0
        fulls = [self._full(f) for f in folders]
        try:
            found = self._run("", lambda c: tree.temporaries_in(c, fulls), paced=True)
        except Exception:
            return 0  # best effort (see `reap`): the next real operation says what is wrong
        listed = dict(zip(folders, found, strict=True))
        return reap(folders, listed.__getitem__, self._remove_temporary)

    def _remove_temporary(self, folder: str, name: str) -> None:
        path = f"{folder}/{name}" if folder else name
        self._run(path, lambda c: c.sftp.remove(self._full(path)))

    def pin(self, *, renew: bool = False) -> dict[str, Any]:
        """At registration with no `host_key` given, or to renew it: trust the key the server
        presents now and pin it (it is shown to the user); every later connection must present
        the same key."""
        if self._pin is not None and not renew:
            return {}
        return {"host_key": fetch_host_key(self.host, self.port, self.timeout)}

    def show_pin(self, option: str, value: Any) -> str:
        return show_host_key(str(value)) if option == "host_key" else str(value)

    def check(self) -> None:
        async def work(c: Conn) -> None:
            try:
                a = await c.sftp.stat(self._root)
            except asyncssh.SFTPNoSuchFile:
                raise NotFound(
                    f"{self.name}: root {self._root} does not exist on {self.host}"
                ) from None
            if not tree.is_dir(a):
                raise NotADirectory(f"{self.name}: root {self._root} is not a directory")

        self._run("", work)
