"""The namespace: entries and listings (paged), mkdir, copy and move, remove, search, status,
the preferred provider, and entries by their stable id."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field

from cdir.api.deps import V, catalog_read, vpath
from cdir.schema import EntryOut, TransferReport

router = APIRouter(tags=["entries"])
_CHILDREN = re.compile(r"(\d+)-(\d+)")
MAX_PAGE = 10_000


class ListingOut(BaseModel):
    entry: EntryOut
    children: list[EntryOut] = []
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page")


class CopyIn(BaseModel):
    src: str
    dst: str
    recursive: bool = False
    to: list[str] | None = None


class MoveIn(BaseModel):
    src: str
    dst: str


class PreferIn(BaseModel):
    provider: str | None = Field(None, description="null: inherit from the parent again")


def _offset_window(children: str | None, limit: int) -> tuple[int, int]:
    """(offset, limit) from CDMI's `children=FIRST-LAST` (inclusive), else (0, limit)."""
    if children is None:
        return 0, limit
    m = _CHILDREN.fullmatch(children)
    if not m or int(m[2]) < int(m[1]):
        raise HTTPException(400, f"children={children!r}: use FIRST-LAST, e.g. 0-99")
    first, last = int(m[1]), int(m[2])
    if last - first + 1 > MAX_PAGE or first > 1_000_000:
        raise HTTPException(400, f"children={children!r}: at most {MAX_PAGE} at a time")
    return first, last - first + 1


@router.get(
    "/entries/{path:path}",
    response_model=ListingOut,
    summary="An entry and, for a directory, a page of its children",
)
async def get_entry(
    request: Request,
    vdir: V,
    path: str,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    children: Annotated[str | None, Query(description="a range FIRST-LAST, as CDMI")] = None,
    recursive: bool = False,
    replicas: bool = False,
) -> ListingOut:
    p = vpath(path)
    after = vpath(cursor.lstrip("/")) if cursor else None
    offset, size = _offset_window(children, limit)
    return await catalog_read(request, _listing, vdir, p, after, offset, size, recursive, replicas)


def _listing(
    vdir: V, p: str, after: str | None, offset: int, size: int, recursive: bool, replicas: bool
) -> ListingOut:
    entry = vdir.stat(p)
    if entry.kind != "dir":
        return ListingOut(entry=entry, next_cursor=None)
    page = vdir.ls(p, recursive=recursive, limit=offset + size, after=after, replicas=replicas)
    kids = page.entries[offset:]
    more = page.next_cursor is not None
    return ListingOut(
        entry=entry, children=kids, next_cursor=kids[-1].path if more and kids else None
    )


@router.delete(
    "/entries/{path:path}",
    response_model=TransferReport,
    summary="Remove a file, or a directory with recursive=true",
)
def delete_entry(vdir: V, path: str, recursive: bool = False) -> TransferReport:
    return vdir.rm([vpath(path)], recursive=recursive, progress=False)


@router.post(
    "/dirs/{path:path}", status_code=201, response_model=EntryOut, summary="Make a directory"
)
def make_dir(vdir: V, path: str, parents: bool = False) -> EntryOut:
    return vdir.mkdir(vpath(path), parents=parents)


@router.post("/copy", response_model=TransferReport, summary="Copy a file or a tree")
def copy(vdir: V, body: CopyIn) -> TransferReport:
    src, dst = vpath(body.src.lstrip("/")), vpath(body.dst.lstrip("/"))
    return vdir.cp(src, dst, recursive=body.recursive, to=body.to, progress=False)


@router.post("/move", response_model=TransferReport, summary="Move or rename")
def move(vdir: V, body: MoveIn) -> TransferReport:
    return vdir.mv(vpath(body.src.lstrip("/")), vpath(body.dst.lstrip("/")), progress=False)


@router.get("/search", response_model=list[EntryOut], summary="Glob over the catalog")
async def search(
    request: Request,
    vdir: V,
    pattern: Annotated[str, Query(min_length=1, max_length=4096)],
    under: str = "/",
    recursive: bool = True,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> list[EntryOut]:
    where = vpath(under.lstrip("/"))
    return await catalog_read(
        request, lambda: vdir.search(pattern, where, recursive=recursive, limit=limit)
    )


@router.get(
    "/status/{path:path}",
    response_model=list[EntryOut],
    summary="Files with each replica and its state",
)
async def status(request: Request, vdir: V, path: str, recursive: bool = False) -> list[EntryOut]:
    p = vpath(path)
    return await catalog_read(request, lambda: vdir.status(p, recursive=recursive))


@router.put(
    "/preferred/{path:path}",
    response_model=EntryOut,
    summary="Set (or clear) the provider reads prefer below a path",
)
def prefer(vdir: V, path: str, body: PreferIn) -> EntryOut:
    return vdir.prefer(vpath(path), body.provider)


@router.get("/ids/{entry_id}", response_model=EntryOut, summary="An entry by its stable id")
async def by_id(
    request: Request, vdir: V, entry_id: Annotated[int, Path(ge=1, le=2**62)]
) -> EntryOut:
    return await catalog_read(request, vdir.entry_by_id, entry_id)
