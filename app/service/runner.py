"""Running one op of a session: the lock, the limits, the engine call, the durable log.

An op is logged iff the engine recorded it (its event count moved), failures included:
they are events too, and a replay must reproduce the same event seqs. The op is on disk
before the caller gets its answer.
"""

from __future__ import annotations

import logging
import time

import anyio
from pydantic import BaseModel

from app import redact
from app.errors import StoreFailed, TooLarge, TooMany, check_writable
from app.registry import Registry
from app.service.ops import OPS
from app.service.replay import apply
from app.session import Session
from app.store import StoredOp

log = logging.getLogger("sealscope.runner")


async def execute(reg: Registry, sid: str, name: str, args: BaseModel) -> BaseModel | None:
    """Run op `name` on session `sid`; its answer, or the exception the op raised."""
    spec = OPS[name]
    session = reg.get(sid)
    async with session.lock:
        reg.get(sid)  # still there
        check_writable(session.damage, name)
        if session.seq >= reg.settings.max_ops:
            raise TooMany(
                f"the session reached the limit max_ops={reg.settings.max_ops} operations",
                op=name,
                limit="max_ops",
            )
        if spec.check is not None:
            spec.check(reg.settings, session.machine, args)
        text = args.model_dump_json()
        check_log_bytes(reg.settings.max_log_bytes, session.log_bytes, len(text), name)
        # Once the engine is entered, the op is logged even if the request is cancelled.
        with anyio.CancelScope(shield=True):
            heavy = spec.heavy is not None and spec.heavy(session.machine, args)
            first = session.machine.event_count + 1
            out = await reg.call(apply, session.machine, spec, args, heavy=heavy)
            if heavy:
                session.mark_big(first, session.machine.event_count)
            if out.recorded:
                op = StoredOp(session.seq + 1, name, text, out.errno, session.machine.event_count)
                await log_op(reg, session, op)
    if out.error is not None:
        raise out.error
    return out.result


def check_log_bytes(limit: int, used: int, size: int, op: str) -> None:
    """An op's arguments must fit the session's log: 413 when they alone are past
    max_log_bytes, 429 when the log is too full to take them."""
    if size > limit:
        raise TooLarge(
            f"the op's arguments are {size} bytes, past the limit max_log_bytes={limit} "
            "of a session's log",
            op=op,
            limit="max_log_bytes",
        )
    if used + size > limit:
        raise TooMany(
            f"the session's log holds {used} bytes; {size} more is past the limit "
            f"max_log_bytes={limit}",
            op=op,
            limit="max_log_bytes",
        )


async def log_op(reg: Registry, session: Session, op: StoredOp) -> None:
    """Log an op the machine has run: stored before the answer, or undone (503)."""
    session.push(op)
    try:
        await reg.store.append(session.id, op, time.time())
    except Exception as exc:
        short = redact.short(session.id)
        log.error("session %s: op %d not stored (%s); undoing it", short, op.seq, exc)
        machine = await reg.call(session.machine_at, op.seq - 1)
        session.truncate(op.seq - 1, machine)
        session.notify()
        raise StoreFailed(
            "the op was undone, its log entry could not be written", exc, op=op.name
        ) from exc
    session.elide(op.seq - 1)  # stored: its payload is read back when needed
    session.notify()
    spawn_snapshot(reg, session)


def spawn_snapshot(reg: Registry, session: Session) -> None:
    """A snapshot when one is due, off the request's path: it answers first."""
    if session.snapshot_due() and not session.snapping:
        session.snapping = True
        reg.spawn(_snapshot(reg, session))


async def _snapshot(reg: Registry, session: Session) -> None:
    try:
        async with session.lock:
            if not session.closed and session.snapshot_due():
                await reg.call(session.snapshot)
    finally:
        session.snapping = False
