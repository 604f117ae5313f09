"""Decoding the C event log into Event values (callers hold the lock)."""

from __future__ import annotations

from typing import Any

from app.engine._lib import ffi, lib
from app.engine._names import (
    CALLBACKS,
    HAZARDS,
    OP_ARGS,
    OP_ARGS_IF_SET,
    OPS,
    TOUCHES,
    errno_name,
)
from app.engine._types import Callback, Event, Touch

CHUNK = 256  # callbacks / touches fetched per C call
# callbacks and touches decoded per event unless asked otherwise: a punch of
# a million present pages makes a million callbacks, far more than a reader
# wants at once (page them with Machine.event_callbacks)
MAX_ITEMS = 4096
PFN_OPS = ("get_lock_pfn", "fault")  # ops whose event carries out = {pfn, order}


class EventReader:
    """Reads events of one machine through preallocated C buffers."""

    def __init__(self) -> None:
        self._ev = ffi.new("struct ss_event *")
        self._cbs = ffi.new("struct ss_callback[]", CHUNK)
        self._touches = ffi.new("struct ss_touch[]", CHUNK)

    def slept(self, m: Any, seq: int) -> bool:
        """Whether the event went to sleep (the engine flags it on the event)."""
        e = self.raw(m, seq)
        return bool(e is not None and e.pending)

    def callbacks(self, m: Any, seq: int, n: int, first: int = 0) -> list[Callback]:
        out: list[Callback] = []
        while len(out) < n:
            want = min(CHUNK, n - len(out))
            got = lib.ss_event_callbacks(m, seq, first + len(out), self._cbs, want)
            if got <= 0:
                break
            for c in self._cbs[0:got]:
                fn = CALLBACKS.get(c.fn, f"cb{c.fn}")
                out.append(
                    Callback(
                        fn, c.owner, c.start, c.end, end_inclusive=fn == "invalidate_page_range"
                    )
                )
        return out

    def touches(self, m: Any, seq: int, n: int, first: int = 0) -> list[Touch]:
        out: list[Touch] = []
        while len(out) < n:
            want = min(CHUNK, n - len(out))
            got = lib.ss_event_touches(m, seq, first + len(out), self._touches, want)
            if got <= 0:
                break
            for t in self._touches[0:got]:
                out.append(
                    Touch(
                        TOUCHES.get(t.what, f"t{t.what}"),
                        t.fd if t.fd >= 0 else None,
                        t.owner if t.owner >= 0 else None,
                        t.index,
                        t.npages,
                        t.pfn,
                    )
                )
        return out

    def raw(self, m: Any, seq: int) -> Any | None:
        """The C struct of one event (valid until the next call), or None."""
        if lib.ss_event_get(m, seq, self._ev) < 0:
            return None
        return self._ev

    def event(self, m: Any, seq: int, max_items: int = MAX_ITEMS) -> Event | None:
        e = self.raw(m, seq)
        if e is None:
            return None
        op = OPS.get(e.op, f"op{e.op}")
        names = OP_ARGS.get(op, ())
        args = {name: int(e.args[i]) for i, name in enumerate(names)}
        for i, name in enumerate(OP_ARGS_IF_SET.get(op, ()), len(names)):
            if e.args[i]:
                args[name] = int(e.args[i])
        result = int(e.result)
        pending = bool(e.pending)
        ok = result >= 0
        hazard = HAZARDS.get(e.hazard, f"hazard{e.hazard}")
        ncb, nt = e.ncallbacks, e.ntouches
        kcb, kt = e.callbacks_kept, e.touches_kept
        wakes_op = OPS.get(e.wakes_op) if op == "wake" and e.wakes_seq else None
        gives_pfn = op in PFN_OPS or wakes_op in PFN_OPS
        out: dict[str, int] = {}
        if gives_pfn and ok and not pending:
            out = {"pfn": int(e.out[0]), "order": int(e.out[1])}
        return Event(
            seq=int(e.seq),
            op=op,
            fd=e.fd if e.fd >= 0 else None,
            args=args,
            ok=ok,
            errno=None if ok else errno_name(-result),
            errno_value=None if ok else -result,
            result=result if ok and not pending else None,
            pending=pending,
            hazard=hazard,
            raw=int(e.raw) if e.hazard or (gives_pfn and ok and not pending) else None,
            wakes_seq=int(e.wakes_seq) if e.wakes_seq else None,
            callbacks=self.callbacks(m, seq, min(kcb, max_items)) if kcb else [],
            touches=self.touches(m, seq, min(kt, max_items)) if kt else [],
            out=out,
            wakes_op=wakes_op,
            ncallbacks=int(ncb),
            ntouches=int(nt),
            callbacks_kept=int(kcb),
            touches_kept=int(kt),
        )

    def find(self, m: Any, after: int, op: str) -> int | None:
        """The seq of the first event after `after` with this op, if any."""
        count = lib.ss_event_count(m)
        for seq in range(after + 1, count + 1):
            e = self.raw(m, seq)
            if e is not None and OPS.get(e.op) == op:
                return seq
        return None
