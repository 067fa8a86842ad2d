"""Request bodies read as streams, never held whole: the bridge from an async request body
to the sync, file-like stream that `vdir.write` reads in a worker thread."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import anyio.from_thread
from fastapi import HTTPException, Request


def declared_length(request: Request, limit: int) -> int | None:
    """The body's Content-Length (None when chunked); 413 at once when over `limit`."""
    text = request.headers.get("content-length")
    if text is None:
        return None
    if not text.isdigit():
        raise HTTPException(400, "bad Content-Length")
    size = int(text)
    if size > limit:
        raise HTTPException(413, f"body of {size} bytes is over the limit of {limit} bytes")
    return size


class BodyReader(io.RawIOBase):
    """The request body as a readable stream, for a worker thread (anyio.to_thread): each
    read takes the next chunk from the event loop. More than `limit` bytes fails the read
    (the writer then keeps any previous version) and sets `over`: the caller answers 413."""

    def __init__(self, request: Request, limit: int) -> None:
        super().__init__()
        self._chunks: AsyncIterator[bytes] = request.stream().__aiter__()
        self._buf = b""
        self._limit = limit
        self.count = 0
        self.over = False  # more than `limit` came: the write failed for that reason

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        return await self._chunks.__anext__()

    def readinto(self, b: Any) -> int:
        while not self._buf:
            try:
                self._buf = anyio.from_thread.run(self._next)
            except StopAsyncIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self.count += n
        if self.count > self._limit:
            self.over = True
            raise OSError(f"the body is over the limit of {self._limit} bytes")
        return n

    def too_large(self) -> HTTPException:
        return HTTPException(413, f"body over the limit of {self._limit} bytes")
