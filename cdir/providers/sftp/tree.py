"""Coroutines on paths (full remote paths, already below the root): stat, mkdir -p, rename,
one directory's listing, removing a tree. Requests that do not wait for each other go out
together (see `transfer` for why their order on the wire is the order they are started in)."""

from __future__ import annotations

import asyncio
import posixpath
import stat as statmod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

import asyncssh

from cdir.errors import IsADirectory, NotADirectory
from cdir.providers.base import TMP_PREFIX
from cdir.providers.sftp.connection import Conn

T = TypeVar("T")
Missing = asyncssh.SFTPNoSuchFile
# an entry of a listing: its path relative to the root, its attributes (what a link points
# to, for links), and for a directory reached through a link the real path it leads to
Listed = tuple[str, asyncssh.SFTPAttrs, str | None]
Temporaries = list[tuple[str, float | None]]  # (name, mtime in seconds) of uploads in flight
_REMOVE_AHEAD = 64  # removals in flight while a directory is emptied
_LIST_AHEAD = 64  # directories open at once while temporaries are looked for


@asynccontextmanager
async def paced(c: Conn) -> AsyncIterator[Callable[[], None]]:
    """For work of any length (a directory of a million names): TimeoutError only when no
    answer came for `timeout` seconds. The block calls what this gives at each answer; run
    it with `Conn.run_paced`."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(c.timeout) as deadline:
            yield lambda: deadline.reschedule(loop.time() + c.timeout)
    except TimeoutError:
        raise TimeoutError(f"no answer from the server within {c.timeout:g} s") from None


def is_dir(a: asyncssh.SFTPAttrs) -> bool:
    return statmod.S_ISDIR(a.permissions or 0)


def start(aw: Awaitable[T]) -> asyncio.Future[T]:
    """Send a request now, collect its reply later."""
    return asyncio.ensure_future(aw)


def forget(aw: Awaitable[object]) -> None:
    """Send a request whose answer nobody waits for (an error in it included)."""
    start(aw).add_done_callback(lambda f: f.cancelled() or f.exception())


async def settle(*futures: asyncio.Future[Any]) -> None:
    """Wait for requests whose answer no longer matters (an error among them included)."""
    await asyncio.gather(*futures, return_exceptions=True)


async def exists(c: Conn, full: str) -> bool:
    try:
        await c.sftp.stat(full)
    except Missing:
        return False
    return True


async def dir_at(c: Conn, full: str) -> bool:
    try:
        return is_dir(await c.sftp.stat(full))
    except asyncssh.SFTPError:
        return False


async def makedirs(c: Conn, full: str, what: str) -> None:
    """mkdir -p in one round trip: every ancestor's MKDIR at once (those that exist fail
    harmlessly), then one STAT says whether the directory is there."""
    parts, cur = [], full
    while cur not in ("", ".", "/"):
        parts.append(cur)
        cur = posixpath.dirname(cur)
    made = [start(c.sftp.mkdir(p)) for p in reversed(parts)]
    there = start(c.sftp.stat(full))
    await settle(*made)
    try:
        a = await there
    except Missing:
        await _blame_file(c, parts, what)
        raise
    if not is_dir(a):
        raise NotADirectory(f"{what}: {full} is a file")


async def _blame_file(c: Conn, parts: list[str], what: str) -> None:
    """A path that cannot be created: NotADirectory when an ancestor is a file."""
    stats = [start(c.sftp.stat(p)) for p in parts]
    try:
        for p, st in zip(parts, stats, strict=True):
            try:
                a = await st
            except asyncssh.SFTPError:
                continue
            if not is_dir(a):
                raise NotADirectory(f"{what}: {p} is a file")
    finally:
        await settle(*stats)


async def rename(c: Conn, src: str, dst: str) -> None:
    """Replace `dst` with `src`: posix-rename@openssh.com, else a plain rename."""
    if c.posix_rename:
        try:
            await c.sftp.posix_rename(src, dst)
            return
        except asyncssh.SFTPOpUnsupported:
            c.posix_rename = False
    # plain v3 rename refuses an existing target: replace it (not atomic; rare servers)
    try:
        await c.sftp.rename(src, dst)
    except asyncssh.SFTPError:
        if not (await exists(c, src) and await exists(c, dst)):
            raise
        await c.sftp.remove(dst)
        await c.sftp.rename(src, dst)


async def replace(c: Conn, src: str, dst: str, what: str) -> None:
    """`rename`, with a directory in the way reported as such."""
    try:
        await rename(c, src, dst)
    except asyncssh.SFTPError as exc:
        if not isinstance(exc, Missing) and await dir_at(c, dst) and not await dir_at(c, src):
            raise IsADirectory(f"{what}: is a directory") from exc
        raise


async def realpath(c: Conn, full: str) -> str:
    return str(await c.sftp.realpath(full))


async def listdir(c: Conn, full: str, rel: str) -> list[Listed]:
    """A directory's files and directories (uploads in flight left out). A link counts as
    what it points to (dangling ones are left out); where a link to a directory leads lets a
    recursive listing enter each real directory once, so link loops end."""
    out: list[Listed] = []
    links: list[str] = []
    async with paced(c) as answered:
        async for e in c.sftp.scandir(full):  # attributes as lstat gives them
            answered()
            name = str(e.filename)
            if name in (".", "..") or name.startswith(TMP_PREFIX):
                continue
            child = f"{rel}/{name}" if rel else name
            mode = e.attrs.permissions or 0
            if statmod.S_ISLNK(mode):
                links.append(child)
            elif statmod.S_ISDIR(mode) or statmod.S_ISREG(mode):
                out.append((child, e.attrs, None))
        if links:
            await _follow(c, full, links, out, answered)
    return out


async def _follow(
    c: Conn, full: str, links: list[str], out: list[Listed], answered: Callable[[], None]
) -> None:
    """What `links` point to, added to `out` (dangling ones are left out)."""
    base = full.rstrip("/") or "/"
    asked = [
        (start(c.sftp.stat(p)), start(c.sftp.realpath(p)))
        for p in (posixpath.join(base, link.rsplit("/", 1)[-1]) for link in links)
    ]
    try:
        for child, (st, real) in zip(links, asked, strict=True):
            try:
                a = await st
            except asyncssh.SFTPError:
                continue  # dangling
            finally:
                answered()
            out.append((child, a, str(await real) if is_dir(a) else None))
    finally:
        await settle(*(f for pair in asked for f in pair))


async def temporaries(c: Conn, full: str) -> Temporaries:
    """(name, mtime in seconds) of the uploads in flight (TMP_PREFIX names) in `full`, which
    listings leave out."""
    found: Temporaries = []
    async with paced(c) as answered:
        async for e in c.sftp.scandir(full):  # lstat attributes
            answered()
            name = str(e.filename)
            if name.startswith(TMP_PREFIX):
                found.append((name, None if e.attrs.mtime is None else float(e.attrs.mtime)))
    return found


async def temporaries_in(c: Conn, fulls: list[str]) -> list[Temporaries]:
    """`temporaries` of each directory, listed at once (a handful of round trips for all of
    them, not for each); [] for one that is gone or unreadable."""
    ahead = asyncio.Semaphore(_LIST_AHEAD)

    async def one(full: str) -> Temporaries:
        async with ahead:
            return await temporaries(c, full)

    found = await asyncio.gather(*(one(f) for f in fulls), return_exceptions=True)
    return [[] if isinstance(got, BaseException) else got for got in found]


async def contents(c: Conn, full: str) -> tuple[list[str], list[str]]:
    """The files (links included, never followed) and the directories in `full`."""
    files: list[str] = []
    dirs: list[str] = []
    async with paced(c) as answered:
        async for e in c.sftp.scandir(full):  # lstat attributes
            answered()
            name = str(e.filename)
            if name not in (".", ".."):
                (dirs if is_dir(e.attrs) else files).append(f"{full}/{name}")
    return files, dirs


async def remove_dir(c: Conn, full: str, files: list[str]) -> None:
    """Remove `files` (their removals share round trips), then the directory `full`, now
    empty; what someone else removed meanwhile is no error."""
    pending: list[asyncio.Future[None]] = []
    async with paced(c) as answered:
        try:
            for f in files:
                pending.append(start(c.sftp.remove(f)))
                if len(pending) >= _REMOVE_AHEAD:
                    await _removed(pending.pop(0))
                    answered()
            while pending:
                await _removed(pending.pop(0))
                answered()
        finally:
            await settle(*pending)
        with suppress(Missing):
            await c.sftp.rmdir(full)


async def _removed(f: asyncio.Future[None]) -> None:
    with suppress(Missing):
        await f
