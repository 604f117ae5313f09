"""The session registry: the service's only global mutable state, owned by the app.

It holds the sessions (app/session.py: a Machine, its op log, its snapshots), the
snapshot budget they share, the open event streams, and the tasks it runs for them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio

from app import redact
from app.engine import Config
from app.errors import NotFound, StoreFailed
from app.rebuild import warn_lost
from app.service.streams import Streams
from app.session import Budget, Session
from app.settings import Settings
from app.store import Store, StoredSession, StoreError

log = logging.getLogger("sealscope.registry")
T = TypeVar("T")


class Registry:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.sessions: dict[str, Session] = {}
        self.budget = Budget(settings.snapshot_total)
        self.borrowed = 0  # frames of temporary machines alive now (app/service/room.py)
        self.streams = Streams(settings)  # open event streams, their turns to read
        self.closing = False
        self._expiry: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, sid: str) -> Session:
        session = self.sessions.get(sid)
        if session is None or session.closed:
            raise NotFound(f"no session {sid[:64]!r}", op="session")
        session.active = time.time()
        return session

    def attach(self, session: Session) -> None:
        """Let the session read its payloads back from the store."""
        session.fetch = functools.partial(self.store.payloads, session.id)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Background work owned by the registry (kept referenced until it ends)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def call(self, fn: Callable[..., T], *args: Any, heavy: bool = True) -> T:
        """Run engine work in the threadpool, or inline on the event loop when it is known
        to be short (most single ops: tens of microseconds, less than the thread hop)
        and settings.engine_threads is off. Never two at once on one machine: the
        session lock and the Machine's own lock see to that."""
        if heavy or self.settings.engine_threads:
            return await anyio.to_thread.run_sync(fn, *args)
        return fn(*args)

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self.store.open()
        stored = await anyio.to_thread.run_sync(self.store.load)
        acked = self.store.acked.read()
        now = time.time()
        for s in stored:
            if now - s.active > self.settings.session_ttl:
                await self.store.delete(s.id)
                continue
            session = await anyio.to_thread.run_sync(self._rebuild, s)
            if session is None:
                continue
            warn_lost(s.id, len(s.ops), acked.get(s.id, 0))
            self.sessions[s.id] = session
        self.store.acked.start({s.id: len(s.ops) for s in stored if s.id in self.sessions})
        if stored:
            log.info("rebuilt %d sessions", len(self.sessions))
        self._expiry = asyncio.create_task(self._expire_loop())

    def _rebuild(self, s: StoredSession) -> Session | None:
        short = redact.short(s.id)
        try:
            config = Config(s.profile, s.phys_pages, s.thp, frozenset(s.variants))
        except ValueError as exc:
            log.warning("session %s: not loaded, its sessions row is damaged (%s)", short, exc)
            return None
        session = Session(s.id, config, self.settings, s.created, self.budget)
        self.attach(session)
        session.active = s.active
        diffs = session.load(s.ops)
        if session.damage:
            log.warning("session %s: damaged, read only: %s", short, session.damage)
        for d in diffs[:10]:
            log.warning("session %s: replay differs from the log: %s", short, d)
        session.published = session.unknown_upto = session.machine.event_count
        return session

    async def stop(self) -> None:
        self.closing = True
        if self._expiry is not None:
            self._expiry.cancel()
        for task in list(self._tasks):
            task.cancel()
        for session in self.sessions.values():
            session.notify()
        await self.store.close()

    async def remove(self, session: Session) -> None:
        """Delete the session from the store, then from memory (StoreFailed, and the
        session stays, when the store cannot write)."""
        with anyio.CancelScope(shield=True):
            try:
                await self.store.delete(session.id)
            except StoreError as exc:
                raise StoreFailed("the session was not deleted", exc, op="session_delete") from exc
            session.closed = True
            self.sessions.pop(session.id, None)
            self.streams.forget(session.id)
            session.drop_snapshots()
            session.notify()

    async def _expire_loop(self) -> None:
        period = min(60.0, max(0.05, self.settings.session_ttl / 4))
        while True:
            await asyncio.sleep(period)
            await self.expire()

    async def expire(self) -> int:
        cutoff = time.time() - self.settings.session_ttl
        old = [
            s
            for s in self.sessions.values()
            if s.active < cutoff and not s.lock.locked() and s.damage is None  # kept
        ]
        gone = 0
        for s in old:
            try:
                async with s.lock:  # no op may slip in while the store deletes
                    if s.closed:
                        continue
                    await self.remove(s)
            except StoreFailed as exc:
                log.warning("session %s expired but stays: %s", redact.short(s.id), exc.message)
                continue
            log.info("session %s expired", redact.short(s.id))
            gone += 1
        return gone
