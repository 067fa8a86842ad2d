"""The one small interface every storage provider implements.

Paths given to a provider are *relative to its root*, `/`-separated, NFC, without a leading
slash; "" is the root itself. Providers know nothing about the catalog. Optional features are
declared in `Capabilities` so callers ask "can you?" instead of special-casing a provider.
`cdir.providers.testing` is the conformance suite that pins down what this page promises.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, Literal, Protocol

from cdir import pids
from cdir.errors import NotFound, Unsupported
from cdir.providers.options import OptionSpec, parse_options

CHUNK = 1024 * 1024
# Name prefix of uploads in flight (renamed into place when complete); listings skip it.
TMP_PREFIX = ".cdir-tmp-"
# A temporary this old is orphaned whoever wrote it: no upload takes a day between writes.
ORPHAN_AGE_S = 86400
_HOST_TAG = re.compile(r"[0-9a-f]{8}")


@dataclass(frozen=True)
class Capabilities:
    empty_dirs: bool = True  # can hold an empty directory (object stores cannot)
    set_mtime: bool = True  # mtime can be set and read back
    mtime_precision_ns: int = 1  # granularity of mtimes read back (1_000_000_000 = seconds)
    hash_kinds: frozenset[str] = frozenset()  # hashes `stat` reports without reading the data
    case_sensitive: bool = True
    range_reads: bool = True
    server_side_copy: bool = False
    server_side_move: bool = False
    max_name_bytes: int = 255
    max_parallel: int = 0  # transfers at once that still help; 0 = as many as asked
    local_folder: bool = False  # the root is a folder of this machine (the daemon watches it)
    # writes go through TMP_PREFIX names that a killed writer leaves behind, which
    # `reap_temporaries` removes (object stores' uploads in flight are not files)
    temporaries: bool = False
    # `changes(cursor)` reports what changed since a cursor, so a poll can skip listing
    changes: bool = False


@dataclass(frozen=True)
class RemoteStat:
    path: str  # relative to the provider root
    kind: Literal["file", "dir"]
    size: int = 0
    mtime_ns: int | None = None
    fingerprint: str = ""  # changes whenever the content may have changed (etag, revision…)
    # lowercase hex digests by hashlib name ("md5", "sha256"…); excluded from hash() so a
    # RemoteStat can go in a set although a dict is not hashable
    hashes: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ChangeBatch:
    """What changed on a provider since a cursor (paths relative to its root)."""

    cursor: str  # give it to the next `changes` call
    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    reset: bool = False  # the old cursor expired: the caller must list everything


class SecretStore(Protocol):
    """Where a provider's secrets live, for the ones it changes itself (a refreshed OAuth
    token). Shared by processes: `locked()` holds a cross-process lock, and `load()` re-reads."""

    def load(self) -> dict[str, str]: ...

    def save(self, secrets: dict[str, str]) -> None: ...

    def locked(self) -> AbstractContextManager[None]: ...


class Provider(ABC):
    """A storage service seen as a tree of files below `root`."""

    kind: ClassVar[str]
    # A class default; an instance may set its own where the server decides (a WebDAV flavour
    # that can set mtimes, an S3-compatible store without server-side copy, a FAT-mounted folder).
    capabilities: Capabilities = Capabilities()
    options: ClassVar[tuple[OptionSpec, ...]] = ()
    # Where secrets the provider renews itself are saved (set by vdir; None: kept in memory).
    secret_store: SecretStore | None = None

    def __init__(
        self,
        name: str,
        root: str,
        options: Mapping[str, Any] | None = None,
        secrets: Mapping[str, str] | None = None,
        *,
        secret_store: SecretStore | None = None,
    ) -> None:
        self.name = name
        self.secret_store = secret_store  # before configure(), which may want it
        self.root = root
        self.opts = dict(options or {})
        self.secrets = dict(secrets or {})
        # every option in its type, defaults filled in; unknown or bad values refused here
        self.conf: dict[str, Any] = parse_options(
            name, self.options, {**self.opts, **self.secrets}, self.kind
        )
        self.configure()

    def configure(self) -> None:  # noqa: B027 - optional hook; some providers need no setup
        """Read `root` and `conf` (the typed options and secrets) into what the provider
        needs; a bad combination is a UsageError. Called by `__init__`, so providers need not
        repeat its signature. No I/O
        here: connections are made on first use."""

    def __repr__(self) -> str:  # never shows secrets
        return f"<{type(self).__name__} {self.name} {self.kind}:{self.root}>"

    def _what(self, path: str) -> str:
        """How error messages name `path`: `provider:/path`."""
        return f"{self.name}:/{path}"

    # --- reading ---------------------------------------------------------------------------
    @abstractmethod
    def list(
        self, path: str = "", recursive: bool = False, *, mtimes: bool = True
    ) -> Iterator[RemoteStat]:
        """Entries below `path` (files and dirs), fetched page by page, in no set order.
        NotFound if `path` is absent; the root "" always lists (empty when nothing is stored).
        Each entry appears once; a directory implied by a key prefix is a "dir" entry. A file's
        size and fingerprint are the ones `stat` reports (sync compares listings with them).
        `mtimes=False`: the caller needs sizes and fingerprints only, so a provider that reads
        each file's stored mtime with a request of its own (S3) may skip it; `stat` then gives
        the exact one."""

    @abstractmethod
    def stat(self, path: str) -> RemoteStat:
        """NotFound if nothing is at `path`."""

    @abstractmethod
    def read_chunks(self, path: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes of a file, [start, end) when given, as a stream of chunks. Like a slice:
        clipped to the file, so a range at or past the end (or start == end) gives no bytes."""

    def read_bytes(self, path: str, start: int = 0, end: int | None = None) -> bytes:
        return b"".join(self.read_chunks(path, start, end))

    def get_file(self, path: str, local: Path) -> None:
        """Download to `local` atomically: a temporary file beside it, then a rename."""
        with atomic_write(local) as (fd, _), os.fdopen(fd, "wb") as out:
            for chunk in self.read_chunks(path):
                out.write(chunk)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except NotFound:
            return False
        return True

    # --- writing ---------------------------------------------------------------------------
    @abstractmethod
    def mkdir(self, path: str) -> None:
        """Create `path` and its parents; no error if it exists (a no-op without empty_dirs)."""

    @abstractmethod
    def put_stream(
        self, stream: BinaryIO, path: str, size: int | None = None, mtime_ns: int | None = None
    ) -> RemoteStat:
        """Write a file from a readable stream, replacing any file there; parents are created.
        The stream may be unseekable and give short reads. `size`, when given, is the exact
        length: a stream that gives more or fewer bytes is an error. Readers never see a
        half-written file, and a failed write leaves any previous version in place.
        Returns the stat of what was written (the same size and fingerprint `stat` then gives),
        with the md5 of the bytes in `hashes` (hashed while they streamed, or the server's), so
        every version has a content hash."""

    def put_file(self, local: Path, path: str, mtime_ns: int | None = None) -> RemoteStat:
        with open(local, "rb") as f:
            return self.put_stream(f, path, size=os.fstat(f.fileno()).st_size, mtime_ns=mtime_ns)

    @abstractmethod
    def delete(self, path: str) -> None:
        """Delete one file. NotFound if absent."""

    @abstractmethod
    def delete_tree(self, path: str) -> None:
        """Delete a directory and all below it; no error if absent."""

    def set_mtime(self, path: str, mtime_ns: int) -> RemoteStat:
        raise Unsupported(f"{self.name}: cannot set modification times")

    def copy(self, src: str, dst: str) -> RemoteStat:
        """Server-side copy within this provider (when capabilities.server_side_copy)."""
        raise Unsupported(f"{self.name}: no server-side copy")

    def move(self, src: str, dst: str) -> RemoteStat:
        """Server-side move within this provider (when capabilities.server_side_move)."""
        raise Unsupported(f"{self.name}: no server-side move")

    def changes(self, cursor: str | None) -> ChangeBatch:
        """What changed since `cursor` (when capabilities.changes). None: the current cursor
        and no changes, a starting point. Paths outside the root are left out."""
        raise Unsupported(f"{self.name}: no change feed")

    def check(self) -> None:
        """Raise a cdir error if the provider cannot be reached or used (for `provider test`)."""
        next(iter(self.list("")), None)

    def reap_temporaries(self, folders: Iterable[str]) -> int:
        """Remove the uploads in flight left in `folders` (one level each) by a writer that
        was killed (`orphaned`); returns how many. A folder that is gone or unreadable is
        skipped, and no error escapes: this tidies up after a write that succeeded. Called
        after writes and by `scan`. Providers with `capabilities.temporaries` implement it
        (with `reap`); those whose uploads in flight expire on their own (object stores'
        uncommitted uploads) keep this no-op."""
        return 0

    def create_root(self) -> None:  # noqa: B027 - optional hook; most roots exist already
        """Create the root where it is missing and the provider can (a local folder). Only
        `provider add` calls it: a root that vanishes later is a fault, never recreated by a
        write."""

    def pin(self, *, renew: bool = False) -> dict[str, Any]:
        """Options learned from the service itself, shown to the user and stored with the
        provider (an SSH host key, say); {} for most providers. At registration, an option the
        user gave is not learned again; with `renew` (`cdir provider pin`, after the service
        changed it) everything is. A kind pins something when it overrides this method."""
        return {}

    def show_pin(self, option: str, value: Any) -> str:
        """How messages show a pinned option's value (SFTP: `ED25519 SHA256:…`)."""
        return str(value)

    def close(self) -> None:  # noqa: B027 - optional hook; most providers hold nothing
        """Release connections."""


@contextmanager
def atomic_write(dst: Path, mtime_ns: int | None = None) -> Iterator[tuple[int, Path]]:
    """A temporary file beside `dst` (its parents made), as (fd open for writing, path), for
    the block to fill and close; then given `mtime_ns` and renamed onto `dst`, or removed if
    the block fails (any file at `dst` stays as it was)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(dst.parent)
    try:
        yield fd, tmp
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@functools.cache
def host_tag() -> str:
    """8 hex digits naming this machine in temporaries: a process id means something only on
    the machine that runs it, and SFTP, WebDAV and shared folders are written from many."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def temp_name(pid: int | None = None, host: str | None = None) -> str:
    """A name for an upload in flight, `.cdir-tmp-<pid>-<host>-<random>`: the writer's
    process id and host tag (this process's unless given; tests give others), so a later
    command can tell one whose writer was killed (`orphaned`), and a random part."""
    writer = os.getpid() if pid is None else pid
    return f"{TMP_PREFIX}{writer}-{host or host_tag()}-{os.urandom(6).hex()}"


def _writer(name: str) -> tuple[int | None, str | None]:
    """(pid, host tag) of the temporary `name`; None where it has none. Names made before
    host tags (`<pid>-<random>`) give no host; older ones (`<random>`) no pid either."""
    parts = name.removeprefix(TMP_PREFIX).split("-")
    if not parts[0].isdigit():
        return None, None
    host = parts[1] if len(parts) == 3 and _HOST_TAG.fullmatch(parts[1]) else None
    return int(parts[0]), host


def orphaned(name: str, age_s: float) -> bool:
    """Whether the temporary `name` (`age_s` seconds old) was left by a writer that is gone.
    Written on this machine (its host tag, or no tag: the format before tags): its process
    no longer runs. A live process keeps it whatever its age, since writers set the file's
    own mtime before the rename. Written elsewhere, or with no process id: over a day old."""
    pid, host = _writer(name)
    if pid is None or host not in (None, host_tag()):
        return age_s > ORPHAN_AGE_S
    return not pids.alive(pid)


def reap(
    folders: Iterable[str],
    temporaries: Callable[[str], Iterable[tuple[str, float | None]]],
    remove: Callable[[str, str], object],
    workers: int = 1,
) -> int:
    """`Provider.reap_temporaries` over two primitives: `temporaries(folder)` gives the
    (name, mtime in seconds or None) of each TMP_PREFIX entry in one folder, `remove(folder,
    name)` deletes one. Up to `workers` folders are listed at once (a round trip each on a
    remote provider, after every put). Returns how many went; errors are swallowed (best
    effort: a provider that fails here fails the next real operation, with its message)."""
    now, gone = time.time(), 0

    def listed(folder: str) -> list[tuple[str, float | None]]:
        try:
            return list(temporaries(folder))
        except Exception:
            return []  # gone or unreadable: nothing of ours to reap there

    folders = list(folders)
    with ThreadPoolExecutor(max(1, min(workers, len(folders)))) as pool:
        for folder, found in zip(folders, pool.map(listed, folders), strict=True):
            for name, mtime in found:
                age = 0.0 if mtime is None else now - mtime  # unknown: the pid alone decides
                if not name.startswith(TMP_PREFIX) or not orphaned(name, age):
                    continue
                try:
                    remove(folder, name)
                except Exception:
                    continue  # already gone (another reaper), or not ours to delete
                gone += 1
    return gone


def create_temp(directory: Path) -> tuple[int, Path]:
    """Create a hidden temporary file in `directory`, open for writing. Unlike mkstemp (0600)
    it gets the mode of any new file (0666 less the umask), since it is renamed into place."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = directory / temp_name()
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
