"""Sessions: create (fresh or from a trace), read, delete, export, rewind, preview."""

from __future__ import annotations

import asyncio
import secrets
import time

import anyio

from app.engine import Config, Machine
from app.errors import BadTrace, Conflict, StoreFailed, TooLarge, TooMany, check_writable
from app.models.files import File
from app.models.sessions import (
    PhysSummary,
    SessionCreate,
    SessionDetail,
    Trace,
    Waiter,
)
from app.models.sessions import (
    Session as SessionOut,
)
from app.registry import Registry
from app.service import room
from app.service.convert import file_out, owner_out
from app.service.replay import ReplayError, run_trace
from app.session import Session
from app.store import StoredSession, StoreError


def session_out(s: Session, m: Machine | None = None, seq: int | None = None) -> SessionOut:
    m = m or s.machine
    return SessionOut(
        id=s.id,
        profile=s.config.profile,  # type: ignore[arg-type]
        phys_pages=s.config.phys_pages,
        thp=s.config.thp,  # type: ignore[arg-type]
        variants=sorted(s.config.variants),
        seq=s.seq if seq is None else seq,
        event_seq=m.event_count,
        damage=s.damage,
    )


def detail_of(s: Session, m: Machine, seq: int) -> SessionDetail:
    phys = m.phys()
    return SessionDetail(
        **session_out(s, m, seq).model_dump(),
        files=[File.model_validate(file_out(f).model_dump()) for f in m.files()],
        owners=[owner_out(o) for o in m.owners()],
        phys=PhysSummary(free=phys.free, used=phys.used, total=phys.total),
        waiters=[Waiter(seq=w.seq, op=w.op, fd=w.fd, pfn=w.pfn) for w in m.waiters()],
        redo=len(s.redo) if m is s.machine else 0,  # previews: none
    )


def _limits(reg: Registry, phys_pages: int, nops: int) -> None:
    st = reg.settings
    if len(reg.sessions) >= st.max_sessions:
        raise TooMany(
            f"the service holds the limit max_sessions={st.max_sessions} sessions",
            op="session",
            limit="max_sessions",
        )
    if phys_pages > st.max_phys_pages:
        raise TooLarge(
            f"phys_pages {phys_pages} is past the limit max_phys_pages={st.max_phys_pages}",
            op="session",
            limit="max_phys_pages",
        )
    total = room.frames_in_use(reg)
    if total + phys_pages > st.max_total_phys_pages:
        raise TooMany(
            f"the sessions (and replays) hold {total} frames; {phys_pages} more is past the limit "
            f"max_total_phys_pages={st.max_total_phys_pages}",
            op="session",
            limit="max_total_phys_pages",
        )
    if nops > st.max_ops:
        raise TooLarge(
            f"the trace has {nops} ops, past the limit max_ops={st.max_ops}",
            op="session",
            limit="max_ops",
        )


async def create(reg: Registry, body: SessionCreate) -> SessionOut:
    """A new session; with a trace, every op replayed (a bad trace is refused whole)."""
    src = body.trace or Trace(
        profile=body.profile, phys_pages=body.phys_pages, thp=body.thp, variants=body.variants
    )
    _limits(reg, src.phys_pages, len(src.ops))
    config = Config(src.profile, src.phys_pages, src.thp, frozenset(src.variants))
    now = time.time()
    sid = secrets.token_urlsafe(24)
    if config.phys_pages > 1 << 20:  # 32 bytes a frame: tens of ms and more
        session = await anyio.to_thread.run_sync(
            Session, sid, config, reg.settings, now, reg.budget
        )
    else:
        session = Session(sid, config, reg.settings, now, reg.budget)
    if src.ops:
        try:
            await anyio.to_thread.run_sync(
                run_trace, session.machine, src.ops, reg.settings, session.record
            )
        except ReplayError as exc:
            session.drop_snapshots()
            raise BadTrace(f"trace refused: {exc}", op="trace", status=exc.status) from exc
    session.published = session.unknown_upto = session.machine.event_count
    try:
        _limits(reg, src.phys_pages, len(src.ops))  # again: others may have come meanwhile
        if session.log_bytes > reg.settings.max_log_bytes:
            raise TooLarge(
                f"the trace's ops take {session.log_bytes} bytes, past the limit "
                f"max_log_bytes={reg.settings.max_log_bytes} of a session's log",
                op="session",
                limit="max_log_bytes",
            )
    except Exception:
        session.drop_snapshots()
        raise
    row = StoredSession(
        session.id, config.profile, config.phys_pages, config.thp, sorted(config.variants), now, now
    )
    reg.sessions[session.id] = session
    try:
        await asyncio.shield(reg.store.create_session(row, session.ops, now))
    except Exception as exc:
        reg.sessions.pop(session.id, None)
        session.drop_snapshots()
        raise StoreFailed("the session could not be stored", exc, op="session") from exc
    reg.attach(session)
    session.elide()
    return session_out(session)


async def get(reg: Registry, sid: str) -> SessionDetail:
    s = reg.get(sid)
    async with s.lock:
        return detail_of(s, s.machine, s.seq)


async def delete(reg: Registry, sid: str) -> None:
    s = reg.get(sid)
    async with s.lock:
        await reg.remove(s)


def _check_seq(s: Session, n: int, op: str) -> None:
    if n > s.seq:
        raise Conflict(f"seq {n} is past the session's last op ({s.seq})", op=op)


async def rewind(reg: Registry, sid: str, n: int) -> SessionDetail:
    """The state after op n, for good: ops after n leave the log (time travel + undo)
    for the redo stack (app/service/redo.py)."""
    s = reg.get(sid)
    async with s.lock:
        _check_seq(s, n, "rewind")
        check_writable(s.damage, "rewind")
        with anyio.CancelScope(shield=True):
            with room.machines(reg, 1, s.config.phys_pages, "rewind"):
                machine = await reg.call(s.machine_at, n)
            # POST …/redo replays them, until a new op (with their payloads: the store
            # drops their rows now)
            going = await reg.call(s.full_ops, n, s.seq)
            try:
                await reg.store.truncate(s.id, n, time.time())
            except StoreError as exc:
                raise StoreFailed("the session was not rewound", exc, op="rewind") from exc
            s.redo[:0] = going
            s.truncate(n, machine)
            s.notify()
        return detail_of(s, s.machine, s.seq)


async def at(reg: Registry, sid: str, n: int) -> SessionDetail:
    """A preview of the state after op n; the session does not change."""
    s = reg.get(sid)
    async with s.lock:
        _check_seq(s, n, "at")
        with room.machines(reg, 1, s.config.phys_pages, "at"):
            machine = await reg.call(s.machine_at, n)
            return detail_of(s, machine, n)
