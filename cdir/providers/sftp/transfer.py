"""Uploads and downloads: the caller's thread moves the bytes, the event loop keeps SFTP
requests in flight.

The caller's thread reads the source stream (it may block, or be slow) and hands the loop
`STEP` bytes at a time, up to `AHEAD` steps ahead; the loop cuts each step into requests of
the size the server accepts and sends them at once. So a big file streams with up to
AHEAD x STEP bytes in flight, and a small one costs three round trips: OPEN; WRITE + FSETSTAT
+ FSTAT + CLOSE; RENAME of the hidden temporary onto the name. A read costs two: OPEN + STAT;
the READs (the CLOSE is not waited for). An upload hashes its bytes (MD5) as they pass.

Requests that depend on each other's order (the writes, then the times, the stat and the close
of one handle) are started as tasks in that order: asyncio runs new tasks first come first
served and each asyncssh request is sent before its task first waits, so they reach the server
in order, and an SFTP server handles one handle's requests in the order they arrive.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import posixpath
from collections import deque
from collections.abc import Iterator
from contextlib import suppress
from typing import Any, BinaryIO, cast

import asyncssh

from cdir.errors import IsADirectory
from cdir.providers.common import check_size, read_upto
from cdir.providers.sftp import loop
from cdir.providers.sftp.connection import Conn
from cdir.providers.sftp.tree import forget, is_dir, makedirs, replace, settle, start

STEP = 2 * 1024 * 1024  # bytes handed between the caller's thread and the loop at once
AHEAD = 2  # steps in flight per transfer (with OpenSSH: 16 requests of 255 KiB)
_WRITE = asyncssh.FXF_WRITE | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_EXCL


def seconds(mtime_ns: int) -> int:
    """An mtime as SFTP v3 carries it: whole seconds in 32 bits, unsigned."""
    return min(max(0, mtime_ns // 1_000_000_000), 0xFFFFFFFF)


async def _open(c: Conn, full: str, flags: int) -> asyncssh.SFTPClientFile:
    # block_size=0: one request per read or write call; the requests are cut here
    return await c.sftp.open(full, flags, encoding=None, block_size=0)


def _writes(
    c: Conn, f: asyncssh.SFTPClientFile, data: bytes, offset: int
) -> list[asyncio.Future[Any]]:
    """WRITE requests for `data`, sent in order (see the module docstring)."""
    view, size = memoryview(data), c.max_write
    # asyncssh sends any bytes-like object: views of `data` spare a copy per request
    return [
        start(f.write(cast(bytes, view[i : i + size]), offset + i))
        for i in range(0, len(view), size)
    ]


async def _write(c: Conn, f: asyncssh.SFTPClientFile, data: bytes, offset: int) -> None:
    await asyncio.gather(*_writes(c, f, data, offset))


# --- upload -------------------------------------------------------------------------------------
async def _create(c: Conn, tmp: str, parent_what: str) -> asyncssh.SFTPClientFile:
    """The hidden temporary, its directory made when missing."""
    try:
        return await _open(c, tmp, _WRITE)
    except asyncssh.SFTPNoSuchFile:
        await makedirs(c, posixpath.dirname(tmp) or ".", parent_what)
        return await _open(c, tmp, _WRITE)


async def _commit(
    c: Conn,
    f: asyncssh.SFTPClientFile,
    tail: bytes,
    offset: int,
    mtime_ns: int | None,
    tmp: str,
    full: str,
    what: str,
) -> asyncssh.SFTPAttrs:
    """The last bytes, the times, the stat and the close in one round trip; then the rename."""
    sent = _writes(c, f, tail, offset)
    if mtime_ns is not None:
        t = seconds(mtime_ns)
        sent.append(start(f.setstat(asyncssh.SFTPAttrs(atime=t, mtime=t))))
    stat, close = start(f.stat()), start(f.close())
    try:
        for s in sent:
            await s
        attrs = await stat
        await close
    finally:
        await settle(*sent, stat, close)
    await replace(c, tmp, full, what)
    return attrs


async def _discard(f: asyncssh.SFTPClientFile, sftp: asyncssh.SFTPClient, tmp: str) -> None:
    with suppress(Exception):
        await f.close()  # nothing is sent when it is closed already
    with suppress(Exception):
        await sftp.remove(tmp)


def put(
    c: Conn,
    stream: BinaryIO,
    full: str,
    tmp: str,
    what: str,
    size: int | None,
    mtime_ns: int | None,
    parent_what: str,
) -> tuple[asyncssh.SFTPAttrs, str]:
    """Write `stream` to `tmp` and rename it onto `full` (`what` and `parent_what` name them
    in errors); any failure removes `tmp`. Returns the attributes and the MD5 of the bytes,
    hashed in the caller's thread while the loop sends the step before (hashlib lets go of
    the GIL), so a second pass is never needed."""
    f = c.run(_create(c, tmp, parent_what))
    inflight: deque[concurrent.futures.Future[None]] = deque()
    md5 = hashlib.md5(usedforsecurity=False)
    try:
        offset = 0
        while len(buf := read_upto(stream, STEP)) == STEP:
            inflight.append(c.start(_write(c, f, buf, offset)))
            md5.update(buf)
            offset += STEP
            if len(inflight) >= AHEAD:
                c.wait(inflight.popleft())
        check_size(what, size, offset + len(buf))  # the temporary file goes
        md5.update(buf)
        while inflight:
            c.wait(inflight.popleft())
        return c.run(_commit(c, f, buf, offset, mtime_ns, tmp, full, what)), md5.hexdigest()
    except BaseException:
        for future in inflight:
            future.cancel()
        # best effort, and brief: the connection may be gone
        with suppress(Exception):
            loop.wait(c.start(_discard(f, c.sftp, tmp)), min(c.timeout, 5))
        raise


# --- download -----------------------------------------------------------------------------------
async def _open_read(c: Conn, full: str) -> tuple[asyncssh.SFTPClientFile, asyncssh.SFTPAttrs]:
    """OPEN and STAT together: the size bounds the reads to send."""
    opened, stat = start(_open(c, full, asyncssh.FXF_READ)), start(c.sftp.stat(full))
    try:
        f = await opened
    finally:
        await settle(opened, stat)
    try:
        return f, await stat
    except BaseException:
        forget(f.close())
        raise


async def _read_full(f: asyncssh.SFTPClientFile, offset: int, n: int) -> bytes:
    """`n` bytes at `offset`, fewer only where the file ends (a short read before the end,
    which is rare, is asked again for the rest)."""
    data: bytes = await f.read(n, offset)
    while 0 < len(data) < n:
        more: bytes = await f.read(n - len(data), offset + len(data))
        if not more:
            break
        data += more
    return data


async def _read(c: Conn, f: asyncssh.SFTPClientFile, offset: int, n: int) -> list[bytes]:
    size = c.max_read
    return await asyncio.gather(
        *(_read_full(f, o, min(size, offset + n - o)) for o in range(offset, offset + n, size))
    )


def read(c: Conn, full: str, what: str, begin: int, end: int | None) -> Iterator[bytes]:
    """The bytes of `full` in [begin, end), clipped to the file."""
    f, attrs = c.run(_open_read(c, full))
    ahead: deque[tuple[concurrent.futures.Future[list[bytes]], int]] = deque()
    try:
        if is_dir(attrs):
            raise IsADirectory(f"{what}: is a directory")
        total = int(attrs.size or 0)
        stop = total if end is None else min(end, total)
        pos = begin
        while pos < stop or ahead:
            while pos < stop and len(ahead) < AHEAD:
                n = min(STEP, stop - pos)
                ahead.append((c.start(_read(c, f, pos, n)), n))
                pos += n
            future, n = ahead.popleft()
            got = 0
            for data in c.wait(future):
                if data:
                    got += len(data)
                    yield data
            if got < n:
                break  # the end of the file came early: it shrank meanwhile
    finally:
        for future, _ in ahead:
            future.cancel()
        with suppress(RuntimeError):  # the interpreter is exiting: the process drops it
            c.start(f.close())  # not waited for
