"""What WebDAV servers and httpx report, translated through one table into cdir errors."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable

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


class DAVStatus(Exception):
    """A WebDAV server answered a request with an error status."""

    def __init__(self, method: str, status: int) -> None:
        self.method = method
        self.status = status
        reason = httpx.codes.get_reason_phrase(status)
        hint = " (check username and password)" if status == 401 else ""
        super().__init__(f"{method} answered {status} {reason}{hint}".strip())


def _status(*codes: int) -> Callable[[BaseException], bool]:
    return lambda e: isinstance(e, DAVStatus) and e.status in codes


def _server_trouble(e: BaseException) -> bool:
    # 501/505 will not get better by retrying; 507 (storage full) needs a human
    return isinstance(e, DAVStatus) and e.status >= 500 and e.status not in (501, 505, 507)


ERRORS: list[ErrorRule] = [
    (_status(401, 403), AuthError, False),
    (_status(404, 410), NotFound, None),
    (_status(423), Conflict, True),  # locked by another client: try again later
    (_status(409, 412), Conflict, False),
    (_status(429), Unavailable, True),
    (_server_trouble, Unavailable, True),
    (
        lambda e: isinstance(e, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(e),
        ProviderError,
        False,
    ),
    (
        lambda e: isinstance(
            e, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError
        ),
        Unavailable,
        True,
    ),
    (lambda e: isinstance(e, httpx.InvalidURL | httpx.UnsupportedProtocol), UsageError, False),
    (lambda e: isinstance(e, ET.ParseError), ProviderError, False),
]
