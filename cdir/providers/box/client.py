"""The box-sdk-gen client of one provider: its base URLs, our OAuth session as its
authentication, its retry strategy with a cap on waits, and the error table."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from box_sdk_gen import BoxClient
from box_sdk_gen.box.errors import BoxAPIError, BoxSDKError
from box_sdk_gen.networking.auth import Authentication
from box_sdk_gen.networking.base_urls import BaseUrls
from box_sdk_gen.networking.box_network_client import BoxNetworkClient
from box_sdk_gen.networking.fetch_options import FetchOptions, ResponseFormat
from box_sdk_gen.networking.network import NetworkSession
from box_sdk_gen.networking.retries import BoxRetryStrategy
from box_sdk_gen.schemas.access_token import AccessToken

from cdir.errors import (
    AlreadyExists,
    AuthError,
    CdirError,
    Conflict,
    ErrorRule,
    NotFound,
    ProviderError,
    Unavailable,
    Unsupported,
    one_line,
    translate,
)
from cdir.providers.oauth import OAuthSession


@dataclass(frozen=True)
class Settings:
    api_url: str
    upload_url: str
    attempts: int  # tries of one request (429, 5xx, network errors)
    max_wait: float  # the longest a Retry-After is obeyed before giving up on the wait


class SessionAuth(Authentication):  # the SDK has no type hints: its classes are Any
    """The SDK's authentication over our OAuthSession, so a refreshed token (Box rotates
    the refresh token on each use) is saved where the provider's secrets live."""

    def __init__(self, session: OAuthSession) -> None:
        super().__init__()
        self.session = session
        self._sent = threading.local()  # the token each thread last sent: the one a 401 refused

    def _token(self, access: str) -> Any:
        return AccessToken(access_token=access, token_type="bearer")

    def retrieve_token(self, *, network_session: Any = None) -> Any:
        return self._token(self.session.access_token())

    def refresh_token(self, *, network_session: Any = None) -> Any:
        return self._token(self.session.refresh(getattr(self._sent, "token", None)))

    def retrieve_authorization_header(self, *, network_session: Any = None) -> str:
        self._sent.token = self.session.access_token()
        return f"Bearer {self._sent.token}"

    def revoke_token(self, *, network_session: Any = None) -> None:
        raise Unsupported("box: revoking tokens is not supported here")

    def downscope_token(self, scopes: Any, **kwargs: Any) -> Any:
        raise Unsupported("box: downscoping tokens is not supported here")


class Retries(BoxRetryStrategy):
    """The SDK's strategy (429, 5xx, 202 with Retry-After, one refresh on a 401) with a
    limit: a Retry-After longer than `max_wait` is not waited out here but reported (a
    retryable error, for the caller's own backoff), and a 401 retries at once."""

    def __init__(self, attempts: int, max_wait: float) -> None:
        super().__init__(max_attempts=attempts, retry_base_interval=0.5)
        self.max_wait = max_wait

    def should_retry(self, fetch_options: Any, fetch_response: Any, attempt_number: int) -> bool:
        wait = _retry_after_header(fetch_response)
        if wait is not None and wait > self.max_wait:
            return False
        return bool(super().should_retry(fetch_options, fetch_response, attempt_number))

    def retry_after(self, fetch_options: Any, fetch_response: Any, attempt_number: int) -> float:
        if fetch_response.status == 401:
            return 0.0  # the token was just refreshed: nothing to wait for
        _retry_after_header(fetch_response)
        return min(float(super().retry_after(fetch_options, fetch_response, attempt_number)),
                   self.max_wait)  # fmt: skip


def _retry_after_header(fetch_response: Any) -> float | None:
    """The answer's Retry-After in seconds, also stored as "Retry-After": the SDK looks
    for that spelling in a plain dict, and HTTP/2 and many proxies send names in lower case
    (it would guess a wait instead)."""
    headers = fetch_response.headers
    for name, value in list(headers.items()):
        if name.lower() == "retry-after":
            headers["Retry-After"] = value
            try:
                return float(value)
            except ValueError:
                return None  # an HTTP date: Box sends seconds
    return None


def make_client(session: OAuthSession, settings: Settings) -> Any:
    urls = BaseUrls(
        base_url=settings.api_url.rstrip("/"), upload_url=settings.upload_url.rstrip("/")
    )
    network = NetworkSession(
        base_urls=urls,
        retry_strategy=Retries(settings.attempts, settings.max_wait),
        network_client=BoxNetworkClient(requests.Session()),
    )
    return BoxClient(SessionAuth(session), network_session=network)


def fetch_json(
    client: Any, method: str, url: str, body: Any, headers: Mapping[str, str]
) -> tuple[int, Any]:
    """(status, JSON) of a request the SDK's typed methods cannot make (the commit of an
    upload session with `attributes`), through the same auth, retries and errors."""
    response = client.network_session.network_client.fetch(
        FetchOptions(
            url=url,
            method=method,
            headers=dict(headers),
            data=body,
            content_type="application/json",
            response_format=ResponseFormat.JSON,
            auth=client.auth,
            network_session=client.network_session,
        )
    )
    return response.status, response.data


class BoxFailure(Exception):
    """An error answer of the Box API: {"type": "error", "status", "code", "message"}."""

    def __init__(self, status: int, code: str, message: str, body: Mapping[str, Any]) -> None:
        self.status = status
        self.code = code
        self.body = body
        super().__init__(one_line(f"{status} {code}: {message}".rstrip(": ")))

    @classmethod
    def of(cls, exc: BoxAPIError) -> BoxFailure:
        info = exc.response_info
        body = info.body if isinstance(info.body, dict) else {}
        return cls(int(info.status_code), str(info.code or ""), str(body.get("message", "")), body)

    def conflict(self) -> dict[str, Any] | None:
        """The item in the way of a 409 (a list of one for folders, an object for files)."""
        found = (self.body.get("context_info") or {}).get("conflicts")
        if isinstance(found, list):
            found = found[0] if found else None
        return found if isinstance(found, dict) else None


class BoxUnreachable(Exception):
    """The SDK could not get an answer (connection refused, reset, timed out)."""


def failure(exc: BaseException) -> BoxFailure | None:
    if isinstance(exc, BoxFailure):
        return exc
    return BoxFailure.of(exc) if isinstance(exc, BoxAPIError) else None


def plain(exc: BaseException) -> BaseException:
    """`exc` with a one-line message for the table (the SDK's run over many lines)."""
    if isinstance(exc, BoxAPIError):
        return BoxFailure.of(exc)
    if isinstance(exc, BoxSDKError) and isinstance(exc.error, requests.RequestException):
        return BoxUnreachable(one_line(str(exc.error)))
    if isinstance(exc, BoxSDKError):
        return RuntimeError(one_line(str(exc.message)))
    return exc


def _status(*codes: int) -> Any:
    return lambda e: isinstance(e, BoxFailure) and e.status in codes


ERRORS: list[ErrorRule] = [
    (_status(401, 403), AuthError, False),
    (_status(404, 410), NotFound, None),
    (lambda e: isinstance(e, BoxFailure) and e.code == "item_name_in_use", AlreadyExists, False),
    (_status(409), Conflict, True),  # operation_blocked_temporary: the item is busy
    (_status(412), Conflict, False),
    (_status(429), Unavailable, True),
    (lambda e: isinstance(e, BoxFailure) and e.status >= 500, Unavailable, True),
    (lambda e: isinstance(e, BoxUnreachable | requests.RequestException), Unavailable, True),
    (lambda e: isinstance(e, BoxFailure), ProviderError, False),
]


@contextmanager
def boxed(what: str) -> Iterator[None]:
    """SDK errors in the block become cdir errors naming `what`."""
    try:
        yield
    except CdirError:
        raise
    except Exception as exc:
        raise translate(plain(exc), ERRORS, what) from exc
