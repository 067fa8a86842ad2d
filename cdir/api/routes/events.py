"""`/events`: the journal as server-sent events, each with its id, so a reader that lost the
connection resumes with Last-Event-ID. Job progress, replica changes and daemon passes are
all journal events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from cdir.api.deps import V, catalog_read
from cdir.schema import EventOut

router = APIRouter(tags=["events"])
POLL_S = 0.5  # how often a follower looks at the journal
KEEPALIVE_S = 15.0
BATCH = 500


def frame(ev: EventOut) -> str:
    return f"id: {ev.id}\nevent: {ev.action}\ndata: {ev.model_dump_json()}\n\n"


@router.get(
    "/events",
    summary="Journal events as text/event-stream (follow=false: what is there, then close)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    request: Request,
    vdir: V,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    follow: bool = True,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    start = after if after is not None else _event_id(last_event_id)

    async def stream() -> AsyncIterator[str]:
        cursor, idle = start, 0.0
        while True:
            batch = await catalog_read(request, vdir.events, cursor, BATCH)
            for ev in batch:
                yield frame(ev)
                cursor = ev.id
            if len(batch) == BATCH:
                continue
            if not follow or await request.is_disconnected():
                return
            idle = 0.0 if batch else idle + POLL_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield ": keep-alive\n\n"
            await anyio.sleep(POLL_S)

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _event_id(text: str | None) -> int:
    return int(text) if text and text.isdigit() and len(text) < 19 else 0
