"""Tokens and their renewal: what a provider holds at run time (see the package docstring)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from cdir.errors import AuthError, ProviderError, Unavailable, one_line
from cdir.providers.base import SecretStore

SKEW_S = 60.0  # renew this long before the expiry the server gave: clocks and requests lag
# Token requests carry no Authorization header, whatever auth the client has (a BearerAuth
# there would recurse); httpx.Auth itself adds nothing.
NO_AUTH = httpx.Auth()


@dataclass(frozen=True)
class OAuthEndpoints:
    authorize_url: str
    token_url: str
    device_url: str | None = None  # RFC 8628 device authorization endpoint, when offered
    scopes: tuple[str, ...] = ()
    # extra query parameters of the authorization URL (Google: access_type=offline)
    authorize_params: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Token:
    """What the secret "token" holds, as JSON."""

    access_token: str
    refresh_token: str | None = None
    expires_at: float | None = None  # Unix time; None: the server gave no lifetime

    @classmethod
    def from_secret(cls, text: str) -> Token:
        try:
            data = json.loads(text)
            return cls(str(data["access_token"]), data.get("refresh_token"), data.get("expires_at"))
        except (ValueError, TypeError, KeyError):
            raise AuthError("the secret 'token' is not an OAuth token (JSON)") from None

    def to_secret(self) -> str:
        return json.dumps(
            {
                "access_token": self.access_token,
                "refresh_token": self.refresh_token,
                "expires_at": self.expires_at,
            }
        )

    @classmethod
    def from_response(cls, body: Mapping[str, Any], refresh_token: str | None = None) -> Token:
        """A token endpoint's answer; `refresh_token` is kept when it sends no new one
        (Google sends one only at the first sign-in)."""
        lifetime = body.get("expires_in")
        return cls(
            access_token=str(body["access_token"]),
            refresh_token=body.get("refresh_token") or refresh_token,
            expires_at=time.time() + float(lifetime) if lifetime is not None else None,
        )

    def expired(self, skew: float = SKEW_S) -> bool:
        return self.expires_at is not None and time.time() + skew >= self.expires_at


class OAuthSession:
    """Access tokens for one provider, renewed when expired or rejected."""

    def __init__(
        self,
        provider_name: str,
        endpoints: OAuthEndpoints,
        client_id: str,
        client_secret: str | None,
        secrets: Mapping[str, str],
        store: SecretStore | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.name = provider_name
        self.endpoints = endpoints
        self.client_id = client_id
        self.client_secret = client_secret
        self.store = store  # None: renewed tokens are kept in `secrets` only (see _keep)
        self._secrets = secrets if isinstance(secrets, dict) else dict(secrets)
        self._http = http
        self._token: Token | None = None
        self._lock = threading.Lock()  # one refresh at a time among this process's threads

    @property
    def token(self) -> Token:
        if self._token is None:
            self._token = self._stored(self._secrets)
        return self._token

    def access_token(self) -> str:
        """A token that has not expired yet, refreshed first when needed."""
        token = self.token
        return self.refresh(token.access_token) if token.expired() else token.access_token

    def refresh(self, rejected: str | None = None) -> str:
        """A new access token, after `rejected` (default: the current one) expired or was
        refused. Under the store's lock the stored token is read again: when another process
        already replaced the rejected one, that one is used and the server is not asked."""
        rejected = rejected or self.token.access_token
        with self._lock, self._locked():
            secrets = self.store.load() if self.store is not None else self._secrets
            stored = self._stored(secrets)
            if stored.access_token != rejected and not stored.expired():
                self._keep(secrets, stored)
                return stored.access_token
            token = self._renew(stored)
            secrets = {**secrets, "token": token.to_secret()}
            if self.store is not None:
                self.store.save(secrets)
            self._keep(secrets, token)
            return token.access_token

    def auth(self) -> httpx.Auth:
        """For an httpx client: the Bearer header, and one refresh and retry on a 401."""
        return BearerAuth(self)

    # --- internals --------------------------------------------------------------------
    def _keep(self, secrets: Mapping[str, str], token: Token) -> None:
        """Hold `secrets` as the current ones. They go into the dict the session was given
        (a provider's `self.secrets`), so a provider checked by `provider add/set` before
        it has a store hands the renewed token to what is then saved: a rotated refresh
        token is never lost."""
        current = dict(secrets)
        self._secrets.clear()
        self._secrets.update(current)
        self._token = token

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return self.store.locked() if self.store is not None else contextlib.nullcontext()

    def _stored(self, secrets: Mapping[str, str]) -> Token:
        text = secrets.get("token")
        if not text:
            raise AuthError(f"{self.name}: not signed in: {_again(self.name)}")
        return Token.from_secret(text)

    def _renew(self, stored: Token) -> Token:
        if not stored.refresh_token:
            raise AuthError(
                f"{self.name}: the token expired and cannot be renewed: " + _again(self.name)
            )
        form = {"grant_type": "refresh_token", "refresh_token": stored.refresh_token}
        body = token_request(
            self._client(), self.endpoints, self.client_id, self.client_secret, form, self.name
        )
        return Token.from_response(body, stored.refresh_token)

    def _client(self) -> httpx.Client:
        if self._http is None:
            self._http = httpx.Client(timeout=30.0)
        return self._http


class BearerAuth(httpx.Auth):
    """The session's access token on every request; a 401 refreshes it once and retries.
    A request with a streamed body cannot be sent twice: give bodies as bytes."""

    def __init__(self, session: OAuthSession) -> None:
        self.session = session

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.session.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self.session.refresh(token)}"
            yield request


def token_request(
    http: httpx.Client,
    endpoints: OAuthEndpoints,
    client_id: str,
    client_secret: str | None,
    form: Mapping[str, str],
    name: str,
) -> dict[str, Any]:
    """POST `form` to the token endpoint; the JSON answer, or its error as a cdir error."""
    status, body = token_post(http, endpoints, client_id, client_secret, form, name)
    if 200 <= status < 300 and "access_token" in body:
        return body
    raise oauth_error(name, status, body)


def token_post(
    http: httpx.Client,
    endpoints: OAuthEndpoints,
    client_id: str,
    client_secret: str | None,
    form: Mapping[str, str],
    name: str,
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a token request; the client's credentials go in the body,
    which all four services accept."""
    data = {**form, "client_id": client_id}
    if client_secret:
        data["client_secret"] = client_secret
    try:
        r = http.post(
            endpoints.token_url, data=data, auth=NO_AUTH, headers={"Accept": "application/json"}
        )
    except httpx.TransportError as exc:
        raise Unavailable(f"{name}: token endpoint unreachable: {one_line(str(exc))}") from None
    return r.status_code, json_body(r)


def oauth_error(name: str, status: int, body: Mapping[str, Any]) -> ProviderError:
    """A token endpoint's error answer (RFC 6749 §5.2) as a cdir error."""
    code = str(body.get("error") or f"HTTP {status}")
    detail = one_line(str(body.get("error_description") or ""))
    if code == "invalid_grant":
        return AuthError(f"{name}: the sign-in expired or was revoked: {_again(name)}")
    if status == 429 or status >= 500:
        return Unavailable(f"{name}: token endpoint: {code} {detail}".rstrip())
    return AuthError(f"{name}: token endpoint refused: {code} {detail}".rstrip())


def _again(name: str) -> str:
    return f"run `cdir provider auth {name}` to sign in again"


def json_body(r: httpx.Response) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
