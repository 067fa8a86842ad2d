"""The requests of one OneDrive provider: Graph URLs of drive paths, one retry loop that
honours Retry-After, paging through `@odata.nextLink`, and polling an asynchronous job."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import httpx

from cdir.errors import ProviderError
from cdir.providers.common import RETRY_STATUS
from cdir.providers.onedrive.errors import GraphError

MAX_WAIT_S = 120.0  # the longest one Retry-After is honoured; a server asking more is down
Json = dict[str, Any]


def item_url(full: str, action: str = "") -> str:
    """The URL, relative to the drive, of the item at `full` (a path from the drive root),
    or of one of its actions ("children", "content", "copy"…): `/root:/a/b%20c:/content`.
    Every segment is percent-encoded; OneDrive names hold no "/" (nor ":")."""
    tail = f"/{action}" if action else ""
    if not full:
        return f"/root{tail}"
    return f"/root:/{quote(full, safe='/')}:{tail}"


def retry_after(resp: httpx.Response | None, attempt: int) -> float:
    """Seconds to wait before the next attempt: Graph's Retry-After (seconds) when it gave
    one, else exponential backoff with jitter."""
    text = resp.headers.get("Retry-After", "") if resp is not None else ""
    if text.strip().isdigit():
        return min(float(text), MAX_WAIT_S)
    return min(0.5 * 2**attempt, 30.0) * (0.5 + random.random() / 2)


class Graph:
    """Requests to one drive (`base`: graph URL + "/me/drive" or "/drives/{id}")."""

    def __init__(
        self,
        base: str,
        http: httpx.Client,
        auth: httpx.Auth,
        retries: int,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = base
        self.http = http
        self.auth = auth
        self.retries = retries
        self.sleep = sleep  # tests record the waits instead of sleeping

    def url(self, url: str) -> str:
        return url if url.startswith(("http://", "https://")) else self.base + url

    def send(
        self,
        method: str,
        url: str,
        *,
        ok: tuple[int, ...] = (),
        signed: bool = True,
        stream: bool = False,
        follow: bool = False,
        params: Mapping[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        """One request, retried on throttling, server trouble and dropped connections; a
        status >= 400 not in `ok` raises GraphError. `signed=False` sends no token (upload
        and monitor URLs are pre-authenticated and must not get one). With `stream`, the
        caller closes the response."""
        request = self.http.build_request(method, self.url(url), params=params, **kw)
        auth = self.auth if signed else None
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self.http.send(request, auth=auth, stream=stream, follow_redirects=follow)
            except httpx.TransportError:
                if last:
                    raise
                self.sleep(retry_after(None, attempt))
                continue
            if resp.status_code in RETRY_STATUS and not last:
                resp.close()
                self.sleep(retry_after(resp, attempt))
                continue
            if resp.status_code >= 400 and resp.status_code not in ok:
                if stream:
                    resp.read()
                    resp.close()
                raise GraphError.of(method, resp)
            return resp
        raise AssertionError("unreachable")  # the loop returns or raises

    def json(self, method: str, url: str, **kw: Any) -> Json:
        body = self.send(method, url, **kw).json()
        if not isinstance(body, dict):
            raise ValueError(f"{method}: Graph answered {type(body).__name__}, not an object")
        return body

    def pages(self, url: str, params: Mapping[str, str] | None = None) -> Iterator[Json]:
        """The `value` items of a collection, following `@odata.nextLink` page by page."""
        next_url: str | None = url
        while next_url:
            page = self.json("GET", next_url, params=params)
            params = None  # the next link carries them
            yield from page.get("value", [])
            next_url = page.get("@odata.nextLink")

    def wait_for_job(self, monitor: str, timeout: float) -> None:
        """Poll an asynchronous job's monitor URL (a copy's) until it completed, up to
        `timeout` seconds. The URL is pre-authenticated: no token goes with it."""
        deadline = time.monotonic() + timeout
        wait = 0.1
        while True:
            resp = self.send("GET", monitor, signed=False)
            # done: 200 with status "completed", or (older services) 303 to the new item
            status = "completed" if resp.status_code == 303 else resp.json().get("status", "")
            if status == "completed":
                return
            if status == "failed":
                error = resp.json().get("error") or {}
                raise ProviderError(f"copy failed: {error.get('code') or 'no reason given'}")
            if time.monotonic() + wait > deadline:
                raise ProviderError(f"copy not done after {timeout:g} s")
            self.sleep(wait)
            wait = min(wait * 2, 5.0)

    def close(self) -> None:
        self.http.close()
