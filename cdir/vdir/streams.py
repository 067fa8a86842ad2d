"""Adapters between chunk iterators and file objects, for provider → provider streaming."""

from __future__ import annotations

import io
from collections.abc import Iterator


class ChunkReader(io.RawIOBase):
    """A readable, non-seekable file object over an iterator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")  # a view: handing out part of a chunk copies nothing

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._buf = memoryview(nxt)
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n


def reader(chunks: Iterator[bytes]) -> io.BufferedReader:
    return io.BufferedReader(ChunkReader(chunks), buffer_size=1024 * 1024)
