"""File content by path: `/files/{path}` (the preferred current replica) and
`/replicas/{provider}/{path}` (that provider's). GET streams (Range → 206, If-None-Match →
304), HEAD gives the metadata as headers, PUT writes a new version from the streamed body
(If-Match on the generation → 412), DELETE removes the file."""

from __future__ import annotations

import re
from email.utils import format_datetime
from typing import Annotated, BinaryIO, cast

import anyio.to_thread
from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse

from cdir.api.bodies import BodyReader, declared_length
from cdir.api.deps import V, vpath
from cdir.errors import IsADirectory, NotFound
from cdir.schema import EntryOut, TransferReport

router = APIRouter(tags=["files"])
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def etag(e: EntryOut) -> str:
    return f'"{e.id}.{e.generation}"'


def meta_headers(e: EntryOut, provider: str | None = None) -> dict[str, str]:
    h = {
        "ETag": etag(e),
        "Accept-Ranges": "bytes",
        "X-Cdir-Id": str(e.id),
        "X-Cdir-Generation": str(e.generation),
        "X-Cdir-Size": str(e.size or 0),
    }
    if e.hash:
        h["X-Cdir-Hash"] = e.hash
    if e.mtime:
        h["Last-Modified"] = format_datetime(e.mtime, usegmt=True)
        h["X-Cdir-Mtime"] = e.mtime.isoformat()
    if provider:
        h["X-Cdir-Provider"] = provider
    return h


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """[start, end) of a single `Range: bytes=…` header; None for the whole file (no header,
    or several ranges: serving everything is allowed); 416 when it cannot be satisfied."""
    if not header or "," in header:
        return None
    m = _RANGE.fullmatch(header.strip())
    if not m or m.groups() == ("", ""):
        return None  # not a byte range we know: ignored, as RFC 9110 allows
    first, last = m.groups()
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size
    else:
        start, end = int(first), size if last == "" else min(int(last) + 1, size)
    if start >= size or start >= end:
        raise HTTPException(
            416,
            f"range {header} is outside the file ({size} bytes)",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


def _file(vdir: V, path: str) -> EntryOut:
    e = vdir.stat(path)
    if e.kind != "file":
        raise IsADirectory(f"is a directory: {path}")
    return e


def _replica_file(vdir: V, path: str, provider: str) -> EntryOut:
    vdir.provider(provider)  # an unknown provider is a 404 that says so
    e = _file(vdir, path)
    if not any(r.provider == provider for r in e.replicas or []):
        raise NotFound(f"{path}: no replica on {provider}")
    return e


def _download(
    vdir: V, e: EntryOut, provider: str | None, rng: str | None, inm: str | None
) -> Response:
    headers = meta_headers(e, provider)
    if inm and etag(e) in [t.strip() for t in inm.split(",")]:
        return Response(status_code=304, headers=headers)
    size = e.size or 0
    span = byte_range(rng, size)
    start, end = span or (0, size)
    chunks = vdir.read(e.path, start, end, provider=provider) if size else iter(())
    headers["Content-Length"] = str(end - start)
    if span is None:
        return StreamingResponse(chunks, 200, headers, "application/octet-stream")
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return StreamingResponse(chunks, 206, headers, "application/octet-stream")


def _head(e: EntryOut, provider: str | None = None) -> Response:
    headers = meta_headers(e, provider)
    headers["Content-Length"] = str(e.size or 0)
    return Response(status_code=200, headers=headers)


def _expected_generation(if_match: str | None, if_none_match: str | None) -> int | None:
    """If-Match: an ETag this API gave (`"id.generation"`) or a bare generation number;
    If-None-Match: * means only where there is no file yet (generation 0)."""
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise HTTPException(400, "a PUT takes If-None-Match: * only")
        return 0
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    gen = tag.rsplit(".", 1)[-1]
    if not gen.isdigit():
        raise HTTPException(400, f"If-Match {if_match!r} is not an ETag of this API")
    return int(gen)


async def _upload(
    request: Request,
    vdir: V,
    path: str,
    to: list[str] | None,
    expected: int | None,
    mtime_ns: int | None,
) -> Response:
    limit = request.app.state.max_upload
    size = declared_length(request, limit)
    existed = expected != 0 and _exists(vdir, path)
    reader = BodyReader(request, limit)
    try:
        e = await anyio.to_thread.run_sync(
            lambda: vdir.write(
                path, cast(BinaryIO, reader), size, mtime_ns, to=to, if_generation=expected
            ),
            limiter=request.app.state.transfers,
        )
    except Exception:
        if reader.over:
            raise reader.too_large() from None
        raise
    return Response(
        e.model_dump_json(), 200 if existed else 201, meta_headers(e), "application/json"
    )


def _exists(vdir: V, path: str) -> bool:
    try:
        vdir.stat(path)
    except NotFound:
        return False
    return True


RangeH = Annotated[str | None, Header(alias="Range")]
InmH = Annotated[str | None, Header(alias="If-None-Match")]
IfMatchH = Annotated[str | None, Header(alias="If-Match")]
MtimeH = Annotated[int | None, Header(alias="X-Cdir-Mtime-Ns", ge=0)]
ToQ = Annotated[list[str] | None, Query(description="providers to write to (default: all)")]


CONTENT: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"},
    206: {"content": {"application/octet-stream": {}}, "description": "The range asked for"},
    304: {"description": "Not modified (If-None-Match)"},
}
METADATA: dict[int | str, dict[str, object]] = {200: {"description": "Metadata as headers"}}


@router.get(
    "/files/{path:path}",
    summary="Read a file (the preferred current replica)",
    response_class=Response,
    responses=CONTENT,
)
def get_file(vdir: V, path: str, range: RangeH = None, if_none_match: InmH = None) -> Response:
    return _download(vdir, _file(vdir, vpath(path)), None, range, if_none_match)


@router.head(
    "/files/{path:path}",
    summary="A file's metadata as headers",
    response_class=Response,
    responses=METADATA,
)
def head_file(vdir: V, path: str) -> Response:
    return _head(_file(vdir, vpath(path)))


@router.put(
    "/files/{path:path}",
    responses={200: {"model": EntryOut, "description": "A new version of an existing file"}},
    status_code=201,
    response_model=EntryOut,
    summary="Write a new version from the streamed body",
)
async def put_file(
    request: Request,
    vdir: V,
    path: str,
    to: ToQ = None,
    if_match: IfMatchH = None,
    if_none_match: InmH = None,
    mtime_ns: MtimeH = None,
) -> Response:
    expected = _expected_generation(if_match, if_none_match)
    return await _upload(request, vdir, vpath(path), to, expected, mtime_ns)


@router.delete("/files/{path:path}", response_model=TransferReport, summary="Remove a file")
def delete_file(vdir: V, path: str) -> TransferReport:
    e = _file(vdir, vpath(path))
    return vdir.rm([e.path], progress=False)


@router.get(
    "/replicas/{provider}/{path:path}",
    summary="Read one provider's replica",
    response_class=Response,
    responses=CONTENT,
)
def get_replica(
    vdir: V, provider: str, path: str, range: RangeH = None, if_none_match: InmH = None
) -> Response:
    e = _replica_file(vdir, vpath(path), provider)
    return _download(vdir, e, provider, range, if_none_match)


@router.delete(
    "/replicas/{provider}/{path:path}",
    response_model=EntryOut,
    summary="Remove this provider's replica, keeping the file (409 if it is the last copy)",
)
def delete_replica(vdir: V, provider: str, path: str) -> EntryOut:
    p = vpath(path)
    vdir.drop_replica(p, provider)
    return vdir.stat(p)


@router.head(
    "/replicas/{provider}/{path:path}",
    summary="One replica's metadata as headers",
    response_class=Response,
    responses=METADATA,
)
def head_replica(vdir: V, provider: str, path: str) -> Response:
    return _head(_replica_file(vdir, vpath(path), provider), provider)


@router.put(
    "/replicas/{provider}/{path:path}",
    responses={200: {"model": EntryOut, "description": "A new version of an existing file"}},
    status_code=201,
    response_model=EntryOut,
    summary="Write a new version to this provider only (the others become stale)",
)
async def put_replica(
    request: Request,
    vdir: V,
    provider: str,
    path: str,
    if_match: IfMatchH = None,
    if_none_match: InmH = None,
    mtime_ns: MtimeH = None,
) -> Response:
    expected = _expected_generation(if_match, if_none_match)
    vdir.provider(provider)
    return await _upload(request, vdir, vpath(path), [provider], expected, mtime_ns)
