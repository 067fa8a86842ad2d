"""libcloud's errors in cdir's terms, and two fixes to how libcloud speaks HTTP."""

from __future__ import annotations

import re
from typing import Any

import requests
from libcloud.common.aws import AWSRequestSignerAlgorithmV4
from libcloud.common.exceptions import BaseHTTPError, RateLimitReachedError
from libcloud.common.types import InvalidCredsError, LibcloudError
from libcloud.storage.base import StorageDriver
from libcloud.storage.types import ContainerDoesNotExistError, ObjectDoesNotExistError

from cdir.errors import AuthError, ErrorRule, NotFound, ProviderError, Unavailable
from cdir.providers.common import RETRY_STATUS

_STATUS = re.compile(r"status[ _]code[:=]?\s*(\d{3})", re.I)


def status(e: BaseException) -> int | None:
    """The HTTP status an error carries: libcloud keeps it in an attribute or only in its text
    ("Unexpected status code: 503", "… Status code: 429.")."""
    for attr in ("http_code", "code"):
        code = getattr(e, attr, None)
        if isinstance(code, int):
            return code
    m = _STATUS.search(str(getattr(e, "value", "") or e))
    return int(m.group(1)) if m else None


ERRORS: list[ErrorRule] = [
    (lambda e: isinstance(e, InvalidCredsError), AuthError, False),
    (
        lambda e: isinstance(e, ObjectDoesNotExistError | ContainerDoesNotExistError),
        NotFound,
        False,
    ),
    (lambda e: isinstance(e, RateLimitReachedError), Unavailable, True),
    (lambda e: status(e) in (401, 403), AuthError, False),
    (lambda e: status(e) == 404, NotFound, False),
    (lambda e: status(e) in RETRY_STATUS, Unavailable, True),
    # connection refused or reset, DNS, timeouts
    (lambda e: isinstance(e, requests.ConnectionError | requests.Timeout), Unavailable, True),
    (lambda e: isinstance(e, ConnectionError | TimeoutError), Unavailable, True),
    (lambda e: isinstance(e, LibcloudError | BaseHTTPError), ProviderError, False),
]

# how libcloud's errors print themselves: "<LibcloudError in <driver object at 0x…> 'text'>"
_REPR = re.compile(r"<\w+ in <[^>]*> (['\"])(.*)\1>")


def scrub(message: str) -> str:
    """A message with libcloud's error repr reduced to its text."""
    return _REPR.sub(lambda m: m.group(2), message)


def tune(driver: StorageDriver) -> None:
    """Two fixes to how libcloud talks HTTP, on this driver only:

    - requests guesses the charset of a body whose Content-Type names none (S3's XML), and a
      listing of names full of "é" decodes as EUC-KR: XML and JSON are UTF-8 unless said.
    - The SigV4 signer adds `Version=2006-03-01` to every GET, a parameter of AWS's query APIs
      (EC2) that S3 does not define; AWS ignores it, SeaweedFS answers a listing with it 501.
    """
    conn = driver.connection
    signer = getattr(conn, "signer", None)
    if isinstance(signer, AWSRequestSignerAlgorithmV4):
        # this instance only: the signer is the connection's own
        signer.get_request_params = lambda params, method="GET", path="/": params  # type: ignore[method-assign]
    if conn.connection is None and getattr(conn, "host", None):
        conn.connect()  # makes the requests session, sends nothing
    session = getattr(conn.connection, "session", None)
    if isinstance(session, requests.Session):
        session.hooks["response"].append(_utf8)


def _utf8(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    if "charset=" not in response.headers.get("content-type", "").lower():
        response.encoding = "utf-8"
    return response
