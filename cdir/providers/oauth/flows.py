"""The sign-in flows of `provider add` and `provider auth`: the first token of a provider."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import secrets as _random
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from cdir.errors import AuthError, Unavailable, one_line
from cdir.providers.oauth.session import (
    NO_AUTH,
    OAuthEndpoints,
    Token,
    json_body,
    oauth_error,
    token_post,
    token_request,
)

TIMEOUT_S = 300.0  # how long a sign-in waits for the user
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
PASTE_REDIRECT = "http://127.0.0.1/"  # nothing listens: the browser shows the code in its URL
Say = Callable[[str], None]


def authorize(
    name: str,
    endpoints: OAuthEndpoints,
    client_id: str,
    client_secret: str | None,
    *,
    headless: bool = False,
    say: Say = print,
    http: httpx.Client | None = None,
) -> Token:
    """The first token: the device flow or pasting on a headless machine, else a browser."""
    args = (name, endpoints, client_id, client_secret)
    if not headless:
        return authorize_local(*args, say=say, http=http)
    if endpoints.device_url:
        return authorize_device(*args, say=say, http=http)
    return authorize_paste(*args, say=say, http=http)


def _pkce() -> tuple[str, str]:
    """(verifier, S256 challenge)."""
    verifier = _random.token_urlsafe(64)  # 86 characters, within RFC 7636's 43 to 128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    endpoints: OAuthEndpoints, client_id: str, redirect_uri: str, state: str, challenge: str
) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **({"scope": " ".join(endpoints.scopes)} if endpoints.scopes else {}),
        **endpoints.authorize_params,
    }
    sep = "&" if "?" in endpoints.authorize_url else "?"
    return endpoints.authorize_url + sep + urlencode(query)


def _code_from(name: str, query: Mapping[str, list[str]], state: str) -> str:
    """The code of a redirect's query, after checking `state` (a forged redirect has none)."""
    if "error" in query:
        what = query.get("error_description", query["error"])[0]
        raise AuthError(f"{name}: sign-in refused: {one_line(what)}")
    if query.get("state", [""])[0] != state:
        raise AuthError(f"{name}: sign-in answer with a wrong state: start again")
    code = query.get("code", [""])[0]
    if not code:
        raise AuthError(f"{name}: sign-in answer without a code")
    return code


def _exchange(
    name: str,
    endpoints: OAuthEndpoints,
    client_id: str,
    client_secret: str | None,
    http: httpx.Client | None,
    form: Mapping[str, str],
) -> Token:
    with contextlib.ExitStack() as stack:
        client = http or stack.enter_context(httpx.Client(timeout=30.0))
        body = token_request(client, endpoints, client_id, client_secret, form, name)
    return Token.from_response(body)


@contextlib.contextmanager
def _redirect_server(port: int = 0) -> Iterator[tuple[str, threading.Event, dict[str, Any]]]:
    """A server on 127.0.0.1 answering one redirect: (its URL, set when answered, the query)."""
    answered, query = threading.Event(), {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/" or answered.is_set():  # a favicon, a second tab
                self.send_error(404)
                return
            query.update(parse_qs(parts.query))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"cdir: signed in; you may close this page.\n")
            answered.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # not on the user's terminal

    server = http.server.HTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", answered, query
    finally:
        server.shutdown()
        server.server_close()


def authorize_local(
    name: str,
    endpoints: OAuthEndpoints,
    client_id: str,
    client_secret: str | None,
    *,
    say: Say = print,
    http: httpx.Client | None = None,
    open_browser: Callable[[str], object] = webbrowser.open,
    timeout: float = TIMEOUT_S,
    port: int = 0,
) -> Token:
    """Authorization code + PKCE, the browser redirected to a one-shot local server."""
    verifier, challenge = _pkce()
    state = _random.token_urlsafe(24)
    with _redirect_server(port) as (redirect_uri, answered, query):
        url = authorization_url(endpoints, client_id, redirect_uri, state, challenge)
        say(f"Sign in to {name} in your browser; if it does not open, open:\n  {url}")
        if open_browser(url) is False:  # webbrowser found none
            say("No browser opened here; on a machine without one, add --headless.")
        if not answered.wait(timeout):
            raise AuthError(f"{name}: no sign-in within {timeout:.0f} s")
    code = _code_from(name, query, state)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    return _exchange(name, endpoints, client_id, client_secret, http, form)


def authorize_paste(
    name: str,
    endpoints: OAuthEndpoints,
    client_id: str,
    client_secret: str | None,
    *,
    say: Say = print,
    http: httpx.Client | None = None,
    read: Callable[[str], str] | None = None,  # input() when None
    redirect_uri: str = PASTE_REDIRECT,
) -> Token:
    """Authorization code + PKCE on a machine without a browser: the user opens the URL
    elsewhere and pastes back the address the browser ended on (or just its code)."""
    verifier, challenge = _pkce()
    state = _random.token_urlsafe(24)
    url = authorization_url(endpoints, client_id, redirect_uri, state, challenge)
    say(
        f"Open this URL in a browser on any machine and sign in to {name}:\n  {url}\n"
        "The browser then fails to load a 127.0.0.1 page: copy its address."
    )
    try:
        answer = (read or input)("Paste the address (or the code): ").strip()
    except EOFError:
        raise AuthError(f"{name}: no sign-in answer given") from None
    if answer.startswith(("http://", "https://")):
        code = _code_from(name, parse_qs(urlsplit(answer).query), state)
    elif answer:
        code = answer
    else:
        raise AuthError(f"{name}: no sign-in answer given")
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    return _exchange(name, endpoints, client_id, client_secret, http, form)


def authorize_device(
    name: str,
    endpoints: OAuthEndpoints,
    client_id: str,
    client_secret: str | None,
    *,
    say: Say = print,
    http: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = TIMEOUT_S,
) -> Token:
    """RFC 8628: show a code to enter on another device, poll until the user did."""
    if not endpoints.device_url:
        raise AuthError(f"{name}: this service offers no device sign-in")
    with contextlib.ExitStack() as stack:
        client = http or stack.enter_context(httpx.Client(timeout=30.0))
        grant = _device_grant(client, endpoints, client_id, name)
        uri = (
            grant.get("verification_uri_complete")
            or grant.get("verification_uri")
            or grant.get(
                "verification_url"  # Google's spelling
            )
        )
        say(f"To sign in to {name}, open {uri} and enter the code {grant['user_code']}")
        interval = float(grant.get("interval", 5))
        deadline = time.monotonic() + min(timeout, float(grant.get("expires_in", timeout)))
        form = {"grant_type": DEVICE_GRANT, "device_code": str(grant["device_code"])}
        while time.monotonic() < deadline:
            sleep(interval)
            status, body = token_post(client, endpoints, client_id, client_secret, form, name)
            error = body.get("error")
            if "access_token" in body and 200 <= status < 300:
                return Token.from_response(body)
            if error == "slow_down":
                interval += 5  # RFC 8628 §3.5
            elif error == "expired_token":
                break
            elif error == "access_denied":
                raise AuthError(f"{name}: sign-in refused")
            elif error != "authorization_pending":
                raise oauth_error(name, status, body)
    raise AuthError(f"{name}: the device code expired before the sign-in: start again")


def _device_grant(
    client: httpx.Client, endpoints: OAuthEndpoints, client_id: str, name: str
) -> dict[str, Any]:
    data = {"client_id": client_id}
    if endpoints.scopes:
        data["scope"] = " ".join(endpoints.scopes)
    assert endpoints.device_url is not None
    try:
        r = client.post(endpoints.device_url, data=data, auth=NO_AUTH)
    except httpx.TransportError as exc:
        raise Unavailable(f"{name}: device endpoint unreachable: {one_line(str(exc))}") from None
    body = json_body(r)
    if not r.is_success or "device_code" not in body:
        raise oauth_error(name, r.status_code, body)
    return body
