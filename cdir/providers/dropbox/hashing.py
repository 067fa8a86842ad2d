"""Dropbox's `content_hash`: the SHA-256 of the concatenated SHA-256 digests of the file's
4 MiB blocks (the last block may be shorter; an empty file has no block)."""

from __future__ import annotations

import hashlib

BLOCK = 4 * 1024 * 1024


class ContentHasher:
    """`content_hash` computed incrementally, so an upload hashes its bytes as they stream."""

    def __init__(self) -> None:
        self._digests = hashlib.sha256()  # over the block digests
        self._block = hashlib.sha256()
        self._filled = 0  # bytes in the current block

    def update(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            take = min(len(view), BLOCK - self._filled)
            self._block.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == BLOCK:
                self._close_block()

    def _close_block(self) -> None:
        self._digests.update(self._block.digest())
        self._block, self._filled = hashlib.sha256(), 0

    def hexdigest(self) -> str:
        total = self._digests.copy()
        if self._filled:  # the last, short block
            total.update(self._block.digest())
        return total.hexdigest()


def content_hash(data: bytes) -> str:
    """The `content_hash` Dropbox reports for a file holding `data` (lowercase hex)."""
    hasher = ContentHasher()
    hasher.update(data)
    return hasher.hexdigest()
