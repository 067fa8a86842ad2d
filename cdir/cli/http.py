"""The CLI client's HTTP, on the standard library's http.client: one keep-alive connection
per thread. Hand-written for start-up time: httpx costs ~95 ms to import (its own CLI
pulls in click, rich and pygments) and ~40 ms to build its SSL context even for http://,
together about 40 % of a `cdir ls` through the service (measured with cProfile); this
costs ~15 ms. The service side uses the maintained stack (FastAPI, uvicorn)."""

from __future__ import annotations

import http.client
import json as jsonlib
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlencode, urlsplit

TIMEOUT_S = 300.0
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def is_error(self) -> bool:
        return self.status >= 400

    def json(self) -> Any:
        return jsonlib.loads(self.body)


class Http:
    def __init__(self, base_url: str, headers: Mapping[str, str]) -> None:
        u = urlsplit(base_url)
        self.tls, self.host, self.port = u.scheme == "https", u.hostname or "", u.port
        self.prefix = u.path.rstrip("/")
        self.headers = dict(headers)
        self._local = threading.local()

    def _conn(self, fresh: bool = False) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None or fresh:
            if conn is not None:
                conn.close()
            if self.tls:
                import ssl

                conn = http.client.HTTPSConnection(
                    self.host, self.port, timeout=TIMEOUT_S, context=ssl.create_default_context()
                )
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT_S)
            self._local.conn = conn
        return conn

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        body: Any,
        headers: Mapping[str, str] | None,
    ) -> http.client.HTTPResponse:
        url = self.prefix + path + (f"?{urlencode(_flat(params), doseq=True)}" if params else "")
        hdrs = {**self.headers, **(headers or {})}
        chunked = body is not None and not isinstance(body, bytes) and "Content-Length" not in hdrs
        for attempt in (0, 1):
            conn = self._conn(fresh=attempt > 0)
            try:
                conn.request(method, url, body=body, headers=hdrs, encode_chunked=chunked)
                return conn.getresponse()
            except _STALE:
                # the service closed an idle keep-alive connection: once more on a new one,
                # unless the body was a stream already partly sent
                if attempt or not (body is None or isinstance(body, bytes)):
                    raise
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | Iterable[bytes] | BinaryIO | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        hdrs = dict(headers or {})
        if json is not None:
            content = jsonlib.dumps(json).encode()
            hdrs["Content-Type"] = "application/json"
        r = self._send(method, path, params, content, hdrs)
        return Response(r.status, r.headers, r.read())

    @contextmanager
    def stream(
        self, method: str, path: str, *, headers: Mapping[str, str] | None = None
    ) -> Iterator[http.client.HTTPResponse]:
        r = self._send(method, path, None, None, headers)
        try:
            yield r
        finally:
            if not r.isclosed():  # left unread: the connection cannot be reused
                r.close()
                self._conn().close()
                self._local.conn = None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


def _flat(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query parameters as the API reads them: booleans as true/false, lists repeated,
    None left out."""
    out: list[tuple[str, str]] = []
    for k, v in params.items():
        for item in v if isinstance(v, list) else [v]:
            if item is not None:
                out.append((k, str(item).lower() if isinstance(item, bool) else str(item)))
    return out
