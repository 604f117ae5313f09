"""Sessions: one simulated machine each, with its durable op log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response
from fastapi.responses import StreamingResponse

from app.api import new_router
from app.deps import SessionId, registry
from app.models.sessions import Redo, Rewind, Session, SessionCreate, SessionDetail, Trace
from app.service import export
from app.service import redo as redo_svc
from app.service import sessions as svc

router = new_router("sessions")


@router.post("/sessions", status_code=201, name="session_create")
async def create_session(request: Request, body: SessionCreate | None = None) -> Session:
    """A new machine. With `trace`, its configuration and every op replayed; a bad
    trace is refused whole (422 / 409) with a message naming the first bad op."""
    out = await svc.create(registry(request), body or SessionCreate())
    request.state.session = out.id[:8]
    return out


@router.get("/sessions/{sid}", name="session")
async def get_session(request: Request, sid: SessionId) -> SessionDetail:
    """The session, with its files, owners, frames in use and sleeping operations.
    `seq` counts the ops of its log; `event_seq` the engine events."""
    return await svc.get(registry(request), sid)


@router.delete("/sessions/{sid}", status_code=204, name="session_delete")
async def delete_session(request: Request, sid: SessionId) -> Response:
    await svc.delete(registry(request), sid)
    return Response(status_code=204)


@router.get("/sessions/{sid}/trace", name="trace", response_model=Trace)
async def get_trace(request: Request, sid: SessionId) -> Response:
    """The op log, replayable: POST it as {"trace": ...} to /api/v1/sessions. Streamed
    (built a chunk at a time off the event loop, payloads read back from the store)."""
    chunks = await export.trace(registry(request), sid)
    return StreamingResponse(chunks, media_type="application/json")


@router.post("/sessions/{sid}/rewind", name="rewind")
async def rewind(request: Request, sid: SessionId, body: Rewind) -> SessionDetail:
    """Back to the state after op `seq` (0 .. the session's seq), for good: the ops
    after it leave the log. Live event streams get a "rewind" message."""
    return await svc.rewind(registry(request), sid, body.seq)


@router.post("/sessions/{sid}/redo", name="redo")
async def redo(request: Request, sid: SessionId, body: Redo | None = None) -> SessionDetail:
    """Replay the first `count` (default 1) ops that rewinds took out, oldest first, as
    new ops of the log; possible until a new op is made (`redo` in the answer counts
    what is left). 409 when there are fewer to redo."""
    return await redo_svc.redo(registry(request), sid, (body or Redo(count=1)).count)


@router.get("/sessions/{sid}/at/{n}", name="at")
async def at(
    request: Request, sid: SessionId, n: Annotated[int, Path(ge=0, le=2**63 - 1)]
) -> SessionDetail:
    """A preview of the state after op n; the session does not change."""
    return await svc.at(registry(request), sid, n)
