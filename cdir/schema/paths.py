"""Virtual paths: validated and normalised in this one place for every front end."""

from __future__ import annotations

import posixpath
import unicodedata
from urllib.parse import unquote

from cdir.errors import InvalidPath

MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 4096
SHOWN_CHARS = 40  # an over-long path is quoted in messages by its first SHOWN_CHARS characters


def shown(path: str) -> str:
    """`path` quoted for a one-line message: whole when short, else its first SHOWN_CHARS
    characters, `…` and its length in bytes (a 300-byte name should not fill the terminal)."""
    if len(path) <= SHOWN_CHARS + 20:
        return repr(path)
    return f"{path[:SHOWN_CHARS] + '…'!r} ({len(path.encode(errors='surrogatepass'))} bytes)"


def normalize(path: str, cwd: str = "/") -> str:
    """Return the absolute, NFC-normalised form of `path` (relative to `cwd`).

    Refuses NUL and control characters, text that is not valid UTF-8, over-long names, and
    `.`/`..` segments that would leave the root; messages quote a long path shortened (see
    `shown`). Empty segments (`a//b`) and a trailing `/` are folded away; `.` and `..`
    are resolved lexically, as a shell would.
    """
    if not isinstance(path, str) or path == "":
        raise InvalidPath("invalid path: empty")
    for ch in path:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise InvalidPath(f"invalid path {shown(path)}: control character {ch!r} not allowed")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # e.g. a non-UTF-8 byte in argv arrives as a lone surrogate
        raise InvalidPath(f"invalid path {shown(path)}: not valid UTF-8") from None
    path = unicodedata.normalize("NFC", path)
    full = path if path.startswith("/") else f"{cwd.rstrip('/')}/{path}"
    parts: list[str] = []
    for seg in full.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not parts:
                raise InvalidPath(f"invalid path {shown(path)}: goes above the root")
            parts.pop()
            continue
        if len(seg.encode()) > MAX_SEGMENT_BYTES:
            raise InvalidPath(
                f"invalid path {shown(path)}: a name is longer than {MAX_SEGMENT_BYTES} bytes"
            )
        parts.append(seg)
    out = "/" + "/".join(parts)
    if len(out.encode()) > MAX_PATH_BYTES:
        raise InvalidPath(f"invalid path: longer than {MAX_PATH_BYTES} bytes")
    return out


def split(vpath: str) -> tuple[str, str]:
    """`/a/b/c` → (`/a/b`, `c`); the root is (`/`, ``)."""
    if vpath == "/":
        return "/", ""
    d, b = posixpath.split(vpath)
    return d, b


def join(dirname: str, basename: str) -> str:
    if not basename:
        return dirname
    return f"{dirname.rstrip('/')}/{basename}"


def is_within(path: str, ancestor: str) -> bool:
    return ancestor == "/" or path == ancestor or path.startswith(ancestor.rstrip("/") + "/")


def relative(path: str, ancestor: str) -> str:
    """Path of `path` below `ancestor`, without a leading slash ("" for the ancestor itself)."""
    if ancestor == "/":
        return path.lstrip("/")
    return path[len(ancestor) :].lstrip("/")


def url_path(path: str) -> str:
    """A virtual path as it arrives in a URL (already percent-decoded once, without its
    leading `/`): absolute and normalised, with no `.`/`..` segment nor control character in
    any encoding — a URL names a file, it does not navigate — and whatever `normalize`
    refuses refused."""
    for seg in path.split("/"):
        decoded, seen = seg, set()
        while "%" in decoded and decoded not in seen:  # %2e%2e, %252e%252e…
            seen.add(decoded)
            decoded = unquote(decoded)
        if decoded.strip() in (".", ".."):
            raise InvalidPath(f"invalid path {shown(path)}: `.` and `..` are not allowed in a URL")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in decoded):
            raise InvalidPath(f"invalid path {shown(path)}: an encoded control character")
        if "\ufffd" in decoded:  # what a server makes of bytes that are not UTF-8
            raise InvalidPath(f"invalid path {shown(path)}: not valid UTF-8")
    return normalize("/" + path)
