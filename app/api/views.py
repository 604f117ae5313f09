"""Views (page runs, frame runs) and the event log, as JSON and as a live SSE stream."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import Header, Path, Query, Request, Response
from sse_starlette import EventSourceResponse
from starlette.types import Receive, Scope, Send

from app.api import new_router
from app.deps import FdPath, SessionId, registry
from app.models.common import INT64_MAX, UINT64_MAX
from app.models.views import EventCallbacks, Events, Pages, Phys
from app.service import views
from app.service.streams import Slot

router = new_router("views")
SEND_TIMEOUT = 30.0  # seconds one SSE message may take to send: a reader that stalls is dropped
Index = Annotated[int, Query(ge=0, le=UINT64_MAX)]
Limit = Annotated[int, Query(ge=1, le=views.MAX_RUNS, description="most runs answered")]
After = Annotated[int, Query(ge=0, le=INT64_MAX, description="events with a larger seq")]


@router.get("/sessions/{sid}/files/{fd}/pages", name="pages", response_model=Pages)
async def pages(
    request: Request,
    sid: SessionId,
    fd: FdPath,
    start: Index = 0,
    end: Index | None = None,
    limit: Limit = 1000,
) -> Response:
    """Runs of alike pages over [start, end) (page indexes); `next` when there are more."""
    # the Pages model's JSON, formatted from the runs (app/service/view_answers.py)
    body = await views.pages_bytes(registry(request), sid, fd, start, end, limit)
    return Response(body, media_type="application/json")


@router.get("/sessions/{sid}/phys", name="phys")
async def phys(
    request: Request,
    sid: SessionId,
    start: Index = 0,
    end: Index | None = None,
    limit: Limit = 1000,
) -> Phys:
    """The frame allocator: totals, free blocks per order, runs of alike frames."""
    return await views.phys(registry(request), sid, start, end, limit)


@router.get("/sessions/{sid}/events", name="events")
async def events(
    request: Request,
    sid: SessionId,
    after: After = 0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> Events:
    """Engine events with seq > after. An event's `seq` counts engine events (an op may
    make several: a put_unlock_pfn that wakes a punch adds a "wake"); `op_seq` is the
    op of the session's log that made it."""
    return await views.events(registry(request), sid, after, limit)


@router.get("/sessions/{sid}/events/{seq}/callbacks", name="event_callbacks")
async def event_callbacks(
    request: Request,
    sid: SessionId,
    seq: Annotated[int, Path(ge=1, le=INT64_MAX)],
    first: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0,
    count: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> EventCallbacks:
    """One event's callbacks, a page at a time (a punch of many pages makes many)."""
    return await views.event_callbacks(registry(request), sid, seq, first, count)


@router.get(
    "/sessions/{sid}/events/stream",
    name="events_stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "SSE"}},
)
async def events_stream(
    request: Request,
    sid: SessionId,
    after: After = 0,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> EventSourceResponse:
    """The events as `text/event-stream`, live: each message's data is one event (as in
    /events), its id the event seq; reconnecting with Last-Event-ID resumes after it.
    Other messages: "rewind" (events after data.event_seq are void) and "end" (the
    session was deleted or the service stops)."""
    reg = registry(request)
    reg.get(sid)  # 404 before the stream starts
    if last_event_id is not None and last_event_id.strip().isdigit():
        after = min(int(last_event_id), INT64_MAX)
    slot = reg.streams.take(sid)  # 429 past max_streams / max_session_streams
    stop = anyio.Event()
    return HeldStream(
        slot,
        views.stream(reg, sid, after, stop),
        shutdown_event=stop,
        shutdown_grace_period=2,
        send_timeout=SEND_TIMEOUT,
    )


class HeldStream(EventSourceResponse):
    """An SSE response that gives its stream slot back however it ends."""

    def __init__(self, slot: Slot, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()
