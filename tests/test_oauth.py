"""OAuth for the drives (cdir.providers.oauth) against a fake authorization server on
loopback: refresh when expired, 401 → refresh → retry, one refresh for two processes sharing a
vault, the three sign-in flows, and `provider add`/`provider auth` for a kind that signs in."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from cdir.errors import AuthError
from cdir.providers.memory import MemoryProvider
from cdir.providers.oauth import (
    OAuthEndpoints,
    OAuthSession,
    Token,
    authorize,
    authorize_device,
    authorize_local,
    authorize_paste,
)
from cdir.providers.options import OptionSpec
from cdir.vault import Vault, VaultSecretStore
from tests.fakes.serve import serve_asgi

CLIENT_ID = "cdir-test-client"


# --- the fake authorization server --------------------------------------------------------
@dataclass
class FakeAuth:
    """Tokens as an OAuth 2.0 server keeps them (RFC 6749, 7636, 8628). `rotate`: every
    refresh replaces the refresh token and the old one stops working (Box); else the first
    one stays and answers carry none (Google)."""

    rotate: bool = True
    lifetime: int = 3600
    pending: int = 0  # device polls answered authorization_pending before the grant
    slow_down: int = 0  # then this many slow_down answers
    access: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code → challenge, redirect
    refreshes: int = 0
    serial: Iterator[int] = field(default_factory=itertools.count)

    def token(self) -> Token:
        """A valid token, as if signed in already."""
        body = self._issue(new_refresh=True)
        return Token.from_response(body)

    def code_for(self, auth_url: str) -> tuple[str, str, str]:
        """What the user's browser gets back after signing in at `auth_url`:
        (redirect_uri, code, state)."""
        q = {k: v[0] for k, v in parse_qs(urlsplit(auth_url).query).items()}
        assert q["client_id"] == CLIENT_ID and q["code_challenge_method"] == "S256"
        code = f"code-{next(self.serial)}"
        self.codes[code] = (q["code_challenge"], q["redirect_uri"])
        return q["redirect_uri"], code, q["state"]

    def _issue(self, new_refresh: bool) -> dict[str, Any]:
        n = next(self.serial)
        access = f"at-{n}"
        self.access.add(access)
        body: dict[str, Any] = {"access_token": access, "token_type": "bearer"}
        body["expires_in"] = self.lifetime
        if new_refresh:
            body["refresh_token"] = f"rt-{n}"
            self.refresh_tokens.add(body["refresh_token"])
        return body

    async def token_endpoint(self, request: Request) -> JSONResponse:
        form = await _form(request)
        if form.get("client_id") != CLIENT_ID:
            return _error("invalid_client", 401)
        grant = form.get("grant_type")
        if grant == "refresh_token":
            rt = str(form.get("refresh_token"))
            if rt not in self.refresh_tokens:
                return _error("invalid_grant")
            self.refreshes += 1
            if self.rotate:
                self.refresh_tokens.discard(rt)
            return JSONResponse(self._issue(new_refresh=self.rotate))
        if grant == "authorization_code":
            challenge, redirect = self.codes.pop(str(form.get("code")), ("", ""))
            verifier = str(form.get("code_verifier", "")).encode()
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
            if digest.decode() != challenge or form.get("redirect_uri") != redirect:
                return _error("invalid_grant")
            return JSONResponse(self._issue(new_refresh=True))
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            if form.get("device_code") != "dev-1":
                return _error("invalid_grant")
            if self.pending:
                self.pending -= 1
                return _error("authorization_pending")
            if self.slow_down:
                self.slow_down -= 1
                return _error("slow_down")
            return JSONResponse(self._issue(new_refresh=True))
        return _error("unsupported_grant_type")

    async def device_endpoint(self, request: Request) -> JSONResponse:
        form = await _form(request)
        if form.get("client_id") != CLIENT_ID:
            return _error("invalid_client", 401)
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "device_code": "dev-1",
                "user_code": "WDJB-MJHT",
                "verification_uri": f"{base}/device",
                "expires_in": 600,
                "interval": 0,  # the tests do not wait
            }
        )

    async def me(self, request: Request) -> JSONResponse:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.access:
            return JSONResponse({"error": "invalid_token"}, status_code=401)
        return JSONResponse({"user": "ada"})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/token", self.token_endpoint, methods=["POST"]),
                Route("/device/code", self.device_endpoint, methods=["POST"]),
                Route("/me", self.me),
            ]
        )


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (python-multipart is not a dependency)."""
    return {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}


def _error(code: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": code, "error_description": f"fake: {code}"}, status_code=status)


def endpoints(base: str, device: bool = True) -> OAuthEndpoints:
    return OAuthEndpoints(
        authorize_url=f"{base}/authorize",
        token_url=f"{base}/token",
        device_url=f"{base}/device/code" if device else None,
        scopes=("files.readwrite", "offline_access"),
        authorize_params={"access_type": "offline"},
    )


@dataclass
class DictStore:
    """A SecretStore in memory, counting saves."""

    secrets: dict[str, str]
    saves: int = 0

    def load(self) -> dict[str, str]:
        return dict(self.secrets)

    def save(self, secrets: dict[str, str]) -> None:
        self.secrets, self.saves = dict(secrets), self.saves + 1

    def locked(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@pytest.fixture
def fake() -> FakeAuth:
    return FakeAuth()


@pytest.fixture
def base(fake: FakeAuth) -> Iterator[str]:
    with serve_asgi(fake.app()) as url:
        yield url


def expired(token: Token) -> Token:
    return Token(token.access_token, token.refresh_token, time.time() - 1)


def session(base: str, token: Token, store: DictStore | None = None) -> OAuthSession:
    secrets = {"token": token.to_secret()}
    return OAuthSession("drive", endpoints(base), CLIENT_ID, None, secrets, store)


# --- refreshing -----------------------------------------------------------------------------
def test_token_secret_round_trip() -> None:
    t = Token("a", "r", 12.5)
    assert Token.from_secret(t.to_secret()) == t
    with pytest.raises(AuthError):
        Token.from_secret("not json")


def test_refresh_when_expired_saves_the_rotated_token(fake: FakeAuth, base: str) -> None:
    old = expired(fake.token())
    store = DictStore({"token": old.to_secret(), "client_secret": "kept"})
    s = session(base, old, store)
    access = s.access_token()
    assert access != old.access_token and fake.refreshes == 1
    saved = Token.from_secret(store.secrets["token"])
    assert saved.access_token == access and saved.refresh_token in fake.refresh_tokens
    assert saved.refresh_token != old.refresh_token  # rotated: the new one is kept
    assert store.secrets["client_secret"] == "kept" and store.saves == 1
    assert s.access_token() == access and fake.refreshes == 1  # valid now: no second refresh


def test_without_a_store_the_given_secrets_get_the_new_token(fake: FakeAuth, base: str) -> None:
    # a provider checked by `provider add/set` has no store yet: what is saved afterwards
    # is its `secrets`, which must hold the rotated refresh token
    old = expired(fake.token())
    secrets = {"token": old.to_secret(), "client_secret": "s"}
    access = OAuthSession("drive", endpoints(base), CLIENT_ID, None, secrets).access_token()
    saved = Token.from_secret(secrets["token"])
    assert saved.access_token == access and saved.refresh_token in fake.refresh_tokens


def test_refresh_keeps_the_refresh_token_when_none_is_sent(base: str, fake: FakeAuth) -> None:
    fake.rotate = False  # Google: the refresh token of the first sign-in stays
    old = expired(fake.token())
    store = DictStore({"token": old.to_secret()})
    session(base, old, store).access_token()
    assert Token.from_secret(store.secrets["token"]).refresh_token == old.refresh_token


def test_token_within_the_skew_is_refreshed(fake: FakeAuth, base: str) -> None:
    t = fake.token()
    soon = Token(t.access_token, t.refresh_token, time.time() + 30)  # < 60 s left
    assert session(base, soon).access_token() != t.access_token


def test_401_refreshes_once_and_retries(fake: FakeAuth, base: str) -> None:
    t = fake.token()
    store = DictStore({"token": t.to_secret()})
    s = session(base, t, store)
    fake.access.clear()  # revoked on the server although not expired here
    with httpx.Client(base_url=base, auth=s.auth()) as client:
        r = client.get("/me")
        assert r.status_code == 200 and fake.refreshes == 1
        assert client.get("/me").status_code == 200 and fake.refreshes == 1
    # a token refused again after the refresh is the caller's 401, not a loop
    fake.access.clear()
    fake.refresh_tokens.clear()
    with httpx.Client(base_url=base, auth=s.auth()) as client, pytest.raises(AuthError):
        client.get("/me")


def test_refresh_uses_a_token_another_process_saved(fake: FakeAuth, base: str) -> None:
    old = expired(fake.token())
    store = DictStore({"token": old.to_secret()})
    s = session(base, old, store)
    newer = fake.token()
    store.secrets["token"] = newer.to_secret()  # another process refreshed meanwhile
    assert s.refresh(old.access_token) == newer.access_token
    assert fake.refreshes == 0 and store.saves == 0


def test_invalid_grant_is_one_line_naming_the_fix(fake: FakeAuth, base: str) -> None:
    t = expired(fake.token())
    fake.refresh_tokens.clear()  # revoked
    with pytest.raises(AuthError) as err:
        session(base, t).access_token()
    assert "\n" not in str(err.value)
    assert "cdir provider auth drive" in str(err.value)


def test_no_token_says_how_to_sign_in(base: str) -> None:
    s = OAuthSession("drive", endpoints(base), CLIENT_ID, None, {})
    with pytest.raises(AuthError, match="provider auth drive"):
        s.access_token()


# --- two processes, one vault ---------------------------------------------------------------
def _refresh_in_child(vault: str, base: str, rejected: str, barrier: Any, out: Any) -> None:
    import cdir.vault

    cdir.vault.SCRYPT_N = 2**10
    v = Vault(Path(vault), "pass")
    store = VaultSecretStore(v, "drive")
    s = OAuthSession("drive", endpoints(base), CLIENT_ID, None, store.load(), store)
    barrier.wait(10)
    token = s.refresh(rejected)
    out.put(httpx.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"}).status_code)


def test_two_processes_refresh_once(
    fake: FakeAuth, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cdir.vault

    monkeypatch.setattr(cdir.vault, "SCRYPT_N", 2**10)
    vault = Vault(tmp_path / "vault", "pass")
    first = fake.token()
    vault.set("drive", {"token": first.to_secret()})
    vault.set("other", {"password": "x"})
    fake.access.clear()  # the server rejects it: both processes get a 401 at once
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    args = (str(vault.path), base, first.access_token, barrier, out)
    procs = [ctx.Process(target=_refresh_in_child, args=args) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert [out.get(timeout=5), out.get(timeout=5)] == [200, 200]
    assert fake.refreshes == 1
    stored = Token.from_secret(vault.get("drive", fresh=True)["token"])
    assert stored.refresh_token in fake.refresh_tokens  # the rotated one was not lost
    assert vault.get("other") == {"password": "x"}


def _write_refs(vault: str, prefix: str, n: int, barrier: Any) -> None:
    import cdir.vault

    cdir.vault.SCRYPT_N = 2**10
    v = Vault(Path(vault), "pass")
    barrier.wait(10)
    for i in range(n):
        v.set(f"{prefix}{i}", {"secret": str(i)})


def test_vault_writes_from_two_processes_all_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cdir.vault

    monkeypatch.setattr(cdir.vault, "SCRYPT_N", 2**10)
    path = tmp_path / "vault"
    Vault(path, "pass").set("first", {"a": "b"})
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [
        ctx.Process(target=_write_refs, args=(str(path), prefix, 8, barrier))
        for prefix in ("a", "b")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    want = {"first", *(f"{p}{i}" for p in "ab" for i in range(8))}
    assert set(Vault(path, "pass").refs()) == want


# --- sign-in flows --------------------------------------------------------------------------
def test_local_redirect_flow(fake: FakeAuth, base: str) -> None:
    said: list[str] = []

    def browser(url: str) -> None:
        assert url.startswith(f"{base}/authorize?") and "access_type=offline" in url
        redirect, code, state = fake.code_for(url)
        assert redirect.startswith("http://127.0.0.1:")
        r = httpx.get(redirect, params={"code": code, "state": state})
        assert r.status_code == 200

    token = authorize_local(
        "drive", endpoints(base), CLIENT_ID, None, say=said.append, open_browser=browser
    )
    assert token.access_token in fake.access and token.refresh_token in fake.refresh_tokens
    assert "/authorize?" in said[0]  # the URL is printed too, for a browser that won't open


def test_local_redirect_with_a_wrong_state_is_refused(fake: FakeAuth, base: str) -> None:
    def browser(url: str) -> None:
        redirect, code, _ = fake.code_for(url)
        httpx.get(redirect, params={"code": code, "state": "forged"})

    with pytest.raises(AuthError, match="wrong state"):
        authorize_local("drive", endpoints(base), CLIENT_ID, None, say=print, open_browser=browser)


def test_local_redirect_times_out_in_one_line(base: str) -> None:
    with pytest.raises(AuthError, match=r"no sign-in within 0 s"):
        authorize_local(
            "drive", endpoints(base), CLIENT_ID, None, say=print, open_browser=len, timeout=0.05
        )


def test_device_flow_pending_then_granted(fake: FakeAuth, base: str) -> None:
    fake.pending, fake.slow_down = 2, 1
    said: list[str] = []
    waits: list[float] = []
    token = authorize_device(
        "drive", endpoints(base), CLIENT_ID, None, say=said.append, sleep=waits.append
    )
    assert token.access_token in fake.access
    assert "WDJB-MJHT" in said[0] and f"{base}/device" in said[0]
    assert waits == [0, 0, 0, 5]  # the server's interval, then 5 s more after slow_down


def test_device_flow_expired(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_app = FakeAuth(pending=10**6)
    with serve_asgi(fake_app.app()) as url:
        polls: list[float] = []

        def sleep(seconds: float) -> None:
            polls.append(seconds)
            if len(polls) == 3:  # the user never comes: the code's lifetime passes
                monkeypatch.setattr(time, "monotonic", lambda: 10**12)

        with pytest.raises(AuthError, match="expired"):
            authorize_device("drive", endpoints(url), CLIENT_ID, None, say=print, sleep=sleep)


def test_paste_flow(fake: FakeAuth, base: str) -> None:
    said: list[str] = []

    def paste(prompt: str) -> str:
        url = next(w for w in said[0].split() if w.startswith(base))
        redirect, code, state = fake.code_for(url)
        return f"{redirect}?{urlencode({'code': code, 'state': state})}"

    token = authorize_paste("drive", endpoints(base), CLIENT_ID, None, say=said.append, read=paste)
    assert token.access_token in fake.access


def test_paste_flow_takes_a_bare_code(fake: FakeAuth, base: str) -> None:
    said: list[str] = []

    def paste(prompt: str) -> str:
        return fake.code_for(next(w for w in said[0].split() if w.startswith(base)))[1]

    token = authorize_paste("drive", endpoints(base), CLIENT_ID, None, say=said.append, read=paste)
    assert token.access_token in fake.access


def test_headless_chooses_device_then_paste(
    fake: FakeAuth, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert authorize("drive", endpoints(base), CLIENT_ID, None, headless=True, say=print)
    monkeypatch.setattr("builtins.input", lambda prompt: "")
    with pytest.raises(AuthError, match="no sign-in answer"):
        authorize("drive", endpoints(base, device=False), CLIENT_ID, None, headless=True)


# --- provider add / provider auth for a kind that signs in ----------------------------------
class SignedInMemory(MemoryProvider):
    """A memory provider that needs a token the fake accepts (as a drive would)."""

    kind = "signedin"
    oauth: ClassVar[OAuthEndpoints]
    options = (
        *MemoryProvider.options,
        OptionSpec("client_id", "the OAuth app's client id"),
        OptionSpec("client_secret", "the OAuth app's secret", secret=True),
        OptionSpec("token", "the OAuth token (JSON)", secret=True),
    )

    def check(self) -> None:
        session = OAuthSession(
            self.name,
            self.oauth,
            self.conf["client_id"],
            self.conf["client_secret"],
            self.secrets,
            self.secret_store,
        )
        with httpx.Client(auth=session.auth()) as client:
            if client.get(self.oauth.token_url.replace("/token", "/me")).status_code != 200:
                raise AuthError(f"{self.name}: refused")


@pytest.fixture
def signedin(base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from cdir.providers import registry

    monkeypatch.setattr(SignedInMemory, "oauth", endpoints(base), raising=False)
    known = registry._entry_points()
    monkeypatch.setattr(
        registry,
        "_entry_points",
        lambda: {
            **known,
            "signedin": EntryPoint("signedin", f"{__name__}:SignedInMemory", "cdir.providers"),
        },
    )


def test_provider_add_and_auth_sign_in(
    cli: Any, fake: FakeAuth, signedin: None, home: Path
) -> None:
    from cdir.config import Settings

    fake.pending = 1
    r = cli("provider", "add", "d", "--kind", "signedin", "--root", "mem-oauth", "--headless")
    assert r.code != 0 and "client_id=" in r.err  # no client id given: one line saying so
    r = cli(
        "provider", "add", "d", "--kind", "signedin", "--root", "mem-oauth",
        "-O", f"client_id={CLIENT_ID}", "--headless",
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "WDJB-MJHT" in r.err + r.out
    vault = Vault(Settings().vault, "test passphrase")
    first = Token.from_secret(vault.get("d")["token"])
    assert first.access_token in fake.access

    # the server forgets the token: `provider test` refreshes it and the vault keeps the new one
    fake.access.clear()
    r = cli("provider", "test", "d")
    assert r.code == 0, r.err
    second = Token.from_secret(vault.get("d", fresh=True)["token"])
    assert second.refresh_token != first.refresh_token and fake.refreshes == 1

    # revoked: `provider auth` signs in again
    fake.refresh_tokens.clear()
    fake.access.clear()
    assert cli("provider", "test", "d").code != 0
    r = cli("provider", "auth", "d", "--headless")
    assert r.code == 0, r.err
    third = Token.from_secret(vault.get("d", fresh=True)["token"])
    assert third.access_token in fake.access
    assert json.loads(third.to_secret())["refresh_token"] in fake.refresh_tokens
