"""Uploads: the bytes are spooled first (hashed on the way), then sent in one request or,
from `cutoff` bytes on, as a chunked upload session.

Spooling is what Box asks for: an upload session must be told the file's size up front,
every part carries its SHA-1 and the commit the whole file's, and the small upload's
Content-MD5 header (a SHA-1 despite its name) lets Box refuse a corrupted body. It also
means a source that breaks or gives the wrong length fails before Box sees anything, so
the previous version stays.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from box_sdk_gen.managers.uploads import (
    UploadFileAttributes,
    UploadFileAttributesParentField,
    UploadFileVersionAttributes,
)

from cdir.errors import ProviderError
from cdir.providers.base import CHUNK
from cdir.providers.box.client import fetch_json

SPOOL_IN_MEMORY = 8 * 1024 * 1024  # larger bodies wait in a temporary file


@dataclass
class Spooled:
    file: IO[bytes]
    size: int
    md5: str
    sha1: bytes  # the digest itself: hex for Content-MD5, base64 for Digest

    @property
    def sha1_hex(self) -> str:
        return self.sha1.hex()


@contextmanager
def spooled(chunks: Iterable[bytes], size: int | None, what: str) -> Iterator[Spooled]:
    """The bytes of `chunks` in a rewound file with their length and hashes. With `size`,
    a source that gives more or fewer bytes is an error."""
    md5, sha1, count = hashlib.md5(), hashlib.sha1(), 0
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as f:
        for chunk in chunks:
            md5.update(chunk)
            sha1.update(chunk)
            f.write(chunk)
            count += len(chunk)
            if size is not None and count > size:
                break
        if size is not None and count != size:
            more = "more" if count > size else f"only {count}"
            raise ProviderError(f"{what}: the source gave {more} bytes, {size} announced")
        f.seek(0)
        yield Spooled(f, count, md5.hexdigest(), sha1.digest())


def stream_chunks(stream: IO[bytes] | Any) -> Iterator[bytes]:
    """A readable stream (unseekable, short reads) as chunks."""
    while chunk := stream.read(CHUNK):
        yield chunk


def box_time(mtime_ns: int | None) -> datetime | None:
    """Box keeps content_modified_at to the second: the time, truncated, in UTC."""
    if mtime_ns is None:
        return None
    return datetime.fromtimestamp(mtime_ns // 1_000_000_000, UTC)


def upload_small(
    client: Any,
    folder_id: str,
    name: str,
    file_id: str | None,
    body: Spooled,
    mtime_ns: int | None,
    fields: list[str],
) -> dict[str, Any]:
    """POST /files/content (a new file) or /files/{id}/content (a new version of it)."""
    when = box_time(mtime_ns)
    if file_id is None:
        attrs = UploadFileAttributes(
            name, UploadFileAttributesParentField(folder_id), content_modified_at=when
        )
        files = client.uploads.upload_file(
            attrs, body.file, fields=fields, content_md_5=body.sha1_hex
        )
    else:
        version = UploadFileVersionAttributes(name, content_modified_at=when)
        files = client.uploads.upload_file_version(
            file_id, version, body.file, fields=fields, content_md_5=body.sha1_hex
        )
    entry: dict[str, Any] = files.raw_data["entries"][0]
    return entry


def upload_chunked(
    client: Any,
    folder_id: str,
    name: str,
    file_id: str | None,
    body: Spooled,
    mtime_ns: int | None,
    what: str,
) -> dict[str, Any]:
    """An upload session: create it, PUT each part with its SHA-1 (Digest) and place
    (Content-Range), then commit the parts list with the whole file's SHA-1. A session that
    fails is aborted, so its parts do not wait for Box to expire them."""
    sessions = client.chunked_uploads
    if file_id is None:
        session = sessions.create_file_upload_session(folder_id, body.size, name)
    else:
        session = sessions.create_file_upload_session_for_existing_file(
            file_id, body.size, file_name=name
        )
    raw: dict[str, Any] = session.raw_data
    urls = raw["session_endpoints"]
    try:
        parts = _send_parts(sessions, urls["upload_part"], body, int(raw["part_size"]))
        attributes = {}
        if mtime_ns is not None:
            attributes["content_modified_at"] = _iso(box_time(mtime_ns))
        digest = {"digest": "sha=" + base64.b64encode(body.sha1).decode()}
        status, answer = fetch_json(
            client, "POST", urls["commit"], {"parts": parts, "attributes": attributes}, digest
        )
        if status == 202:  # still assembling the parts after the retries Box asked for
            raise ProviderError(f"{what}: Box did not finish the upload in time", retryable=True)
        entry: dict[str, Any] = answer["entries"][0]
        return entry
    except BaseException:
        with suppress(Exception):
            sessions.delete_file_upload_session_by_url(urls["abort"])
        raise


def _send_parts(sessions: Any, url: str, body: Spooled, part_size: int) -> list[dict[str, Any]]:
    parts, offset = [], 0
    while offset < body.size:
        data = body.file.read(part_size)
        digest = "sha=" + base64.b64encode(hashlib.sha1(data).digest()).decode()
        where = f"bytes {offset}-{offset + len(data) - 1}/{body.size}"
        sent = sessions.upload_file_part_by_url(url, io.BytesIO(data), digest, where)
        parts.append(sent.raw_data["part"])
        offset += len(data)
    return parts


def _iso(when: datetime | None) -> str:
    assert when is not None
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")
