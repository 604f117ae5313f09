"""The timeline: every op of the log with its result or errno, and each owner callback
it caused as an arrow from the file to the owner, its range's end made explicit."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from app.engine import Callback, Event
from app.engine._kvm_names import ATTRIBUTES, EXITS
from app.pages.maps import span
from app.pages.rules import hazard

MAX_CALLBACKS = 8
MAX_TOUCHES = 6
BYTE_KEYS = ("offset", "len", "length", "size", "count")
PRIVATE_BIT = ATTRIBUTES["KVM_MEMORY_ATTRIBUTE_PRIVATE"]


@dataclass(slots=True)
class CallbackRow:
    fn: str
    owner: str
    owner_label: str
    notation: str  # "[1, 1]" or "[0, 4)"
    inclusive: bool
    pages: str  # "page 1" / "pages 0-3"
    npages: int


@dataclass(slots=True)
class KvmRow:
    """A KVM event of its own: a vCPU exit, a conversion (attributes), a zap, an arch hook."""

    kind: str  # "exit" | "conversion" | "zap" | "hook"
    source: str  # the arrow's start: "vCPU", the VM
    target: str  # its end: "VMM", the gfns
    what: str  # KVM_EXIT_MEMORY_FAULT, "private", "zap", the hook's name
    notation: str  # "[5, 6)": gfns, end exclusive
    words: str


@dataclass(slots=True)
class EventRow:
    seq: int
    op: str
    ok: bool
    errno: str | None
    errno_value: int | None
    result: str
    pending: bool
    hazard: str | None
    file: str | None
    callbacks: list[CallbackRow]
    more_callbacks: int
    touches: list[str]
    more_touches: int
    raw: str | None = None  # the raw value a hazard handed back, in words
    kvm: list[KvmRow] = field(default_factory=list)  # exits, conversions, zaps, hooks


@dataclass(slots=True)
class OpRow:
    n: int
    op: str
    args: str
    errno: str | None
    events: list[EventRow] = field(default_factory=list)
    future: bool = False  # a preview's later op: in the log, not in the state shown


# callbacks whose range is frames (pfns), not file pages: the arch hooks of a
# confidential VM's guest_memfd pages and the no_direct_map proposal's
PFN_CALLBACKS = (
    "snp_rmp_assign",
    "snp_rmp_reclaim",
    "tdx_sept_add",
    "tdx_sept_remove",
    "direct_map_remove",
    "direct_map_restore",
)


def callback_row(cb: Callback, owners: dict[int, str]) -> CallbackRow:
    last = cb.end if cb.end_inclusive else cb.end - 1
    notation = f"[{cb.start}, {cb.end}{']' if cb.end_inclusive else ')'}"
    n = max(0, last - cb.start + 1)
    one, many = ("pfn ", "pfns ") if cb.fn in PFN_CALLBACKS else ("page ", "pages ")
    pages = "no page" if n == 0 else (one if n == 1 else many) + span(cb.start, last + 1)
    label = owners.get(cb.owner_id, f"owner {cb.owner_id}")
    return CallbackRow(cb.fn, str(cb.owner_id), label, notation, cb.end_inclusive, pages, n)


def _touch(t: Any, owners: dict[int, str]) -> str:
    n = t.npages
    if t.what in ("map", "zap"):
        who = owners.get(t.owner, f"owner {t.owner}")
        verb = "maps" if t.what == "map" else "zaps"
        return f"{who} {verb} gfn {span(t.index, t.index + n)} → pfn {span(t.pfn, t.pfn + n)}"
    return f"{t.what} page {span(t.index, t.index + n)} (pfn {span(t.pfn, t.pfn + n)})"


HOOKS = ("prepare", "reclaim", "populate", "poison", "invalidate")  # arch hooks' touches


def _kvm_row(t: Any, owners: dict[int, str]) -> KvmRow | None:
    """A touch that is a KVM event of its own, else None (it stays in the touch list)."""
    n, who = t.npages, owners.get(t.owner, f"VM {t.owner}") if t.owner is not None else "VM"
    rng = f"[{t.index}, {t.index + n})"
    gfns = f"gfn {span(t.index, t.index + n)}"
    if t.what == "exit":
        reason = EXITS.get(t.pfn, f"exit {t.pfn}")
        return KvmRow("exit", "vCPU", "VMM", reason, rng, f"{gfns}: the guest's request")
    if t.what == "attributes":
        kind = "private" if t.pfn & PRIVATE_BIT else "shared"
        return KvmRow("conversion", "VMM", who, kind, rng, f"{gfns} now {kind} (zapped)")
    if t.what == "zap":
        return KvmRow("zap", who, gfns, "zap", rng, _touch(t, owners))
    if t.what in HOOKS:
        return KvmRow("hook", who, gfns, t.what, rng, f"arch hook {t.what}, {gfns}")
    return None


def _result(ev: Event) -> str:
    if not ev.ok:
        return f"{ev.errno} ({ev.errno_value})"
    if ev.op == "wake":
        woke = f"wakes #{ev.wakes_seq} {ev.wakes_op or ''}".rstrip()
        return f"{woke}, which sleeps again on a page lock" if ev.pending else woke
    if ev.pending:
        return "sleeps on a page lock"
    out = getattr(ev, "out", None) or {}
    if "pfn" in out:
        return f"pfn {out['pfn']}, order {out.get('order')}"
    if ev.op in ("memfd_create", "KVM_CREATE_GUEST_MEMFD"):
        return f"fd {ev.result}"
    if ev.op == "owner_create":
        return f"owner {ev.result}"
    if ev.op == "mmap":
        return f"map {ev.result}"
    return "ok" if ev.result in (0, None) else str(ev.result)


def raw_words(raw: int) -> str:
    """18446744073709551594 -> "18,446,744,073,709,551,594 = 2^64 - 22 (-22 as unsigned
    long)": an errno travelling back through an unsigned return value."""
    if raw >= 2**63:
        n = 2**64 - raw
        return f"{raw:,} = 2^64 - {n} (-{n} as an unsigned long)"
    return f"{raw:,}"


def event_row(ev: Event, owners: dict[int, str], files: dict[int, str]) -> EventRow:
    cbs = [callback_row(c, owners) for c in ev.callbacks[:MAX_CALLBACKS]]
    kvm: list[KvmRow] = []
    plain: list[Any] = []
    for t in ev.touches:
        row = _kvm_row(t, owners) if len(kvm) < MAX_TOUCHES else None
        if row is not None:
            kvm.append(row)
        elif len(plain) < MAX_TOUCHES:
            plain.append(t)
    touches = [_touch(t, owners) for t in plain]
    return EventRow(
        seq=ev.seq,
        op=ev.op,
        ok=ev.ok,
        errno=ev.errno,
        errno_value=ev.errno_value,
        result=_result(ev),
        pending=ev.pending,
        hazard=hazard(ev.hazard) if ev.hazard else None,
        file=None if ev.fd is None else files.get(ev.fd, f"fd {ev.fd}"),
        callbacks=cbs,
        # the event holds the first few thousand of each; n* are the totals
        more_callbacks=max(ev.ncallbacks, len(ev.callbacks)) - len(cbs),
        touches=touches,
        more_touches=max(ev.ntouches, len(ev.touches)) - len(touches) - len(kvm),
        raw=None if ev.raw is None else raw_words(ev.raw),
        kvm=kvm,
    )


def _value(key: str, value: Any) -> str:
    if isinstance(value, list):
        return "|".join(str(v) for v in value) or "0"
    if key == "data_b64" and isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return "?"
        text = data[:24].decode("utf-8", "replace")
        return repr(text) + ("…" if len(data) > 24 else "") + f" ({len(data)} bytes)"
    if key in BYTE_KEYS and isinstance(value, int) and value and value % 4096 == 0:
        pages = value // 4096
        return f"{value} ({pages} page{'s' if pages != 1 else ''})"
    if isinstance(value, str) and len(value) > 40:
        return repr(value[:40] + "…")
    return repr(value) if isinstance(value, str) else str(value)


IDS = ("fd", "owner_id", "vm_id", "map_id")  # first, and bare: owner ids are "0" in JSON


def args_text(args: dict[str, Any]) -> str:
    keys = [k for k in IDS if k in args] + [k for k in args if k not in IDS]
    return ", ".join(f"{k}={args[k] if k in IDS else _value(k, args[k])}" for k in keys[:8])


def op_rows(
    ops: list[Any],
    first: int,
    op_events: list[int],
    events: list[Event],
    owners: dict[int, str],
    files: dict[int, str],
) -> list[OpRow]:
    """Rows for ops[first-1:] (1-based op numbers), newest first; `events` covers them."""
    rows: list[OpRow] = []
    by_seq = {e.seq: e for e in events}
    for n in range(first, first + len(ops)):
        op = ops[n - first]
        row = OpRow(n, str(op.op.get("op")), args_text(op.op.get("args", {})), op.errno)
        lo = op_events[n - 2] if n >= 2 else 0
        for seq in range(lo + 1, op_events[n - 1] + 1):
            ev = by_seq.get(seq)
            if ev is not None:
                row.events.append(event_row(ev, owners, files))
        rows.append(row)
    rows.reverse()
    return rows


def future_rows(ops: list[Any], first: int, last: int) -> list[OpRow]:
    """Rows for ops first..last (1-based) of the log that a preview has not applied:
    their calls and how they ended, newest first (their events are the live state's)."""
    return [
        OpRow(n, str(ops[n - 1].op.get("op")), args_text(ops[n - 1].op.get("args", {})),
              ops[n - 1].errno, future=True)
        for n in range(last, first - 1, -1)
    ]  # fmt: skip
