"""The Dropbox HTTP API: RPC endpoints (POST, JSON in and out) on `api_url`, content endpoints
(arguments in the `Dropbox-API-Arg` header, bytes in the body) on `content_url`. One retry loop
for every call: 429 and 5xx wait for Retry-After (or back off), a bounded number of times."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from cdir.providers.dropbox.errors import ApiError

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def api_arg(arg: Mapping[str, Any]) -> str:
    """JSON for the `Dropbox-API-Arg` header: HTTP headers are ASCII, so every character from
    0x7F up is escaped as \\uXXXX, as the API asks."""
    return json.dumps(arg, separators=(",", ":")).replace("\x7f", "\\u007f")


class DropboxAPI:
    def __init__(
        self,
        api_url: str,
        content_url: str,
        auth: httpx.Auth | None,
        *,
        timeout: float,
        max_retries: int,
        max_wait: float,
        max_connections: int,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.content_url = content_url.rstrip("/")
        self.max_retries = max_retries
        self.max_wait = max_wait
        self.sleep: Callable[[float], None] = time.sleep  # tests record the waits instead
        self._auth = auth
        self._timeout = timeout
        self._max_connections = max_connections
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def http(self) -> httpx.Client:
        """The client, made on first use (one per provider, shared by its threads)."""
        with self._lock:
            if self._client is None:
                n = self._max_connections
                self._client = httpx.Client(
                    auth=self._auth,
                    timeout=httpx.Timeout(self._timeout, pool=None),
                    limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
                    headers={"User-Agent": "cdir"},
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- the three kinds of call ---------------------------------------------------------
    def rpc(self, endpoint: str, arg: Mapping[str, Any]) -> dict[str, Any]:
        url = f"{self.api_url}/2/{endpoint}"
        resp = self._send(endpoint, lambda: self.http().build_request("POST", url, json=arg))
        return _json(resp)

    def upload(self, endpoint: str, arg: Mapping[str, Any], data: bytes) -> dict[str, Any]:
        """A content-upload call with `data` (bytes, so a retry can send it again)."""
        url = f"{self.content_url}/2/{endpoint}"
        headers = {"Dropbox-API-Arg": api_arg(arg), "Content-Type": "application/octet-stream"}
        resp = self._send(
            endpoint,
            lambda: self.http().build_request("POST", url, headers=headers, content=data),
        )
        return _json(resp)

    @contextmanager
    def download(
        self, arg: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """files/download, its body left to stream (retries cover getting the answer)."""
        url = f"{self.content_url}/2/files/download"
        sent = {"Dropbox-API-Arg": api_arg(arg), **(headers or {})}
        resp = self._send(
            "files/download",
            lambda: self.http().build_request("POST", url, headers=sent),
            stream=True,
            ok=(416,),
        )
        try:
            yield resp
        finally:
            resp.close()

    # --- retries ---------------------------------------------------------------------------
    def _send(
        self,
        endpoint: str,
        build: Callable[[], httpx.Request],
        stream: bool = False,
        ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                resp = self.http().send(build(), stream=stream)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
                # the request never left: safe to send again, whatever it does
                if attempt >= self.max_retries:
                    raise
                self._wait(attempt, None)
                attempt += 1
                continue
            if resp.status_code < 400 or resp.status_code in ok:
                return resp
            if stream:
                resp.read()
                resp.close()
            error = api_error(endpoint, resp)
            if resp.status_code not in RETRY_STATUS or attempt >= self.max_retries:
                raise error
            self._wait(attempt, retry_after(resp))
            attempt += 1

    def _wait(self, attempt: int, asked: float | None) -> None:
        """Retry-After when the server says it, else exponential backoff with jitter;
        never longer than `max_wait`."""
        delay = asked if asked is not None else 0.5 * 2**attempt * (0.5 + random.random())
        self.sleep(min(max(delay, 0.0), self.max_wait))


def api_error(endpoint: str, resp: httpx.Response) -> ApiError:
    """The error a failed answer carries: endpoint errors and JSON 429s have a summary."""
    body = _json(resp) if _is_json(resp) else {}
    summary = str(body.get("error_summary") or "")
    error = body.get("error")
    return ApiError(
        endpoint,
        resp.status_code,
        summary,
        "" if body else resp.text,
        error if isinstance(error, dict) else None,
    )


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds to wait: the Retry-After header, else a JSON body's `error.retry_after`."""
    header = resp.headers.get("Retry-After", "")
    if header.strip().isdigit():
        return float(header)
    body = _json(resp) if _is_json(resp) else {}
    error = body.get("error")
    seconds = error.get("retry_after") if isinstance(error, dict) else None
    return float(seconds) if isinstance(seconds, int | float) else None


def _is_json(resp: httpx.Response) -> bool:
    return resp.headers.get("Content-Type", "").startswith("application/json")


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
