"""Walking a local source tree for `put`: os.scandir (one stat per entry), each name checked
once, and every odd entry reported on its own instead of aborting the tree.

- a name that is not valid UTF-8 (old NAS or zip data) cannot be a virtual path: reported
  and skipped;
- symbolic links are not followed unless asked (`follow_links`); when they are, a loop is
  detected by (device, inode) and reported;
- an unreadable file or directory is an error for that entry only;
- FIFOs, sockets, devices and dangling links are skipped and counted.
"""

from __future__ import annotations

import os
import stat as statmod
from collections.abc import Iterator
from dataclasses import dataclass, field

from cdir.errors import CdirError, NotFound, one_line
from cdir.schema.paths import MAX_SEGMENT_BYTES, normalize


@dataclass
class WalkNotes:
    errors: list[str] = field(default_factory=list)  # entries that could not be put
    skipped: list[str] = field(default_factory=list)  # specials and links, on purpose


def child_path(base: str, name: str) -> str:
    """`base/name` as a virtual path. A plain ASCII name (the common case) needs no more
    than this check; anything else goes through the full normalize()."""
    if name.isascii() and name.isprintable() and len(name) <= MAX_SEGMENT_BYTES:
        return f"{base.rstrip('/')}/{name}"
    return normalize(name, base)


def put_source(
    src: str, dest: str, into: bool, recursive: bool, follow_links: bool, notes: WalkNotes
) -> Iterator[tuple[str, str, os.stat_result | None]]:
    """What one local source of a put brings, as walk_local gives it: a file lands at
    `dest` (or `dest/name` when put `into` it); a directory's tree below `dest/name`, or
    below `dest` itself when the source ends in `/` (its contents) or is not put `into`."""
    try:
        st = os.stat(src)
    except FileNotFoundError:
        raise NotFound(f"no such local file or directory: {src}") from None
    except OSError as exc:
        raise CdirError(f"cannot read {src}: {exc.strerror}") from None
    name = os.path.basename(os.path.abspath(src))
    if not statmod.S_ISDIR(st.st_mode):
        yield src, child_path(dest, name) if into else dest, st
        return
    base = dest if (src.endswith("/") or not into) else child_path(dest, name)
    yield src, base, None
    yield from walk_local(src, base, recursive, notes, follow_links)


def walk_local(
    top: str, base: str, recursive: bool, notes: WalkNotes, follow_links: bool = False
) -> Iterator[tuple[str, str, os.stat_result | None]]:
    """(local path, virtual path, stat) for files and (local path, virtual path, None) for
    directories below `top`, whose virtual path is `base`."""
    seen = {_key(os.stat(top))}
    stack = [(top, base)]
    while stack:
        d, vdir = stack.pop()
        try:
            it = os.scandir(d)
        except OSError as exc:
            notes.errors.append(f"cannot read directory {_shown(d)}: {exc.strerror}")
            continue
        with it:
            for de in it:
                item = _entry(de, vdir, notes, follow_links)
                if item is None:
                    continue
                vp, st = item
                if not statmod.S_ISDIR(st.st_mode):
                    yield de.path, vp, st
                elif recursive:
                    if _key(st) in seen:
                        notes.errors.append(
                            f"symbolic link loop at {_shown(de.path)}: not followed"
                        )
                        continue
                    seen.add(_key(st))
                    yield de.path, vp, None
                    stack.append((de.path, vp))


def _entry(
    de: os.DirEntry[str], vdir: str, notes: WalkNotes, follow_links: bool
) -> tuple[str, os.stat_result] | None:
    """The virtual path and stat of a regular file or directory; None (noted) otherwise."""
    shown = _shown(de.path)
    try:
        de.name.encode()
    except UnicodeEncodeError:
        notes.errors.append(f"skipped {shown}: the name is not valid UTF-8")
        return None
    try:
        vp = child_path(vdir, de.name)
    except CdirError as exc:
        notes.errors.append(f"skipped {shown}: {exc}")
        return None
    if de.is_symlink() and not follow_links:
        notes.skipped.append(f"{shown}: a symbolic link (use --follow-links to follow)")
        return None
    try:
        st = de.stat(follow_symlinks=True)
    except FileNotFoundError:
        notes.skipped.append(f"{shown}: a dangling symbolic link")
        return None
    except OSError as exc:
        notes.errors.append(f"cannot read {shown}: {exc.strerror}")
        return None
    if not (statmod.S_ISREG(st.st_mode) or statmod.S_ISDIR(st.st_mode)):
        notes.skipped.append(f"{shown}: not a regular file (a FIFO, socket or device)")
        return None
    return vp, st


def _key(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _shown(path: str) -> str:
    """A local path fit for a one-line message (undecodable bytes and control characters
    escaped)."""
    return one_line(path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"))
