"""What Microsoft Graph and httpx report, translated through one table into cdir errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from cdir.errors import (
    AuthError,
    Conflict,
    ErrorRule,
    NotFound,
    ProviderError,
    Unavailable,
    UsageError,
)


class GraphError(Exception):
    """Graph answered with an error status; `code` is its `error.code` ("itemNotFound"…)."""

    def __init__(self, method: str, status: int, code: str = "", message: str = "") -> None:
        self.method = method
        self.status = status
        self.code = code
        detail = f"{code}: {message}" if code and message else code or message
        reason = httpx.codes.get_reason_phrase(status)
        super().__init__(
            f"{method} answered {status} {reason}" + (f" ({detail})" if detail else "")
        )

    @classmethod
    def of(cls, method: str, resp: httpx.Response) -> GraphError:
        """From an error response: Graph's body is {"error": {"code", "message"}}."""
        try:
            body: Any = resp.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return cls(method, resp.status_code)
        message = " ".join(str(error.get("message") or "").split())  # one line
        return cls(method, resp.status_code, str(error.get("code") or ""), message)


def _status(*codes: int) -> Callable[[BaseException], bool]:
    return lambda e: isinstance(e, GraphError) and e.status in codes


def _server_trouble(e: BaseException) -> bool:
    # 501 will not get better by retrying; 507 (quota full) needs a human
    return isinstance(e, GraphError) and e.status >= 500 and e.status not in (501, 507)


ERRORS: list[ErrorRule] = [
    (_status(401, 403), AuthError, False),
    (_status(404, 410), NotFound, None),
    (_status(423), Conflict, True),  # locked (open in Office, say): try again later
    (_status(409, 412), Conflict, False),
    (_status(429), Unavailable, True),
    (_server_trouble, Unavailable, True),
    (
        lambda e: isinstance(
            e, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
        ),
        Unavailable,
        True,
    ),
    (lambda e: isinstance(e, httpx.InvalidURL | httpx.UnsupportedProtocol), UsageError, False),
    (lambda e: isinstance(e, ValueError), ProviderError, False),  # a body that is not JSON
]
