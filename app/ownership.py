"""Sessions owned by one worker at a time, on the PostgreSQL store (docs/deploy.md).

The balancer sends each session's requests to one worker (it hashes the sid in the
path). A request for a session this worker does not hold claims it first: take its
advisory lock (app/store_pg.py), load its log and replay it. When another worker holds
the lock, it is asked (NOTIFY) to let the session go, which it does between two ops;
the claim waits up to CLAIM_WAIT seconds, then answers 503 EAGAIN. A worker that dies
holds nothing (its connection, and so its locks, are gone): its sessions are claimed by
the workers the balancer now sends them to, from the log, with every committed op.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from app import redact
from app.registry import Registry
from app.settings import Settings
from app.store import Store

if TYPE_CHECKING:
    from app.store_pg import PgStore

log = logging.getLogger("sealscope.ownership")
CLAIM_WAIT = 5.0  # seconds a request waits for another worker to let its session go
ASK_EVERY = 0.5  # seconds between two hand-off requests of one claim
# the sid in a path: the API's /api/v1/sessions/{sid}/... and the pages' /s/{sid}/...
SID_PATH = re.compile(r"^/(?:api/v1/sessions|s)/([A-Za-z0-9_-]{8,64})(?:/|$)")


def make_store(settings: Settings) -> Store:
    """SEALSCOPE_STORE: "sqlite" (the default: one file in SEALSCOPE_DATA) or a
    postgresql:// URL (the cluster's shared op log; psycopg is imported only then)."""
    url = settings.store
    if url.startswith(("postgresql://", "postgres://")):
        from app.store_pg import PgStore

        return PgStore(url, settings.sync)  # type: ignore[return-value]  # the same interface
    if url != "sqlite":
        raise RuntimeError(f"SEALSCOPE_STORE={url!r}: expected 'sqlite' or a postgresql:// URL")
    return Store(settings.data / "sealscope.db", settings.sync)


def claim_sessions(reg: Registry) -> Ownership | None:
    """The ownership of a cluster's worker (None on SQLite: one process owns all)."""
    if reg.settings.store == "sqlite":
        return None
    from app.store_pg import PgStore

    return Ownership(reg, reg.store) if isinstance(reg.store, PgStore) else None


class Ownership:
    def __init__(self, reg: Registry, store: PgStore) -> None:
        self.reg = reg
        self.store = store
        self.claims: dict[str, asyncio.Task[None]] = {}
        store.on_handoff = self.handoff

    async def ensure(self, sid: str) -> None:
        """This worker holds session sid when it exists (loaded from the log if need be)."""
        reg = self.reg
        s = reg.sessions.get(sid)
        if s is not None and self.store.holds(sid):
            return
        if s is not None:  # the lock went with a lost connection: the log decides again
            self._forget(sid)
        claim = self.claims.get(sid)
        if claim is None:
            claim = asyncio.create_task(self._claim(sid))
            self.claims[sid] = claim
            claim.add_done_callback(lambda _: self.claims.pop(sid, None))
        await asyncio.shield(claim)

    async def _claim(self, sid: str) -> None:
        start = time.monotonic()
        asked = 0.0
        while not await self.store.lock(sid):
            now = time.monotonic()
            if now - start > CLAIM_WAIT:
                raise Busy(f"session {sid[:12]}... is held by another worker that keeps it")
            if now - asked >= ASK_EVERY:
                await self.store.ask_handoff(sid)
                asked = now
            await asyncio.sleep(0.01)
        try:
            stored = await anyio.to_thread.run_sync(self.store.load_one, sid)
            if stored is not None and time.time() - stored.active > self.reg.settings.session_ttl:
                await self.store.delete(sid)  # expired while no worker held it
                log.info("session %s expired", redact.short(sid))
                return
            session = None
            if stored is not None:
                session = await anyio.to_thread.run_sync(self.reg._rebuild, stored)
        except Exception:
            await self.store.unlock(sid)
            raise
        if session is None:  # no such session: the route answers 404
            await self.store.unlock(sid)
            return
        self.reg.sessions[sid] = session
        log.info("session %s: claimed (%d ops replayed)", redact.short(sid), session.seq)

    def handoff(self, sid: str) -> None:
        """Another worker asks for sid (the store's listener, on the event loop)."""
        if sid not in self.claims and not self.reg.closing:
            self.reg.spawn(self._release(sid))

    async def _release(self, sid: str) -> None:
        s = self.reg.sessions.get(sid)
        if s is not None:
            async with s.lock:  # between two ops
                if self.reg.sessions.get(sid) is not s:
                    return
                self._forget(sid)
        if sid not in self.claims:
            await self.store.unlock(sid)
            log.info("session %s: handed off", redact.short(sid))

    def _forget(self, sid: str) -> None:
        s = self.reg.sessions.pop(sid, None)
        if s is not None:
            s.closed = True
            self.reg.streams.forget(sid)
            s.drop_snapshots()
            s.notify()  # its event streams end: the client reconnects to the new owner


class Busy(Exception):
    pass


class ClaimSessions:
    """ASGI middleware: claim the session a request names before the route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            m = SID_PATH.match(scope["path"])
            owner: Ownership | None = getattr(scope["app"].state, "ownership", None)
            if m is not None and owner is not None:
                try:
                    await owner.ensure(m.group(1))
                except Exception as exc:
                    await _unavailable(send, exc)
                    return
        await self.app(scope, receive, send)


async def _unavailable(send: Send, exc: Exception) -> None:
    busy = isinstance(exc, Busy)
    body: dict[str, Any] = {
        "errno": "EAGAIN" if busy else "EIO",
        "errno_value": 11 if busy else 5,
        "op": "session",
        "limit": None,
        "message": f"the session could not be taken over by this worker: {exc}"[:500],
    }
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
