"""Read-only views of a session: files, pages, frames, owners, the event log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio

from app.errors import NotFound
from app.models.files import File
from app.models.guest import OwnerDetail
from app.models.views import (
    EventCallbacks,
    EventOut,
    Events,
    FrameExtent,
    PageExtent,
    Pages,
    Phys,
)
from app.registry import Registry, Session
from app.service.convert import callback_out, event_out, fd_arg, file_out, owner_arg, owner_detail

MAX_RUNS = 10000


async def file(reg: Registry, sid: str, fd: int) -> File:
    s = reg.get(sid)
    async with s.lock:
        return file_out(s.machine.file(fd_arg(fd)))


async def pages(reg: Registry, sid: str, fd: int, start: int, end: int | None, limit: int) -> Pages:
    s = reg.get(sid)
    async with s.lock:
        runs, nxt = s.machine.page_runs(fd_arg(fd), start, end, limit)
    extents = [
        PageExtent(
            start=r.start,
            end=r.end,
            state=r.state,
            pfn=r.pfn,
            order=r.order,
            locked=r.locked,
            refcount=r.refcount,
            dirty=r.dirty,
            mapped_by=[str(o) for o in r.mapped_by],
            waiters=r.waiters,
            life=r.life,
        )
        for r in runs
    ]
    return Pages(extents=extents, next=nxt if len(runs) >= limit else None)


async def phys(reg: Registry, sid: str, start: int, end: int | None, limit: int) -> Phys:
    s = reg.get(sid)
    async with s.lock:
        info = s.machine.phys()
        runs, nxt = s.machine.frame_runs(start, end, limit)
    return Phys(
        total=info.total,
        free=info.free,
        used=info.used,
        free_by_order={str(k): v for k, v in sorted(info.free_by_order.items())},
        extents=[
            FrameExtent(
                start=r.start,
                end=r.end,
                state=r.state,
                fd=r.fd,
                index=r.index,
                order=r.order,
                no_direct_map=r.no_direct_map,
            )
            for r in runs
        ],
        next=nxt if len(runs) >= limit and nxt < info.total else None,
    )


async def owner(reg: Registry, sid: str, owner_id: str, start: int, limit: int) -> OwnerDetail:
    s = reg.get(sid)
    async with s.lock:
        oid = owner_arg(s.machine, owner_id, "owner")
        return owner_detail(s.machine, s.machine.owner(oid), start, limit)


def _events(s: Session, after: int, limit: int) -> list[EventOut]:
    return [event_out(e, s.op_seq_of(e.seq)) for e in s.machine.events(after, limit)]


async def events(reg: Registry, sid: str, after: int, limit: int) -> Events:
    s = reg.get(sid)
    async with s.lock:
        return Events(events=await _read(s, after, limit), last_seq=s.machine.event_count)


async def event_callbacks(
    reg: Registry, sid: str, seq: int, first: int, count: int
) -> EventCallbacks:
    s = reg.get(sid)
    async with s.lock:
        if not 1 <= seq <= s.machine.event_count:
            raise NotFound(f"no event {seq} in this session", op="events")
        total = s.machine.events(seq - 1, 1, max_items=0)[0].ncallbacks
        cbs = s.machine.event_callbacks(seq, first, count)
    return EventCallbacks(
        seq=seq, total=total, first=first, callbacks=[callback_out(c) for c in cbs]
    )


async def _read(s: Session, after: int, limit: int) -> list[EventOut]:
    if s.small_events(after, limit):
        return _events(s, after, limit)
    return await anyio.to_thread.run_sync(_events, s, after, limit)  # maybe huge


def _sse(event: str | None, data: Any, sse_id: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"data": json.dumps(data, separators=(",", ":"))}
    if event:
        out["event"] = event
    if sse_id is not None:
        out["id"] = str(sse_id)
    return out


async def stream(
    reg: Registry, sid: str, after: int, stop: anyio.Event
) -> AsyncIterator[dict[str, Any]]:
    """Events after `after` as SSE messages (id = event seq), then live ones as they come.
    A rewind below what was sent yields an "rewind" message (the new event_seq and seq);
    the stream ends with an "end" message when the session goes or the service stops."""
    s = reg.get(sid)
    last = after
    seen_rewinds = len(s.rewinds)
    while True:
        changed = s.changed()
        if s.closed or reg.closing or stop.is_set():
            why = "session deleted" if s.closed else "service stopping"
            yield _sse("end", {"reason": why}, None)
            return
        count = s.published
        floor = min(s.rewinds[seen_rewinds:], default=count)
        seen_rewinds = len(s.rewinds)
        if last > min(count, floor):
            last = min(count, floor)
            yield _sse("rewind", {"event_seq": last, "seq": s.seq}, last)
        if count > last:
            async with s.lock:  # a long op may hold the machine: wait here, not in C
                if len(s.rewinds) != seen_rewinds:
                    continue  # the past changed meanwhile: say so first
                batch = await _read(s, last, min(500, count - last))
            for ev in batch:
                yield _sse(None, ev.model_dump(mode="json"), ev.seq)
            if batch:
                last = batch[-1].seq
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=1.0)
