"""The service's middleware, one pure ASGI layer (Front): the request log, the cross-site
refusal, the per-client rate limit, the body limit and the last resort, in that order.

They were five middlewares, each an await layer and two of them a send wrapper of their
own: in one, a request pays one layer, one pass over its headers and one wrapper.
"""

from __future__ import annotations

import json
import logging
import time
from json.encoder import encode_basestring_ascii
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import redact
from app.crosssite import SAFE, cross_site_refusal, refusal_of
from app.lastresort import last_resort
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


def log_line(line: str) -> None:
    """access.info(line), in one call where that is all it comes to: when the one handler
    the record would reach takes plain lines (app/cli.py's BatchedStderr: its format the
    bare message, its filters passing INFO) and no logger on the way filters, the line
    goes to it straight, without a LogRecord and the handler's machinery (~5 us of the
    ~9 a request's line cost, BENCHMARKS.md). Otherwise (a test's caplog, logging set up
    another way) through logging."""
    sink: logging.Handler | None = None
    logger: logging.Logger | None = access
    while logger is not None:
        if logger.filters:
            sink = None
            break
        for handler in logger.handlers:
            if sink is not None or not getattr(handler, "takes_lines", False):
                access.info(line)
                return
            sink = handler
        if not logger.propagate:
            break
        logger = logger.parent
    if sink is None or sink.level > logging.INFO:
        access.info(line)
        return
    sink.take_line(line)  # type: ignore[attr-defined]


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


class Front:
    """Every request, outermost to innermost: timed for the request log (one JSON line:
    method, path, status, ms, session); a state-changing request a browser says is
    cross-site refused (403 EPERM, app/crosssite.py); a token bucket per client address
    (`rate` requests/s, bursts of `burst`: 429 EAGAIN); bodies over `max_body_bytes`
    refused (413 E2BIG) by Content-Length or, chunked, as they stream in; then the app,
    an exception no handler took answering 409 EIO (app/lastresort.py)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.log = settings.log_requests
        self.rate = settings.rate
        self.burst = float(max(1, settings.burst))
        self.buckets: dict[str, tuple[float, float]] = {}
        self.limit = settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._admit(scope, receive, watch)
        except Exception as exc:
            if status:
                raise  # half an answer is out: nothing better than to drop it
            await last_resort(scope, exc)(scope, receive, watch)
        finally:
            if self.log and access.isEnabledFor(logging.INFO):
                log_line(_line(scope, status, time.perf_counter() - t0))

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        length: bytes | None = None
        if method in SAFE:
            for name, value in scope.get("headers", ()):
                if name == b"content-length":
                    length = value
                    break
        else:
            site = origin = host = None
            for name, value in scope.get("headers", ()):
                if name == b"content-length":
                    if length is None:
                        length = value
                elif name == b"sec-fetch-site":
                    site = value
                elif name == b"origin":
                    origin = value
                elif name == b"host":
                    host = value
            why = refusal_of(site, origin, host)
            if why is not None:
                await cross_site_refusal(send, method, why)
                return
        if self.rate > 0 and not self._take(scope):
            await _error(
                send,
                429,
                "rate",
                f"more than the limit rate={self.rate:g} requests/s (burst {self.burst:g}) "
                "from this address",
                "EAGAIN",
            )
            return
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = None  # count what comes
            if size is not None:
                if size > self.limit:
                    await _error(send, 413, "max_body_bytes", self._too_big(), "E2BIG")
                    return
                # the server holds the body to its Content-Length: nothing to count
                await self.app(scope, receive, send)
                return
        if method in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send)

    def _too_big(self) -> str:
        return f"the request body is past the limit max_body_bytes={self.limit}"

    def _take(self, scope: Scope) -> bool:
        """A token from the client's bucket, or False when it is empty."""
        client = scope.get("client")
        key = client[0] if client else "-"
        now = time.monotonic()
        tokens, then = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            return False
        self.buckets[key] = (tokens - 1.0, now)
        if len(self.buckets) > 10000:  # forget full buckets
            full = [
                k for k, (t, s) in self.buckets.items() if t + (now - s) * self.rate >= self.burst
            ]
            for k in full:
                del self.buckets[k]
        return True

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body without a (usable) Content-Length, counted as it streams in."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _error(send, 413, "max_body_bytes", self._too_big(), "E2BIG")
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
