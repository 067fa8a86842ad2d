"""Resumable uploads for big files: open an upload, send numbered chunks (each a request of
its own, retried alone when a link drops, under any proxy's body limit), then complete it;
the chunks are assembled as one streamed write. An upload not touched for `UPLOAD_TTL_S`
is removed when the next one is opened."""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path as FsPath
from typing import Annotated, Any, BinaryIO, cast

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field

from cdir.api.bodies import BodyReader, declared_length
from cdir.api.deps import V, vpath
from cdir.schema import EntryOut

router = APIRouter(tags=["uploads"])
UPLOAD_TTL_S = 24 * 3600
UploadId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
ChunkNo = Annotated[int, Path(ge=0, le=100_000)]


class UploadIn(BaseModel):
    path: str = Field(min_length=1, max_length=4096)
    to: list[str] | None = None
    mtime_ns: int | None = Field(None, ge=0)


class UploadOut(BaseModel):
    id: str
    path: str
    chunk_limit: int  # bytes one chunk may have
    received: list[int] = []  # chunk numbers stored so far
    bytes: int = 0
    expires_in_s: int = UPLOAD_TTL_S


def _folder(request: Request, upload_id: str) -> FsPath:
    folder: FsPath = request.app.state.uploads / upload_id
    if not (folder / "upload.json").exists():
        raise HTTPException(404, f"no upload {upload_id} (finished, cancelled or expired)")
    return folder


def _out(request: Request, folder: FsPath) -> UploadOut:
    meta = json.loads((folder / "upload.json").read_text())
    chunks = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    size = sum((folder / str(n)).stat().st_size for n in chunks)
    return UploadOut(
        id=folder.name,
        path=meta["path"],
        chunk_limit=request.app.state.max_chunk,
        received=chunks,
        bytes=size,
    )


def _expire(root: FsPath) -> None:
    now = time.time()
    for folder in root.iterdir() if root.exists() else ():
        if now - folder.stat().st_mtime > UPLOAD_TTL_S:
            shutil.rmtree(folder, ignore_errors=True)


@router.post(
    "/uploads", status_code=201, response_model=UploadOut, summary="Open a resumable upload"
)
def open_upload(request: Request, vdir: V, body: UploadIn) -> UploadOut:
    path = vpath(body.path.lstrip("/"))
    for name in body.to or []:
        vdir.provider(name)
    root: FsPath = request.app.state.uploads
    _expire(root)
    folder = root / secrets.token_urlsafe(18)
    folder.mkdir(parents=True, mode=0o700)
    meta = {"path": path, "to": body.to, "mtime_ns": body.mtime_ns}
    (folder / "upload.json").write_text(json.dumps(meta))
    return _out(request, folder)


@router.get("/uploads/{upload_id}", response_model=UploadOut, summary="Which chunks arrived")
def upload_state(request: Request, upload_id: UploadId) -> UploadOut:
    return _out(request, _folder(request, upload_id))


@router.put("/uploads/{upload_id}/{n}", status_code=204, summary="Store chunk n (again)")
async def put_chunk(request: Request, upload_id: UploadId, n: ChunkNo) -> Response:
    folder = _folder(request, upload_id)
    limit = request.app.state.max_chunk
    declared_length(request, limit)
    reader = BodyReader(request, limit)
    try:
        await anyio.to_thread.run_sync(
            lambda: _store(reader, folder, n), limiter=request.app.state.transfers
        )
    except OSError:
        if reader.over:
            raise reader.too_large() from None
        raise
    return Response(status_code=204)


def _store(reader: BodyReader, folder: FsPath, n: int) -> None:
    """The chunk lands under a temporary name, then takes its number: a chunk cut off
    halfway is never taken for a whole one."""
    tmp = folder / f".{n}.{secrets.token_hex(4)}"
    try:
        with open(tmp, "wb") as out:
            shutil.copyfileobj(reader, out, 1024 * 1024)
        os.replace(tmp, folder / str(n))
    finally:
        tmp.unlink(missing_ok=True)
    os.utime(folder)  # touched: not expired while chunks come in


@router.post(
    "/uploads/{upload_id}/complete",
    response_model=EntryOut,
    summary="Assemble the chunks 0..N-1 into a new version",
)
async def complete(request: Request, vdir: V, upload_id: UploadId) -> EntryOut:
    folder = _folder(request, upload_id)
    state = _out(request, folder)
    if state.received != list(range(len(state.received))):
        missing = sorted(set(range(max(state.received, default=-1) + 1)) - set(state.received))
        raise HTTPException(409, f"chunks missing: {missing[:20]}")
    meta = json.loads((folder / "upload.json").read_text())
    stream = _Chained(folder, len(state.received))
    e = await anyio.to_thread.run_sync(
        lambda: vdir.write(
            meta["path"], cast(BinaryIO, stream), state.bytes, meta["mtime_ns"], to=meta["to"]
        ),
        limiter=request.app.state.transfers,
    )
    shutil.rmtree(folder, ignore_errors=True)
    return e


@router.delete("/uploads/{upload_id}", status_code=204, summary="Cancel an upload")
def cancel(request: Request, upload_id: UploadId) -> Response:
    shutil.rmtree(_folder(request, upload_id), ignore_errors=True)
    return Response(status_code=204)


class _Chained(io.RawIOBase):
    """Chunk files 0..count-1 read as one stream."""

    def __init__(self, folder: FsPath, count: int) -> None:
        super().__init__()
        self._files: Iterator[FsPath] = (folder / str(n) for n in range(count))
        self._cur: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while True:
            if self._cur is None:
                nxt = next(self._files, None)
                if nxt is None:
                    return 0
                self._cur = open(nxt, "rb")  # noqa: SIM115 - closed when drained
            n = self._cur.readinto(b)  # type: ignore[attr-defined]
            if n:
                return int(n)
            self._cur.close()
            self._cur = None
