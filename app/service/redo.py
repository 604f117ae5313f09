"""Redo: replay ops a rewind took out of the log (undo, "rewind to here").

A rewind puts the ops it removes on the session's redo stack (oldest first); a redo
replays the first `count` of them through the same handlers, logs them as new ops (the
engine is deterministic: they end as before, with the same event seqs) and keeps the
rest for later. Any new op ends the stack (Session.push). The stack lives in memory:
a restart of the service forgets it, as it forgets the snapshots.
"""

from __future__ import annotations

import anyio

from app.errors import Conflict, check_writable
from app.models.sessions import SessionDetail
from app.registry import Registry
from app.service.replay import replay
from app.service.runner import log_op
from app.service.sessions import detail_of


async def redo(reg: Registry, sid: str, count: int = 1) -> SessionDetail:
    s = reg.get(sid)
    async with s.lock:
        check_writable(s.damage, "redo")
        if not s.redo:
            raise Conflict("nothing to redo: no rewound ops since the last new op", op="redo")
        if count > len(s.redo):
            raise Conflict(f"count {count}: only {len(s.redo)} ops to redo", op="redo")
        take, rest = s.redo[:count], s.redo[count:]
        with anyio.CancelScope(shield=True):
            for i, op in enumerate(take):
                op = op._replace(seq=s.seq + 1)
                await reg.call(replay, s.machine, [op], False)
                try:
                    # stored as a new op (a store failure undoes it: 503)
                    await log_op(reg, s, op._replace(events=s.machine.event_count))
                except BaseException:
                    s.redo = take[i:] + rest  # undone: still to redo
                    raise
                s.redo = take[i + 1 :] + rest  # log_op's push ended the stack
            # their events may be big (a punch of a million pages): read off the loop
            s.unknown_upto = max(s.unknown_upto, s.machine.event_count)
            s.notify()
        return detail_of(s, s.machine, s.seq)
