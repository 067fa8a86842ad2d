"""Upload sessions: the fragments of one file, in order, and what an interrupted one does."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from typing import cast

import httpx

from cdir.providers.common import PrependedStream
from cdir.providers.onedrive.api import Graph, Json
from cdir.providers.onedrive.errors import GraphError
from cdir.providers.onedrive.quickxor import QuickXor


def mtime_body(mtime_ns: int) -> Json:
    """fileSystemInfo with `mtime_ns`, to the second (what OneDrive keeps)."""
    stamp = datetime.fromtimestamp(mtime_ns // 1_000_000_000, UTC)
    return {"fileSystemInfo": {"lastModifiedDateTime": stamp.strftime("%Y-%m-%dT%H:%M:%SZ")}}


def send_fragments(
    graph: Graph, upload_url: str, reader: PrependedStream, size: int, chunk: int, qx: QuickXor
) -> Json:
    """Send `size` bytes of `reader` to a session in fragments of `chunk` (a multiple of
    320 KiB), hashing them into `qx`; the item the last one creates. The file appears only
    then, so on any failure before, the session is cancelled and an older version stays."""
    sent = 0
    try:
        while True:
            left = size - sent
            # one byte more with the last fragment: a stream running long shows here
            block = reader.read(left + 1 if left <= chunk else chunk)
            qx.update(block)
            resp = _send_fragment(graph, upload_url, block, sent, size)
            sent += len(block)
            if sent >= size:
                return cast(Json, resp.json())
    except BaseException:
        with suppress(Exception):
            graph.send("DELETE", upload_url, signed=False, ok=(404,))
        raise


def _send_fragment(
    graph: Graph, upload_url: str, block: bytes, start: int, size: int
) -> httpx.Response:
    """PUT one fragment (the upload URL carries its own authorization: no token). A 416 on
    a retry after a dropped connection may mean the server got the fragment: the session's
    nextExpectedRanges say so, and the upload goes on."""
    end = start + len(block)
    headers = {"Content-Range": f"bytes {start}-{end - 1}/{size}"}
    resp = graph.send("PUT", upload_url, signed=False, content=block, headers=headers, ok=(416,))
    if resp.status_code != 416:
        return resp
    ranges = graph.json("GET", upload_url, signed=False).get("nextExpectedRanges")
    if end < size and ranges and str(ranges[0]).partition("-")[0] == str(end):
        return resp
    raise GraphError.of("PUT", resp)
