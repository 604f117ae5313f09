"""Serving over uvicorn against slow and crowding clients.

uvicorn keeps a connection for as long as its client trickles bytes: a request head one
byte every few seconds never completes and never times out, and enough of them use up
the file descriptors (then asyncio logs every failed accept). Here each connection of
the h11 protocol gets a deadline for its request head (settings.head_timeout, from the
connection or from the previous answer) and for its body (settings.body_timeout); past
it the connection is closed. At most settings.max_connections are open (and fewer than
the process may have descriptors): one more evicts the connection that has waited
longest for its head (a fresh client's head comes in milliseconds, a trickler's never),
or is refused with a 503 when every connection is busy with a request.

What the guard closes is logged as one summary line per LOG_EVERY seconds at most, and
warnings of the server itself are rate limited (RateLimitedWarnings), so no client can
flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from app.settings import Settings

log = logging.getLogger("sealscope.serving")
FD_RESERVE = 1100  # descriptors kept for the store, the kernel comparison's memfds, logs
MIN_CONNECTIONS = 64
LOG_EVERY = 10.0  # seconds between two summary lines of the guard
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"


def raise_nofile() -> tuple[int, int]:
    """Raise the soft limit of open files to the hard one; (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft, hard


def connection_cap(settings: Settings, nofile: int) -> int:
    """max_connections, lowered to what the descriptors allow."""
    return max(MIN_CONNECTIONS, min(settings.max_connections, nofile - FD_RESERVE))


class Guard:
    """The state one server's connections share: those waiting for a head (oldest
    first), and what was closed since the last summary line."""

    def __init__(self, settings: Settings, cap: int) -> None:
        self.cap = cap
        self.head_timeout = settings.head_timeout
        self.body_timeout = settings.body_timeout
        self.waiting: dict[GuardedH11, None] = {}  # insertion order: oldest first
        self.counts = {"head": 0, "body": 0, "evicted": 0, "refused": 0}
        self.summary_due = False

    def note(self, what: str, loop: asyncio.AbstractEventLoop) -> None:
        self.counts[what] += 1
        if not self.summary_due:
            self.summary_due = True
            loop.call_later(LOG_EVERY, self.summary)

    def summary(self) -> None:
        self.summary_due = False
        c, self.counts = self.counts, dict.fromkeys(self.counts, 0)
        log.warning(
            "slow or crowding clients in the last %.0f s: closed %d whose request head took "
            "longer than head_timeout=%gs, %d whose body took longer than body_timeout=%gs; "
            "evicted %d and refused %d at max_connections=%d",
            LOG_EVERY,
            c["head"],
            self.head_timeout,
            c["body"],
            self.body_timeout,
            c["evicted"],
            c["refused"],
            self.cap,
        )

    def make_room(self, newcomer: GuardedH11) -> bool:
        """Evict the connection waiting longest for its head; False when none is."""
        for conn in self.waiting:
            if conn is not newcomer:
                conn.drop("evicted")
                return True
        return False


class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with deadlines for the head and the body, and the cap."""

    guard: Guard  # set on the subclass protocol_class() makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The phase's deadline (loop time) and kind; None: no deadline. One timer stands
        # for it, moved lazily: a keep-alive connection re-arms the head deadline every
        # request, and a TimerHandle made and cancelled each time cost ~2 us a request
        # (bench/api.py); when the timer fires before the deadline it waits the rest.
        self._deadline: float | None = None
        self._kind = ""
        self._timer: asyncio.TimerHandle | None = None
        self._seen: object = None  # the request cycle the deadline was set for
        self._got_bytes = False

    # -- the phases ---------------------------------------------------------------------
    def _arm(self, seconds: float, kind: str) -> None:
        due = self.loop.time() + seconds
        self._deadline, self._kind = due, kind
        if self._timer is not None and self._timer.when() > due:  # it would fire late
            self._timer.cancel()
            self._timer = None
        if self._timer is None:
            self._timer = self.loop.call_at(due, self._check)

    def _disarm(self) -> None:
        self._deadline = None  # the timer, if any, finds nothing due

    def _check(self) -> None:
        self._timer = None
        due = self._deadline
        if due is None:
            return
        if self.loop.time() < due:  # moved since the timer was set: wait the rest
            self._timer = self.loop.call_at(due, self._check)
            return
        self._expire(self._kind)

    def _await_head(self) -> None:
        self.guard.waiting[self] = None
        self._got_bytes = False
        self._arm(self.guard.head_timeout, "head")

    def _follow(self) -> None:
        """After h11 events: a new request head ends the head phase; its body has a
        deadline of its own until it is all in."""
        cycle = self.cycle
        if cycle is None or self.transport.is_closing():
            return
        if cycle is not self._seen:
            self._seen = cycle
            self.guard.waiting.pop(self, None)
            if cycle.more_body:
                self._arm(self.guard.body_timeout, "body")
            else:
                self._disarm()
        elif not cycle.more_body and self._deadline is not None:
            self._disarm()

    def _expire(self, kind: str) -> None:
        self._deadline = None
        if kind == "head" and self._got_bytes and not self.transport.is_closing():
            self.transport.write(TIMED_OUT)
        self.drop(kind)

    def drop(self, why: str) -> None:
        self.guard.waiting.pop(self, None)
        self._disarm()
        if not self.transport.is_closing():
            self.guard.note(why, self.loop)
            self.transport.close()

    # -- asyncio.Protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.guard.cap and not self.guard.make_room(self):
            body = (
                b'{"errno": "EAGAIN", "errno_value": 11, "op": null, "limit": '
                b'"max_connections", "message": "the service holds the limit '
                b'max_connections=%d connections"}' % self.guard.cap
            )
            transport.write(REFUSED % (len(body), body))
            self.guard.note("refused", self.loop)
            transport.close()
            return
        self._await_head()

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.transport.is_closing():
            return
        if self.cycle is cycle:  # no pipelined request started: wait for the next head
            self._await_head()
        else:
            self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.waiting.pop(self, None)
        self._disarm()
        if self._timer is not None:  # nothing of the connection stays on the loop
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)


def protocol_class(settings: Settings, cap: int) -> type[GuardedH11]:
    """A GuardedH11 subclass with its own Guard (one per server, not global)."""
    return type("Guarded", (GuardedH11,), {"guard": Guard(settings, cap)})


class RateLimitedWarnings(logging.Filter):
    """At most `burst` warnings (and worse) of one kind (logger, message template) per
    `period` seconds; then a single line saying how many were left out. Info lines
    (the request log) pass."""

    passes_info = True  # every record below WARNING passes (BatchedStderr.takes_lines)

    def __init__(self, burst: int = 20, period: float = 10.0) -> None:
        super().__init__()
        self.burst, self.period = burst, period
        self.seen: dict[tuple[str, str], list[float]] = {}  # kind -> [window start, count]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg)[:200])
        now = time.monotonic()
        window = self.seen.get(key)
        if window is None or now - window[0] >= self.period:
            dropped = int(window[1]) - self.burst if window is not None else 0
            if len(self.seen) > 1000:
                self.seen.clear()
            self.seen[key] = [now, 1.0]
            if dropped > 0:
                record.msg = f"{record.msg} [{dropped} like it left out in {self.period:g} s]"
            return True
        window[1] += 1
        return window[1] <= self.burst
