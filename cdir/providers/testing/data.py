"""What the conformance suite writes: awkward names, hash functions, and streams that behave
like the ones providers really get (unseekable, short reads, no length, failing half-way)."""

from __future__ import annotations

import hashlib
import io
import itertools
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, BinaryIO, cast

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MiB = 1024 * 1024


def name_of_bytes(nbytes: int, stem: str = "long-") -> str:
    """A file name exactly `nbytes` long in UTF-8. It is mostly two-byte "é", so a provider
    that counts characters instead of bytes (or splits a character) shows it."""
    body = nbytes - len(stem.encode()) - len(".txt")
    return stem + "é" * (body // 2) + "x" * (body % 2) + ".txt"


# id (ASCII, for test ids and `known_gaps`) → name. Each must round-trip unchanged.
AWKWARD_NAMES: dict[str, str] = {
    "nfc": unicodedata.normalize("NFC", "cafe\u0301"),  # "café", precomposed
    "cjk": "日本語のファイル",
    "emoji": "smile 😀 ok",
    "spaces": "with  two spaces",
    "hash": "a#b",
    "percent": "100% sure",
    "percent-escape": "a%41b%2Fc",  # decoded twice it would read "aAb/c"
    "colon": "a:b",
    "question": "what?",
    "ampersand-equals": "a&b=c",
    "plus": "a+b",
    "brackets": "[x]",
    "quotes": 'it\'s "quoted"',
    "punctuation": "!$()*,;@~^`{}|<>",
    "dots": "a..b",  # ".." inside a name is not a parent reference
    "leading-dash": "-rf",
    "hidden": ".hidden",
    "long-200-bytes": name_of_bytes(200),
}


def _hasher(kind: str) -> Callable[[bytes], str]:
    return lambda data: hashlib.new(kind, data).hexdigest()


# hashlib name → lowercase hex digest, for the hash kinds the suite can check itself.
HASH_FUNCTIONS: dict[str, Callable[[bytes], str]] = {
    kind: _hasher(kind) for kind in ("md5", "sha1", "sha256", "sha512")
}

# Irregular chunk sizes (tiny ones included) so buffering bugs show.
_CHUNK_SIZES = (65_537, 1, 300_007, 13, 1_048_573)


def chunked(data: bytes) -> Iterator[bytes]:
    """`data` in irregular chunks."""
    view = memoryview(data)
    pos = 0
    for n in itertools.cycle(_CHUNK_SIZES):
        if pos >= len(view):
            return
        yield bytes(view[pos : pos + n])
        pos += n


class StreamBroke(Exception):
    """Raised by a `ChunkStream` told to fail, like a dropped source connection."""


class ChunkStream(io.RawIOBase):
    """An unseekable raw stream over chunks: short reads and no length, like a socket or another
    provider's `read_chunks`. With `fail`, raises StreamBroke once the chunks run out."""

    def __init__(self, chunks: Iterable[bytes], fail: bool = False) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._view = memoryview(b"")
        self._fail = fail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._view:
            chunk = next(self._chunks, None)
            if chunk is None:
                if self._fail:
                    raise StreamBroke("the source stream broke")
                return 0
            self._view = memoryview(chunk)
        out = memoryview(buffer)
        n = min(len(out), len(self._view))
        out[:n] = self._view[:n]
        self._view = self._view[n:]
        return n


def stream(data: bytes, fail: bool = False) -> BinaryIO:
    """`data` as an unseekable stream in irregular chunks (failing at the end with `fail`)."""
    return cast(BinaryIO, ChunkStream(chunked(data), fail))


def first_difference(got: bytes, want: bytes) -> str | None:
    """None when equal, else where they differ: a short message instead of a 20 MiB diff."""
    if got == want:
        return None
    if len(got) != len(want):
        return f"length {len(got)}, expected {len(want)}"
    at = next(i for i, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
    return f"first differing byte at offset {at}"
