"""Read-only views of a session: files, pages, frames, owners, the event log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio

from app.engine import MAX_ITEMS, FrameRun
from app.errors import NotFound
from app.models.files import File
from app.models.guest import OwnerDetail
from app.models.views import (
    CowFrameExtent,
    EventCallbacks,
    EventOut,
    Events,
    FrameExtent,
    Phys,
)
from app.registry import Registry
from app.service import streams
from app.service.convert import callback_out, event_out, fd_arg, file_out, owner_arg, owner_detail
from app.service.view_answers import pages_json
from app.session import Session

MAX_RUNS = 10000
ITEM_BUDGET = 1 << 16  # callbacks and touches one events answer carries in all


async def file(reg: Registry, sid: str, fd: int) -> File:
    s = reg.get(sid)
    async with s.lock:
        return file_out(s.machine.file(fd_arg(fd)))


async def pages_bytes(
    reg: Registry, sid: str, fd: int, start: int, end: int | None, limit: int
) -> bytes:
    """The Pages answer as JSON bytes (app/service/view_answers.py)."""
    s = reg.get(sid)
    async with s.lock:
        runs, nxt = s.machine.page_runs(fd_arg(fd), start, end, limit)
    return pages_json(runs, nxt if len(runs) >= limit else None)


def _extent(r: FrameRun) -> FrameExtent:
    e = FrameExtent(
        start=r.start,
        end=r.end,
        state=r.state,
        fd=r.fd,
        index=r.index,
        order=r.order,
        no_direct_map=r.no_direct_map,
    )
    if r.map_id is not None:  # a private mapping's copy names its mapping
        return CowFrameExtent(**e.model_dump(), map_id=r.map_id)
    return e


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
        extents=[_extent(r) for r in runs],
        next=nxt if len(runs) >= limit and nxt < info.total else None,
    )


async def owner(reg: Registry, sid: str, owner_id: str, start: int, limit: int) -> OwnerDetail:
    s = reg.get(sid)
    async with s.lock:
        oid = owner_arg(s.machine, owner_id, "owner")
        return owner_detail(s.machine, s.machine.owner(oid), start, limit)


def _fitting(s: Session, after: int, limit: int) -> int:
    """How many of the events after `after` (at most limit) fit in one answer: each
    carries up to 4096 callbacks and 4096 touches, and an answer at most ITEM_BUDGET
    of them in all (at least one event; the rest come with the next page)."""
    n = items = 0
    for e in s.machine.events(after, limit, max_items=0):
        items += min(e.callbacks_kept, MAX_ITEMS) + min(e.touches_kept, MAX_ITEMS)
        if n and items > ITEM_BUDGET:
            break
        n += 1
    return n


def _events(s: Session, after: int, limit: int) -> list[EventOut]:
    if not s.small_events(after, limit):
        limit = _fitting(s, after, limit)
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
        ev = s.machine.events(seq - 1, 1, max_items=0)[0]
        cbs = s.machine.event_callbacks(seq, first, count)
    return EventCallbacks(
        seq=seq,
        total=ev.ncallbacks,
        first=first,
        callbacks=[callback_out(c) for c in cbs],
        kept=ev.callbacks_kept,
    )


async def _read(s: Session, after: int, limit: int) -> list[EventOut]:
    if s.small_events(after, limit):
        return _events(s, after, limit)
    return await anyio.to_thread.run_sync(_events, s, after, limit)  # maybe huge


def _messages(s: Session, after: int, limit: int) -> tuple[int, bytes]:
    """The SSE messages (id = event seq) of the events after `after`, at most `limit`,
    encoded together (one write for the chunk); and the last seq in them."""
    evs = _events(s, after, limit)
    text = "".join(f"id: {e.seq}\r\ndata: {e.model_dump_json()}\r\n\r\n" for e in evs)
    return (evs[-1].seq if evs else after), text.encode()


def _sse(event: str | None, data: Any, sse_id: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {"data": json.dumps(data, separators=(",", ":"))}
    if event:
        out["event"] = event
    if sse_id is not None:
        out["id"] = str(sse_id)
    return out


async def _read_chunk(
    reg: Registry,
    s: Session,
    key: tuple[str, int, int, int],
    count: int,
    big: bool,
    keep: bool,
) -> tuple[int, bytes] | None:
    """Chunk `key` read from the engine in the stream's turn, kept for other replays
    when whole (None: a rewind came meanwhile)."""
    _, gen, after, n = key
    async with reg.streams.turns(), s.lock:  # a long op may hold the machine
        if len(s.rewinds) != gen:
            return None
        got = reg.streams.cached(key, count)  # another replay read it meanwhile
        if got is not None:
            return got
        if big:
            got = await anyio.to_thread.run_sync(_messages, s, after, n)
        else:
            got = _messages(s, after, n)
    if keep:
        reg.streams.keep(key, got)
    return got


async def stream(
    reg: Registry, sid: str, after: int, stop: anyio.Event
) -> AsyncIterator[dict[str, Any] | bytes]:
    """Events after `after` as SSE messages (id = event seq), then live ones as they come.
    A rewind below what was sent yields an "rewind" message (the new event_seq and seq);
    the stream ends with an "end" message when the session goes or the service stops."""
    s = reg.get(sid)
    last = after
    seen_rewinds = len(s.rewinds)
    while True:
        changed = s.changed()
        # a deleted session's stream first sends what was published before the delete
        drain = s.closed and not (reg.closing or stop.is_set()) and s.published > last
        if (s.closed or reg.closing or stop.is_set()) and not drain:
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
            # a chunk at a time, in turn with the other streams (app/service/streams.py)
            big = not s.small_events(last, min(streams.CHUNK, count - last))
            size = streams.BIG_CHUNK if big else streams.CHUNK
            n = min(size - last % size, count - last)  # chunks aligned: replays share them
            key = (sid, seen_rewinds, last, n)
            got = reg.streams.cached(key, count)
            if got is None:
                got = await _read_chunk(reg, s, key, count, big, keep=n == size)
            if got is None:
                continue  # the past changed meanwhile: say so first
            upto, chunk = got
            if chunk:
                yield chunk
            last = upto
            await asyncio.sleep(0)  # the others' turn
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=1.0)
