"""Sessions: one simulated machine each, with its durable op log."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, Response

from app.api import new_router
from app.deps import RegistryDep, SessionId
from app.models.sessions import Rewind, Session, SessionCreate, SessionDetail, Trace
from app.service import sessions as svc

router = new_router("sessions")


@router.post("/sessions", status_code=201, name="session_create")
async def create_session(
    reg: RegistryDep, request: Request, body: SessionCreate | None = None
) -> Session:
    """A new machine. With `trace`, its configuration and every op replayed; a bad
    trace is refused whole (422 / 409) with a message naming the first bad op."""
    out = await svc.create(reg, body or SessionCreate())
    request.state.session = out.id[:8]
    return out


@router.get("/sessions/{sid}", name="session")
async def get_session(reg: RegistryDep, sid: SessionId) -> SessionDetail:
    """The session, with its files, owners, frames in use and sleeping operations.
    `seq` counts the ops of its log; `event_seq` the engine events."""
    return await svc.get(reg, sid)


@router.delete("/sessions/{sid}", status_code=204, name="session_delete")
async def delete_session(reg: RegistryDep, sid: SessionId) -> Response:
    await svc.delete(reg, sid)
    return Response(status_code=204)


@router.get("/sessions/{sid}/trace", name="trace")
async def get_trace(reg: RegistryDep, sid: SessionId) -> Trace:
    """The op log, replayable: POST it as {"trace": ...} to /api/v1/sessions."""
    return await svc.trace(reg, sid)


@router.post("/sessions/{sid}/rewind", name="rewind")
async def rewind(reg: RegistryDep, sid: SessionId, body: Rewind) -> SessionDetail:
    """Back to the state after op `seq` (0 .. the session's seq), for good: the ops
    after it leave the log. Live event streams get a "rewind" message."""
    return await svc.rewind(reg, sid, body.seq)


@router.get("/sessions/{sid}/at/{n}", name="at")
async def at(
    reg: RegistryDep, sid: SessionId, n: Annotated[int, Path(ge=0, le=2**63 - 1)]
) -> SessionDetail:
    """A preview of the state after op n; the session does not change."""
    return await svc.at(reg, sid, n)
