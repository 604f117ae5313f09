"""Pure ASGI middleware: the request log, the per-client rate limit, the body limit."""

from __future__ import annotations

import json
import logging
import time
from json.encoder import encode_basestring_ascii
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import redact
from app.settings import Settings

access = logging.getLogger("sealscope.access")
SESSIONS = "/api/v1/sessions/"


async def _error(send: Send, status: int, limit: str, message: str, errno: str) -> None:
    values = {"E2BIG": 7, "EAGAIN": 11}
    body = json.dumps(
        {
            "errno": errno,
            "errno_value": values[errno],
            "op": None,
            "message": message,
            "limit": limit,
        }
    ).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 429:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AccessLog:
    """One JSON line per request: method, path, status, ms, session (the id's first 8)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 0

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            if access.isEnabledFor(logging.INFO):
                access.info(_line(scope, status, time.perf_counter() - t0))


def _line(scope: Scope, status: int, seconds: float) -> str:
    """The request's log line, a JSON object (built by hand: json.dumps of a dict cost a
    quarter of the request log)."""
    state: dict[str, Any] = scope.get("state") or {}
    path: str = scope.get("path", "")
    session = state.get("session")
    for prefix in (SESSIONS, "/s/"):
        if session is None and path.startswith(prefix):
            session = path[len(prefix) :].split("/", 1)[0][:8] or None
    # the session: the id's first 8 characters (the id is a secret), in the path too
    path = redact.path(path)
    return (
        f'{{"method": {_str(scope.get("method"))}, "path": {_str(path)}, '
        f'"status": {status or 500}, "ms": {round(seconds * 1000, 3)!r}, '
        f'"session": {_str(session)}}}'
    )


def _str(value: object) -> str:
    return "null" if value is None else encode_basestring_ascii(str(value))


class RateLimit:
    """A token bucket per client address: `rate` requests/s, bursts of `burst`."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.rate = settings.rate
        self.burst = float(max(1, settings.burst))
        self.buckets: dict[str, tuple[float, float]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = client[0] if client else "-"
        now = time.monotonic()
        tokens, then = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            await _error(
                send,
                429,
                "rate",
                f"more than the limit rate={self.rate:g} requests/s (burst {self.burst:g}) "
                "from this address",
                "EAGAIN",
            )
            return
        self.buckets[key] = (tokens - 1.0, now)
        if len(self.buckets) > 10000:  # forget full buckets
            full = [
                k for k, (t, s) in self.buckets.items() if t + (now - s) * self.rate >= self.burst
            ]
            for k in full:
                del self.buckets[k]
        await self.app(scope, receive, send)


class BodyLimit:
    """Refuse bodies over `max_body_bytes`: by Content-Length, or, for a chunked body,
    as it streams in."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        msg = f"the request body is past the limit max_body_bytes={self.limit}"
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    break  # count what comes
                if length > self.limit:
                    await _error(send, 413, "max_body_bytes", msg, "E2BIG")
                    return
                # the server holds the body to its Content-Length: nothing to count
                await self.app(scope, receive, send)
                return
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _error(send, 413, "max_body_bytes", msg, "E2BIG")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
