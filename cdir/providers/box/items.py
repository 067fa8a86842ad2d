"""Box's JSON items as cdir sees them, and downloads as chunks."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from cdir.providers.base import RemoteStat
from cdir.providers.box.client import boxed

MiB = 1024 * 1024
# What listings and stats ask for: with `fields`, Box sends these and the mini fields only.
FIELDS = ["type", "id", "name", "size", "sha1", "content_modified_at", "modified_at",
          "file_version", "etag"]  # fmt: skip
READ_BLOCK = 64 * 1024  # the SDK's stream buffers by concatenation: read it in small blocks


def kind_of(raw: dict[str, Any]) -> Literal["file", "dir"]:
    return "dir" if raw["type"] == "folder" else "file"


def to_stat(path: str, raw: dict[str, Any]) -> RemoteStat:
    """A file or folder object of the Box API as a RemoteStat."""
    when = raw.get("content_modified_at") or raw.get("modified_at")
    mtime = int(datetime.fromisoformat(when).timestamp()) * 1_000_000_000 if when else None
    if raw["type"] == "folder":
        return RemoteStat(path, "dir", mtime_ns=mtime)
    sha1 = str(raw.get("sha1") or "").lower()
    version = (raw.get("file_version") or {}).get("id")
    return RemoteStat(
        path,
        "file",
        size=int(raw.get("size") or 0),
        mtime_ns=mtime,
        fingerprint=f"v{version}" if version else f"{sha1}:{raw.get('etag', '')}",
        hashes={"sha1": sha1} if sha1 else {},
    )


def blocks(stream: Any, what: str) -> Iterator[bytes]:
    """The download in chunks of about a MiB, read from the SDK's stream in small blocks."""
    pending: list[bytes] = []
    held = 0
    with boxed(what):
        while block := stream.read(READ_BLOCK):
            pending.append(block)
            held += len(block)
            if held >= MiB:
                yield b"".join(pending)
                pending, held = [], 0
    if pending:
        yield b"".join(pending)
