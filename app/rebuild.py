"""Rebuilding sessions from the store at start: replaying each stored log, stopping at
what cannot be replayed (the session is then damaged: docs/service.md), and saying what
was found."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app import redact
from app.service.replay import ReplayError, replay
from app.storetypes import StoredOp

if TYPE_CHECKING:
    from app.session import Session

log = logging.getLogger("sealscope.registry")


def replay_stored(session: Session, ops: list[StoredOp]) -> list[str]:
    """Replay a stored log into a fresh session; returns the differences from the log.
    An op that cannot be replayed at all (a gap, an unknown op, args that are not its
    schema) stops the replay there and sets session.damage; nothing is deleted."""
    diffs: list[str] = []
    for op in ops:
        why = ""
        if op.seq != session.seq + 1:
            why = f"op {session.seq + 1} is missing (the next stored row is {op.seq})"
        else:
            try:
                diffs += replay(session.machine, [op], strict=False)
            except ReplayError as exc:
                why = f"op {op.seq} ({op.name[:40]}) cannot be replayed: {exc.why}"
            except Exception as exc:  # the engine itself: keep what replayed
                session.machine = session.machine_at(session.seq)
                why = f"op {op.seq} ({op.name[:40]}) failed to replay: {exc!r:.200}"
        if why:
            kept = len(ops) - session.seq
            session.damage = f"{why}; the {kept} stored ops from there are kept, not replayed"
            break
        session.record(op._replace(events=session.machine.event_count))
        session.elide(session.seq - 1)
    return diffs


def warn_lost(sid: str, stored: int, acked: int) -> None:
    """Say so when the store holds fewer ops than were acknowledged (app/acked.py)."""
    if stored < acked:
        log.warning(
            "session %s: the store holds %d ops but %d were acknowledged: the last %d are "
            "lost (the database's WAL was damaged or cut)",
            redact.short(sid),
            stored,
            acked,
            acked - stored,
        )
