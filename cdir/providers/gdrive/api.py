"""The Drive v3 REST API on one httpx client: requests with backoff, pages, downloads and
uploads (multipart for small files, resumable sessions in 256 KiB-multiple chunks)."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from cdir.providers.gdrive.errors import DriveError

FOLDER = "application/vnd.google-apps.folder"
# what cdir reads of a file, in every answer that describes one
FIELDS = (
    "id,name,mimeType,size,md5Checksum,sha1Checksum,sha256Checksum,modifiedTime,parents,trashed"
)
QUANTUM = 256 * 1024  # resumable chunks are multiples of this (the last excepted)
MAX_DELAY = 64.0  # seconds: the longest wait between two tries


@dataclass(frozen=True)
class Settings:
    api_url: str  # https://www.googleapis.com, or a fake's
    drive_id: str | None  # a shared drive, or None for My Drive
    page_size: int
    chunk_size: int
    upload_cutoff: int
    retries: int
    backoff: float  # seconds before the first retry; doubled each time
    timeout: float


Item = dict[str, Any]  # a Drive file resource, as JSON


class DriveAPI:
    """Requests to Drive. `auth` makes the httpx.Auth that adds (and renews) the token."""

    def __init__(self, settings: Settings, auth: Callable[[], httpx.Auth]) -> None:
        self.s = settings
        self._auth = auth
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self.sleep: Callable[[float], None] = time.sleep  # tests record the waits instead

    def http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    auth=self._auth(),
                    timeout=httpx.Timeout(self.s.timeout, connect=min(self.s.timeout, 15.0)),
                    headers={"User-Agent": "cdir"},
                )
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- URLs and parameters ---------------------------------------------------------------
    def url(self, path: str, upload: bool = False) -> str:
        return f"{self.s.api_url}/{'upload/' if upload else ''}drive/v3/{path}"

    def params(self, **extra: Any) -> dict[str, Any]:
        """Parameters every call carries: shared drives are invisible without them."""
        return {"supportsAllDrives": "true", **{k: v for k, v in extra.items() if v is not None}}

    def scope(self) -> dict[str, str]:
        """The corpus a files.list or changes.list covers: the shared drive, when one is set."""
        if self.s.drive_id is None:
            return {}
        return {"driveId": self.s.drive_id, "includeItemsFromAllDrives": "true"}

    # --- requests ---------------------------------------------------------------------------
    def wait(self, attempt: int, resp: httpx.Response | None) -> None:
        """Sleep before try `attempt` + 1: Retry-After when the server says, else exponential
        backoff with jitter (so parallel transfers do not retry in step)."""
        after = resp.headers.get("Retry-After") if resp is not None else None
        if after is not None and after.strip().isdigit():
            delay = float(after)
        else:
            delay = self.s.backoff * 2**attempt * (1 + random.random())
        self.sleep(min(delay, MAX_DELAY))

    def call(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (),
        safe: bool = False,
    ) -> httpx.Response:
        """One request, tried again on throttling and server trouble, and on a dropped
        connection unless it may have made something (a POST that is not `safe`: sent twice,
        it could leave two files of one name); other statuses >= 400 not in `ok` raise
        DriveError."""
        safe = safe or method != "POST"
        for attempt in range(self.s.retries + 1):
            last = attempt == self.s.retries
            try:
                resp = self.http().request(
                    method, url, params=params, json=json_body, content=content, headers=headers
                )
            except (httpx.TransportError, httpx.TimeoutException):
                if last or not safe:
                    raise
                self.wait(attempt, None)
                continue
            if resp.status_code < 400 or resp.status_code in ok:
                return resp
            err = DriveError.of(resp)
            if not err.retryable or last:
                raise err
            self.wait(attempt, resp)
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", self.url(path), params=self.params(**params)).json()

    def file(self, file_id: str) -> Item:
        item: Item = self.get(f"files/{file_id}", fields=FIELDS)
        return item

    def pages(self, path: str, key: str, **params: Any) -> Iterator[Any]:
        """The `key` entries of every page of a paged list, fetched as they are consumed."""
        token = None
        while True:
            page = self.get(path, pageSize=self.s.page_size, pageToken=token, **params)
            yield from page.get(key, [])
            token = page.get("nextPageToken")
            if not token:
                return

    def files(self, query: str) -> Iterator[Item]:
        """files.list for `query`, every page, not trashed."""
        pages = self.pages(
            "files",
            "files",
            q=f"{query} and trashed = false",
            fields=f"nextPageToken,files({FIELDS})",
            corpora="drive" if self.s.drive_id else "user",
            **self.scope(),
        )
        yield from pages

    # --- writing metadata -------------------------------------------------------------------
    def create(self, meta: Item) -> Item:
        resp = self.call(
            "POST", self.url("files"), params=self.params(fields=FIELDS), json_body=meta
        )
        item: Item = resp.json()
        return item

    def update(self, file_id: str, meta: Item, **params: Any) -> Item:
        resp = self.call(
            "PATCH",
            self.url(f"files/{file_id}"),
            params=self.params(fields=FIELDS, **params),
            json_body=meta,
        )
        item: Item = resp.json()
        return item

    def copy(self, file_id: str, meta: Item) -> Item:
        resp = self.call(
            "POST",
            self.url(f"files/{file_id}/copy"),
            params=self.params(fields=FIELDS),
            json_body=meta,
        )
        item: Item = resp.json()
        return item

    def remove(self, file_id: str, trash: bool) -> None:
        """To the trash (restorable for 30 days), or deleted for good."""
        if trash:
            self.update(file_id, {"trashed": True})
        else:
            self.call("DELETE", self.url(f"files/{file_id}"), params=self.params())

    # --- content ----------------------------------------------------------------------------
    @contextmanager
    def download(self, file_id: str, start: int, end: int) -> Iterator[httpx.Response]:
        """The bytes [start, end) of a file as a streamed response (throttling retried
        before the first byte)."""
        url, params = self.url(f"files/{file_id}"), self.params(alt="media")
        headers = {"Range": f"bytes={start}-{end - 1}"}
        for attempt in range(self.s.retries + 1):
            with self.http().stream("GET", url, params=params, headers=headers) as resp:
                if resp.status_code < 400:
                    yield resp
                    return
                resp.read()
                err = DriveError.of(resp)
                if not err.retryable or attempt == self.s.retries:
                    raise err
            self.wait(attempt, resp)

    def upload_multipart(self, target: str | None, meta: Item, data: bytes) -> Item:
        """One request: metadata and bytes as multipart/related. `target` is the ID of the
        file whose content this replaces, or None to create one."""
        boundary = f"cdir-{random.getrandbits(64):016x}"
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                json.dumps(meta).encode(),
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--".encode(),
            ]
        )
        resp = self.call(
            "PATCH" if target else "POST",
            self.url(f"files/{target}" if target else "files", upload=True),
            params=self.params(uploadType="multipart", fields=FIELDS),
            content=body,
            headers={"Content-Type": f"multipart/related; boundary={boundary}"},
        )
        item: Item = resp.json()
        return item

    def start_session(self, target: str | None, meta: Item, size: int | None) -> str:
        """Open a resumable upload session; its URL (Location) takes the chunks."""
        headers = {"X-Upload-Content-Type": "application/octet-stream"}
        if size is not None:
            headers["X-Upload-Content-Length"] = str(size)
        resp = self.call(
            "PATCH" if target else "POST",
            self.url(f"files/{target}" if target else "files", upload=True),
            params=self.params(uploadType="resumable", fields=FIELDS),
            json_body=meta,
            headers=headers,
            safe=True,  # a session makes nothing until its last chunk
        )
        location = resp.headers.get("Location")
        if not location:
            raise DriveError(resp.status_code, "", "no upload session URL in the answer")
        return location

    def put_chunk(self, session: str, chunk: bytes, offset: int, total: int | None) -> Item | None:
        """Send `chunk` (at `offset`) until the session holds all of it: the file resource
        once the upload is complete (`total` given and reached), else None. After a failure
        the session is asked how far it got (an empty PUT), and only the rest is sent again."""
        size = "*" if total is None else str(total)
        data, start, end = chunk, offset, offset + len(chunk)
        query, attempt = False, 0
        while True:
            body = b"" if query or not data else data
            span = f"bytes {start}-{end - 1}/{size}" if body else f"bytes */{size}"
            try:
                resp = self.http().put(session, content=body, headers={"Content-Range": span})
            except (httpx.TransportError, httpx.TimeoutException):
                resp = None
            if resp is not None and resp.status_code in (200, 201):
                item: Item = resp.json()
                return item
            if resp is not None and resp.status_code == 308:
                held = _held(resp)
                if held >= end:
                    return None
                if held < offset:
                    raise DriveError(308, "", "the upload session lost bytes it had taken")
                data, start, query = chunk[held - offset :], held, False
                continue
            if resp is not None and query and resp.status_code in (404, 410):
                raise DriveError(410, "", "the upload session expired; nothing was written")
            if resp is not None:
                err = DriveError.of(resp)
                if not err.retryable or attempt == self.s.retries:
                    raise err
            elif attempt == self.s.retries:
                raise httpx.NetworkError(f"upload session unreachable after {attempt + 1} tries")
            self.wait(attempt, resp)
            attempt, query = attempt + 1, True


def _held(resp: httpx.Response) -> int:
    """The bytes a 308 Resume Incomplete says the session holds (`Range: bytes=0-N`)."""
    span = resp.headers.get("Range")
    return int(span.rpartition("-")[2]) + 1 if span else 0
