"""Reading a machine's log and health: events, their callbacks and touches, sleepers,
the invariant checker, memory (a mixin of Views; each method takes the machine's lock)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.engine._errors import InvariantError
from app.engine._events import MAX_ITEMS, EventReader
from app.engine._guard import FaceLock
from app.engine._lib import ffi, lib
from app.engine._names import OPS
from app.engine._types import Callback, Event, Touch, Waiter

_event_count = lib.ss_face_event_count  # takes the mutex in C (engine_c/face.c)


class LogViews:
    _m: Any
    _f: Any  # the machine's mutex (struct ss_face)
    _lock: FaceLock
    _reader: EventReader

    def waiters(self) -> list[Waiter]:
        with self._lock:
            buf, n = read_all(
                "struct ss_waiter_info", lambda b, size: lib.ss_waiters(self._m, b, size)
            )
            return [
                Waiter(w.seq, OPS.get(w.op, str(w.op)), w.fd if w.fd >= 0 else None, w.pfn)
                for w in buf[0:n]
            ]

    # ---- events, checks ----
    @property
    def event_count(self) -> int:
        # read on every op (a batch reads it twice an op): one C call that takes the
        # mutex, reads the engine's counter and drops it
        return _event_count(self._f)

    def events(
        self, after: int = 0, limit: int | None = None, max_items: int = MAX_ITEMS
    ) -> list[Event]:
        """Events with seq > after, oldest first, at most limit; each with at most
        max_items callbacks and touches (Event.ncallbacks / ntouches count all)."""
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be an int >= 0, got {after!r}")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be an int >= 0, got {limit!r}")
        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0:
            raise ValueError(f"max_items must be an int >= 0, got {max_items!r}")
        with self._lock:
            last = int(lib.ss_event_count(self._m))
            if limit is not None:
                last = min(last, after + limit)
            r, m = self._reader, self._m
            out = [r.event(m, s, max_items) for s in range(after + 1, last + 1)]
        return [e for e in out if e is not None]

    def event_callbacks(self, seq: int, first: int = 0, count: int = MAX_ITEMS) -> list[Callback]:
        """Callbacks [first, first + count) of event seq (none past the kept ones)."""
        return self._event_items(seq, first, count, "callbacks_kept", self._reader.callbacks)

    def event_touches(self, seq: int, first: int = 0, count: int = MAX_ITEMS) -> list[Touch]:
        """Touches [first, first + count) of event seq (none past the kept ones)."""
        return self._event_items(seq, first, count, "touches_kept", self._reader.touches)

    def _event_items(
        self, seq: int, first: int, count: int, total: str, read: Callable[..., list[Any]]
    ) -> list[Any]:
        seq, first, count = _page_args(seq, first, count)
        with self._lock:
            e = self._reader.raw(self._m, seq)
            if e is None:
                raise LookupError(f"no event {seq}")
            n = max(0, min(count, int(getattr(e, total)) - first))
            return read(self._m, seq, n, first) if n else []

    def check(self) -> None:
        """Raise InvariantError when the engine's state is inconsistent."""
        msg = ffi.new("char[]", 1024)
        with self._lock:
            rc = lib.ss_check(self._m, msg, 1024)
        if rc != 0:
            raise InvariantError(ffi.string(msg).decode("utf-8", "replace") or f"ss_check: {rc}")

    def memory_bytes(self) -> int:
        with self._lock:
            return int(lib.ss_memory_bytes(self._m))

    def memory_owned(self, beside: LogViews | None = None) -> int:
        """The part of memory_bytes this machine holds beside machine `beside`: what
        the two share (frame chunks, tree nodes, log segments of a clone and its
        original) counts nothing, what it shares with others counts by its share.
        A snapshot's cost beside the live machine."""
        if beside is None:
            with self._lock:
                return int(lib.ss_memory_owned(self._m, ffi.NULL))
        with beside._lock, self._lock:  # the only place two machines' locks nest
            return int(lib.ss_memory_owned(self._m, beside._m))


def _page_args(seq: int, first: int, count: int) -> tuple[int, int, int]:
    for name, v in (("seq", seq), ("first", first), ("count", count)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} must be an int >= 0, got {v!r}")
    return seq, min(first, 1 << 32), count


def read_all(ctype: str, fill: Callable[[Any, int], int]) -> tuple[Any, int]:
    """Call fill(buffer, size) with a growing C array until everything fits."""
    size = 64
    while True:
        buf = ffi.new(f"{ctype}[]", size)
        n = int(fill(buf, size))
        if n < size:
            return buf, max(n, 0)
        size *= 4
