"""The PostgreSQL store's tables and its reads (app/store_pg.py writes): the schema, the
sessions and their logs as rows, and who holds which session's lock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg

from app import redact
from app.storetypes import StoredSession, op_of, session_of

log = logging.getLogger("sealscope.store")
Rows = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]  # (sql, args) -> rows

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    phys_pages BIGINT NOT NULL,
    thp TEXT NOT NULL,
    variants TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    active DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS ops (
    sid TEXT NOT NULL,
    seq BIGINT NOT NULL,
    op TEXT NOT NULL,
    args TEXT NOT NULL,
    errno TEXT,
    events BIGINT NOT NULL,
    ts DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sid, seq)
);
"""
SCHEMA_LOCK = 0x5EA15C09E  # the workers of a cluster create the schema one at a time
CHANNEL = "sealscope_handoff"  # NOTIFY payload: a sid some worker wants
KEY = "hashtextextended(%s, 0)"  # a session's advisory lock key


class NoAcked:
    """The acknowledged-count file guards SQLite's WAL against silent truncation; a
    PostgreSQL commit is reported or it failed, so there is nothing to keep."""

    def read(self) -> dict[str, int]:
        return {}

    def start(self, counts: dict[str, int]) -> None:
        pass

    def ack(self, sid: str, n: int) -> None:
        pass

    def lower(self, sid: str, n: int | None) -> None:
        pass

    def flush(self) -> None:
        pass


def read_sessions(rows: Rows, sid: str | None) -> list[StoredSession]:
    """The stored sessions with their logs (sid's alone, or all), checked as SQLite's are
    (app/storetypes.py): a sessions row that makes no sense is logged and left out."""
    where, args = ("WHERE id = %s", (sid,)) if sid is not None else ("", ())
    out: dict[str, StoredSession] = {}
    cols = "id, profile, phys_pages, thp, variants, created, active"
    for row in rows(f"SELECT {cols} FROM sessions {where}", args):
        s = session_of(row)
        if isinstance(s, StoredSession):
            out[s.id] = s
        else:
            name = row[0] if isinstance(row[0], str) else repr(row[0])
            log.warning(
                "session %s: not loaded, its sessions row is damaged (%s); the row and its "
                "ops stay in the store",
                redact.short(name),
                s,
            )
    where = "WHERE sid = %s" if sid is not None else ""
    sql = f"SELECT sid, seq, op, args, errno, events, ts FROM ops {where} ORDER BY sid, seq"
    for osid, seq, op, a, errno, events, ts in rows(sql, args):
        if osid in out:
            s = out[osid]
            s.ops.append(op_of(seq, op, a, errno, events))
            s.active = max(s.active, ts)
    return list(out.values())


HOLDERS = """
SELECT s.id, a.application_name FROM sessions s
JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted
    AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended(s.id, 0)
JOIN pg_stat_activity a ON a.pid = l.pid
"""


def holders(url: str) -> dict[str, int]:
    """{sid: pid of the worker that holds it} (a look at who owns what: tests, operators)."""
    with psycopg.connect(url, autocommit=True) as c:
        rows = c.execute(HOLDERS).fetchall()
    return {sid: int(name.split()[-1]) for sid, name in rows if name.startswith("sealscope ")}
