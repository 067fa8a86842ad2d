"""What the Dropbox API answers on failure, translated through one table into cdir errors.

Endpoint errors come as 409 with `{"error_summary": "path/not_found/..", "error": {...}}`: the
summary's tags (`path/not_found`) say what went wrong, whatever the endpoint. Other statuses:
400 bad input (plain text), 401 token, 403 access, 429 throttled (JSON or plain text), 5xx.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx

from cdir.errors import (
    AuthError,
    Conflict,
    ErrorRule,
    InvalidPath,
    IsADirectory,
    NotADirectory,
    NotFound,
    ProviderError,
    Unavailable,
    UsageError,
)


class ApiError(Exception):
    """A Dropbox API call failed: `status`, and for endpoint errors the summary's tags."""

    def __init__(
        self,
        endpoint: str,
        status: int,
        summary: str = "",
        text: str = "",
        error: Mapping[str, Any] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.status = status
        self.summary = summary
        self.error = error or {}  # the body's "error" union
        # "path/not_found/.." → ("path", "not_found"); the trailing ".." is a request id
        self.tags = tuple(t for t in summary.split("/") if t and not t.startswith("."))
        first = text.strip().splitlines()[0][:200] if text.strip() else ""
        detail = summary.rstrip("./") or first
        reason = httpx.codes.get_reason_phrase(status)
        super().__init__(
            f"{endpoint} answered {status} {reason}" + (f": {detail}" if detail else "")
        )

    def field(self, name: str) -> Any:
        """The first `name` in the error union, at any depth (`correct_offset`); None if none."""
        todo: list[Any] = [self.error]
        while todo:
            item = todo.pop(0)
            if isinstance(item, Mapping):
                if name in item:
                    return item[name]
                todo.extend(item.values())
        return None

    def has(self, *tags: str) -> bool:
        """Whether every tag in `tags` is in the summary (`has("conflict", "file")`)."""
        return all(t in self.tags for t in tags)


def _tag(*tags: str) -> Callable[[BaseException], bool]:
    return lambda e: isinstance(e, ApiError) and e.has(*tags)


def _status(test: Callable[[int], bool]) -> Callable[[BaseException], bool]:
    return lambda e: isinstance(e, ApiError) and test(e.status)


ERRORS: list[ErrorRule] = [
    (_status(lambda s: s in (401, 403)), AuthError, False),
    (_tag("not_found"), NotFound, None),
    (_tag("not_folder"), NotADirectory, None),
    (_tag("not_file"), IsADirectory, None),
    (_tag("conflict", "folder"), IsADirectory, None),
    (_tag("conflict"), Conflict, False),
    (_tag("malformed_path"), InvalidPath, None),
    (_tag("disallowed_name"), InvalidPath, None),
    (_tag("content_hash_mismatch"), Unavailable, True),  # damaged on the way: send again
    (_tag("too_many_write_operations"), Unavailable, True),
    (_status(lambda s: s == 429 or s >= 500), Unavailable, True),
    (
        lambda e: isinstance(
            e, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
        ),
        Unavailable,
        True,
    ),
    (lambda e: isinstance(e, httpx.InvalidURL | httpx.UnsupportedProtocol), UsageError, False),
    (_status(lambda s: s == 400), ProviderError, False),
]
