"""The durable store: SQLite (WAL) holding each session's configuration and op log.

Writes are group-committed: each is queued with a future that resolves once its
transaction has committed, so a request answers only after its op is in the database.
With synchronous=NORMAL (the default: a commit is a write(2); it survives SIGKILL, not a
power cut) the writes made in one turn of the event loop (the requests that came in
together) commit in one transaction, on the loop, at the start of its next turn: BEGIN
and COMMIT (~25 us of the ~35 an op's commit cost, bench/api.py) once for all of them.
With synchronous=FULL (an fsync per commit: 0.3 ms to milliseconds) one flusher task
commits whatever is queued in one transaction in a worker thread while the next batch
gathers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import anyio

from app import redact
from app.acked import Acked
from app.storetypes import StoredOp, StoredSession, check_directory, op_of, session_of

log = logging.getLogger("sealscope.store")

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    profile TEXT NOT NULL,
    phys_pages INTEGER NOT NULL,
    thp TEXT NOT NULL,
    variants TEXT NOT NULL,
    created REAL NOT NULL,
    active REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ops (
    sid TEXT NOT NULL,
    seq INTEGER NOT NULL,
    op TEXT NOT NULL,          -- the API's op name
    args TEXT NOT NULL,        -- its arguments, a JSON object
    errno TEXT,                -- how it ended (NULL: success)
    events INTEGER NOT NULL,   -- engine event count after it
    ts REAL NOT NULL,
    PRIMARY KEY (sid, seq)
) WITHOUT ROWID;
"""

Write = Callable[[sqlite3.Connection], None]


class StoreError(RuntimeError):
    """A write the store could not make (rolled back: the database is as before it)."""

    def __init__(self, path: Path, exc: Exception) -> None:
        super().__init__(f"the store {path.name} could not write: {exc}")
        self.full = isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)


class Store:
    def __init__(self, path: Path, sync: str = "normal") -> None:
        self.path = path
        self.sync = "FULL" if sync.lower() == "full" else "NORMAL"
        self._conn: sqlite3.Connection | None = None
        self._queue: list[tuple[Write, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = False
        self._flushing = False
        self._turn: list[tuple[Write, asyncio.Future[None]]] = []  # NORMAL: this turn's
        self.acked = Acked(path.with_name(path.name + ".acked"))
        # payload reads (worker threads) and commits never use the connection at once
        self._use = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        """The store's one connection. It holds the database file for itself (locking_mode
        EXCLUSIVE, set before WAL so no shared-memory index is made): a commit then takes
        no file locks (~25% of its cost), and a second service started on the same data
        directory fails at start (after the 2 s busy timeout) instead of interleaving its
        writes with ours."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=2, check_same_thread=False)
        try:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.sync}")
            conn.executescript(SCHEMA)  # takes the lock
        except sqlite3.OperationalError as exc:
            conn.close()
            if "locked" in str(exc):
                raise RuntimeError(
                    f"{self.path} is in use by another sealscope process (one store, one "
                    "service: give this one another SEALSCOPE_DATA)"
                ) from exc
            raise
        return conn

    async def open(self) -> None:
        check_directory(self.path.parent)
        if self.path.exists() and self.path.stat().st_size == 0:
            log.warning(
                "the store %s is 0 bytes: no sessions to rebuild (a database that was "
                "emptied or never written); starting empty",
                self.path,
            )
        try:
            self._conn = self._connect()
        except sqlite3.Error as exc:
            raise RuntimeError(f"the store {self.path} cannot be opened: {exc}") from exc
        self._flusher = asyncio.create_task(self._flush_loop())

    async def close(self) -> None:
        self._commit_turn()  # what this turn wrote (its callback then finds nothing)
        if self._flusher is not None:  # what was queued still goes to disk
            self._closing = True
            self._wake.set()
            await self._flusher
            self._flusher = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.acked.flush()

    # -- reading (at start-up) --------------------------------------------------------
    def load(self) -> list[StoredSession]:
        """Every stored session with its log: through the open connection (it holds the
        file), or a connection of its own when the store is not open. A sessions row
        that makes no sense is logged and left out (and left in the database); op rows
        are read as they are (replay decides what they are worth)."""
        conn = self._conn or self._connect()
        try:
            out: dict[str, StoredSession] = {}
            for row in conn.execute(
                "SELECT id, profile, phys_pages, thp, variants, created, active FROM sessions"
            ):
                s = session_of(row)
                if isinstance(s, StoredSession):
                    out[s.id] = s
                else:
                    sid = row[0] if isinstance(row[0], str) else repr(row[0])
                    log.warning(
                        "session %s: not loaded, its sessions row is damaged (%s); the row "
                        "and its ops stay in the store",
                        redact.short(sid),
                        s,
                    )
            for sid, seq, op, args, errno, events, ts in conn.execute(
                "SELECT sid, seq, op, args, errno, events, ts FROM ops ORDER BY sid, seq"
            ):
                if sid in out:
                    s = out[sid]
                    s.ops.append(op_of(seq, op, args, errno, events))
                    if isinstance(ts, int | float):
                        s.active = max(s.active, ts)
            return list(out.values())
        finally:
            if conn is not self._conn:
                conn.close()

    def payloads(self, sid: str, lo: int, hi: int) -> dict[int, str]:
        """{seq: args} of session sid's payload ops lo < seq <= hi (any thread)."""
        with self._use:
            if self._conn is None:
                raise RuntimeError("the store is closed")
            rows = self._conn.execute(
                "SELECT seq, args FROM ops WHERE sid = ? AND seq > ? AND seq <= ? "
                "AND op = 'pwrite'",
                (sid, lo, hi),
            ).fetchall()
        return dict(rows)

    # -- writing: each resolves after its commit ------------------------------------------
    async def submit(self, write: Write) -> None:
        if self._flusher is None or self._closing:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        if self.sync == "NORMAL":
            self._turn.append((write, fut))
            if len(self._turn) == 1:  # the first of this turn: commit them all next turn
                loop.call_soon(self._commit_turn)
            await fut
            return
        self._queue.append((write, fut))
        self._wake.set()
        await fut

    async def create_session(self, s: StoredSession, ops: list[StoredOp], ts: float) -> None:
        row = (s.id, s.profile, s.phys_pages, s.thp, json.dumps(s.variants), s.created, ts)

        def write(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            _insert_ops(c, s.id, ops, ts)

        await self.submit(write)
        self.acked.ack(s.id, len(ops))

    async def append(self, sid: str, op: StoredOp, ts: float) -> None:
        await self.submit(lambda c: _insert_ops(c, sid, [op], ts))
        self.acked.ack(sid, op.seq)

    async def append_many(self, sid: str, ops: list[StoredOp], ts: float) -> None:
        """A batch of ops in one transaction: all of them are stored, or none."""
        await self.submit(lambda c: _insert_ops(c, sid, ops, ts))

    async def truncate(self, sid: str, n: int, ts: float) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM ops WHERE sid = ? AND seq > ?", (sid, n))
            c.execute("UPDATE sessions SET active = ? WHERE id = ?", (ts, sid))

        self.acked.lower(sid, n)
        await self.submit(write)

    async def delete(self, sid: str) -> None:
        def write(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM ops WHERE sid = ?", (sid,))
            c.execute("DELETE FROM sessions WHERE id = ?", (sid,))

        self.acked.lower(sid, None)
        await self.submit(write)

    # -- the flusher --------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._flush()
            if self._closing:
                return

    def _commit_turn(self) -> None:
        """Commit the writes of the loop's last turn (NORMAL) and answer their futures."""
        batch, self._turn = self._turn, []
        if batch:
            _resolve(batch, self._commit([w for w, _ in batch]))

    async def _flush(self) -> None:
        batch, self._queue = self._queue, []
        writes = [w for w, _ in batch]
        self._flushing = True
        try:
            if self.sync == "FULL":
                errors = await anyio.to_thread.run_sync(self._commit, writes)
            else:
                errors = self._commit(writes)
        finally:
            self._flushing = False
        _resolve(batch, errors)

    def _commit(self, writes: list[Write]) -> list[Exception | None]:
        """One transaction for all; if it fails, one each, to fail only the culprit."""
        with self._use:
            return self._commit_locked(writes)

    def _commit_locked(self, writes: list[Write]) -> list[Exception | None]:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            for write in writes:
                write(conn)
            conn.execute("COMMIT")
            return [None] * len(writes)
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if len(writes) == 1:
                log.error("store write failed: %s", exc)
                return [StoreError(self.path, exc)]
        return [self._commit_locked([w])[0] for w in writes]


def _insert_ops(c: sqlite3.Connection, sid: str, ops: list[StoredOp], ts: float) -> None:
    c.executemany(
        "INSERT INTO ops VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(sid, o.seq, o.name, o.args, o.errno, o.events, ts) for o in ops],
    )


def _resolve(
    batch: list[tuple[Write, asyncio.Future[None]]], errors: list[Exception | None]
) -> None:
    for (_, fut), err in zip(batch, errors, strict=True):
        if fut.done():  # its waiter was cancelled: the write stands
            continue
        if err is None:
            fut.set_result(None)
        else:
            fut.set_exception(err)
