"""The durable store on PostgreSQL (SEALSCOPE_STORE=postgresql://...): the same schema
and the same promise as app/store.py (an op is committed before its answer; a write that
fails is rolled back and raised as StoreError), shared by the workers of a cluster.

Ownership (docs/deploy.md): a worker appends to a session's log only while it holds the
session's PostgreSQL advisory lock, a session-level lock taken on the one connection all
of its writes go through (the owner connection). Every write checks that the lock is held
before it touches a row, so a write is fenced by the lock itself: when the connection
dies its locks die with it, and the writes of this worker fail with it. A worker that is
SIGKILLed loses its connection at once (the kernel closes the socket), so its sessions
are free for the others within milliseconds. (sid, seq) stays the primary key: a second
line of defence, never the arbiter.

Writes are group-committed as in SQLite: queued with a future, one flusher commits what
is queued in one transaction (synchronous_commit stays on: the commit is in the WAL on
disk before the answer). Reads (payloads, loading a session) go through a small pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from app.store import StoreError
from app.store_pg_rows import (
    CHANNEL,
    KEY,
    SCHEMA,
    SCHEMA_LOCK,
    NoAcked,
    holders,
    read_sessions,
)
from app.storetypes import StoredOp, StoredSession

__all__ = ["NoAcked", "PgStore", "holders"]

log = logging.getLogger("sealscope.store")

Conn = psycopg.AsyncConnection[Any]
Write = Callable[[Conn], Awaitable[None]]


class NotOwner(RuntimeError):
    pass


def _error(exc: Exception) -> StoreError:
    err = StoreError(Path("postgresql"), exc)
    err.full = isinstance(exc, psycopg.errors.DiskFull)
    return err


class PgStore:
    def __init__(self, url: str, sync: str = "normal") -> None:
        self.url = url
        self.sync = sync
        self.path = Path("postgresql")
        self.acked = NoAcked()
        self.held: set[str] = set()  # sessions whose lock the owner connection holds
        self.on_handoff: Callable[[str], None] | None = None  # another worker wants sid
        self._conn: Conn | None = None
        self._listener: asyncio.Task[None] | None = None
        self._pool: ConnectionPool[Any] | None = None
        self._queue: list[tuple[Write, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        try:
            self._conn = await self._connect()
            async with self._conn.transaction():
                await self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                await self._conn.execute(SCHEMA)
        except psycopg.Error as exc:
            raise RuntimeError(f"the store (PostgreSQL) cannot be opened: {exc}") from exc
        self._pool = ConnectionPool(  # reads are rare (claims, payloads): check each
            self.url,
            min_size=1,
            max_size=4,
            kwargs={"autocommit": True, "application_name": f"sealscope {os.getpid()}"},
            check=ConnectionPool.check_connection,
            open=True,
        )
        self._flusher = asyncio.create_task(self._flush_loop())
        self._listener = asyncio.create_task(self._listen())

    async def _connect(self) -> Conn:
        return await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, application_name=f"sealscope {os.getpid()}"
        )

    async def close(self) -> None:
        if self._flusher is not None:
            self._closing = True
            self._wake.set()
            await self._flusher
            self._flusher = None
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None
        if self._conn is not None:
            await self._conn.close()  # and with it every lock this worker held
            self._conn = None
        self.held.clear()
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def _listen(self) -> None:
        """Hand-off requests of the other workers (app/ownership.py answers them)."""
        while True:
            try:
                conn = await self._connect()
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for n in conn.notifies():
                        if self.on_handoff is not None and n.payload in self.held:
                            self.on_handoff(n.payload)
            except psycopg.Error as exc:
                log.warning("store: the hand-off listener lost PostgreSQL (%s); again in 1 s", exc)
                await asyncio.sleep(1.0)

    # -- reading ----------------------------------------------------------------------------
    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self._pool is None:
            with psycopg.connect(self.url, autocommit=True) as c:
                return c.execute(sql, args).fetchall()
        with self._pool.connection() as c:
            return c.execute(sql, args).fetchall()

    def load(self) -> list[StoredSession]:
        """What a worker rebuilds at start: nothing (it loads each session when it gets a
        request for it: load_one); load_all reads them all (tools, tests)."""
        return []

    def load_all(self) -> list[StoredSession]:
        return read_sessions(self._rows, None)

    def load_one(self, sid: str) -> StoredSession | None:
        found = read_sessions(self._rows, sid)
        return found[0] if found else None

    def payloads(self, sid: str, lo: int, hi: int) -> dict[int, str]:
        rows = self._rows(
            "SELECT seq, args FROM ops WHERE sid = %s AND seq > %s AND seq <= %s AND op = 'pwrite'",
            (sid, lo, hi),
        )
        return {int(seq): args for seq, args in rows}

    # -- ownership --------------------------------------------------------------------------
    def holds(self, sid: str) -> bool:
        return sid in self.held

    async def lock(self, sid: str) -> bool:
        """Take session sid's lock if it is free (False when another worker holds it)."""
        got: list[bool] = []

        async def write(c: Conn) -> None:
            if sid in self.held:
                got.append(True)
                return
            cur = await c.execute(f"SELECT pg_try_advisory_lock({KEY})", (sid,))
            row = await cur.fetchone()
            if row is not None and row[0]:
                self.held.add(sid)  # held even if this transaction rolls back
            got.append(sid in self.held)

        await self.submit(write)
        return bool(got and got[-1])

    async def unlock(self, sid: str) -> None:
        async def write(c: Conn) -> None:
            if sid in self.held:
                self.held.discard(sid)
                await c.execute(f"SELECT pg_advisory_unlock({KEY})", (sid,))

        await self.submit(write)

    async def ask_handoff(self, sid: str) -> None:
        """Ask whichever worker holds sid to let it go (it does between two ops)."""
        await self.submit(lambda c: _notify(c, sid))

    def _owned(self, sid: str) -> None:
        if sid not in self.held:
            raise NotOwner(f"this worker does not hold session {sid[:12]}... any more")

    # -- writing: each resolves after its commit ------------------------------------------
    async def submit(self, write: Write) -> None:
        if self._flusher is None or self._closing:
            raise RuntimeError("the store is closed")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((write, fut))
        self._wake.set()
        await fut

    async def create_session(self, s: StoredSession, ops: list[StoredOp], ts: float) -> None:
        row = (s.id, s.profile, s.phys_pages, s.thp, json.dumps(s.variants), s.created, ts)

        async def write(c: Conn) -> None:
            if s.id not in self.held:
                cur = await c.execute(f"SELECT pg_try_advisory_lock({KEY})", (s.id,))
                got = await cur.fetchone()
                if got is None or not got[0]:
                    raise NotOwner(f"session {s.id[:12]}... is held by another worker")
                self.held.add(s.id)
            await c.execute("INSERT INTO sessions VALUES (%s, %s, %s, %s, %s, %s, %s)", row)
            await _insert_ops(c, s.id, ops, ts)

        await self.submit(write)

    async def append(self, sid: str, op: StoredOp, ts: float) -> None:
        await self.append_many(sid, [op], ts)

    async def append_many(self, sid: str, ops: list[StoredOp], ts: float) -> None:
        async def write(c: Conn) -> None:
            self._owned(sid)
            await _insert_ops(c, sid, ops, ts)

        await self.submit(write)

    async def truncate(self, sid: str, n: int, ts: float) -> None:
        async def write(c: Conn) -> None:
            self._owned(sid)
            await c.execute("DELETE FROM ops WHERE sid = %s AND seq > %s", (sid, n))
            await c.execute("UPDATE sessions SET active = %s WHERE id = %s", (ts, sid))

        await self.submit(write)

    async def delete(self, sid: str) -> None:
        async def write(c: Conn) -> None:
            self._owned(sid)
            await c.execute("DELETE FROM ops WHERE sid = %s", (sid,))
            await c.execute("DELETE FROM sessions WHERE id = %s", (sid,))

        await self.submit(write)
        await self.unlock(sid)

    # -- the flusher --------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                errors = await self._commit([w for w, _ in batch])
                for (_, fut), err in zip(batch, errors, strict=True):
                    if fut.done():
                        continue
                    if err is None:
                        fut.set_result(None)
                    else:
                        fut.set_exception(err)
            if self._closing:
                return

    async def _commit(self, writes: list[Write]) -> list[Exception | None]:
        """One transaction for all; if it fails, one each, to fail only the culprit. A
        lost connection fails them all and takes the locks with it (held is emptied:
        this worker owns nothing until it claims again)."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            try:
                conn = await self._reconnect()
            except psycopg.Error as exc:
                return [_error(exc)] * len(writes)
        try:
            async with conn.transaction():
                for write in writes:
                    await write(conn)
            return [None] * len(writes)
        except Exception as exc:
            if conn.closed or conn.broken:
                log.error("store: the connection to PostgreSQL was lost: %s", exc)
                self.held.clear()
                return [_error(exc)] * len(writes)
            if len(writes) == 1:
                log.error("store write failed: %s", exc)
                return [_error(exc)]
        return [(await self._commit([w]))[0] for w in writes]

    async def _reconnect(self) -> Conn:
        self.held.clear()
        if self._conn is not None:
            await self._conn.close()
        self._conn = await self._connect()
        return self._conn


async def _notify(c: Conn, sid: str) -> None:
    await c.execute("SELECT pg_notify(%s, %s)", (CHANNEL, sid))


async def _insert_ops(c: Conn, sid: str, ops: list[StoredOp], ts: float) -> None:
    if not ops:
        return
    async with c.cursor() as cur:
        await cur.executemany(
            "INSERT INTO ops VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(sid, o.seq, o.name, o.args, o.errno, o.events, ts) for o in ops],
        )
