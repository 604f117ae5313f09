"""Engine results -> API models (owner ids become strings, fds stay ints)."""

from __future__ import annotations

from typing import Any

from app.engine import Callback, Event, FileInfo, Machine, OwnerInfo
from app.engine import Memslot as SlotInfo
from app.errors import NotFound
from app.models.files import File
from app.models.guest import GfnRun, Memslot, Owner, OwnerDetail
from app.models.views import CallbackOut, EventOut, TouchOut

INT_MIN, INT_MAX = -(2**31), 2**31 - 1


def fd_arg(fd: int) -> int:
    """An fd the engine can take: one no kernel would hand out becomes -1 (EBADF)."""
    return fd if INT_MIN <= fd <= INT_MAX else -1


def owner_arg(m: Machine, owner_id: str, op: str) -> int:
    """The engine's number for an API owner id ("0", "1", ...) of an existing owner:
    an owner is a resource of the API, an unknown one is 404 (the engine would say
    EINVAL, as for a NULL owner)."""
    if owner_id.isascii() and owner_id.isdigit() and str(int(owner_id)) == owner_id:
        value = int(owner_id)
        if value <= INT_MAX and m.has_owner(value):
            return value
    raise NotFound(f"no owner {owner_id[:64]!r}", op=op)


def file_fields(info: FileInfo) -> dict[str, Any]:
    """A File's fields (for File and the answers that extend it)."""
    return {
        "fd": info.fd,
        "kind": info.kind,
        "name": info.name,
        "size": info.size,
        "seals": list(info.seals),
        "flags": list(info.flags),
        "owners": [str(o) for o in info.owners],
        "nr_pages": info.nr_pages,
        "mappings": info.mappings,
        "seals_value": info.seals_value,
        "writable_maps": info.writable_maps,
        "waiters": info.pending,
    }


def file_out(info: FileInfo) -> File:
    return File(**file_fields(info))


def owner_out(info: OwnerInfo) -> Owner:
    return Owner(owner_id=str(info.id), name=info.name, kind=info.kind)  # type: ignore[arg-type]


def owner_detail(m: Machine, info: OwnerInfo, start: int, max_runs: int) -> OwnerDetail:
    runs = m.gfn_runs(info.id, start, max_runs + 1)
    more = len(runs) > max_runs
    runs = runs[:max_runs]
    return OwnerDetail(
        owner_id=str(info.id),
        name=info.name,
        kind=info.kind,  # type: ignore[arg-type]
        memslots=[memslot_out(s, str(info.id)) for s in info.memslots],
        mapped=[GfnRun(gfn=r.gfn, npages=r.npages, pfn=r.pfn, order=r.order) for r in runs],
        next_gfn=runs[-1].gfn + runs[-1].npages if more and runs else None,
        nmapped=info.nmapped,
        nzapped=info.nzapped,
        ncallbacks=info.ncallbacks,
    )


def memslot_out(s: SlotInfo, owner_id: str) -> Memslot:
    return Memslot(
        slot=s.slot, owner_id=owner_id, fd=s.fd, gfn=s.gfn, index=s.index, npages=s.npages
    )


def callback_out(cb: Callback) -> CallbackOut:
    return CallbackOut(
        fn=cb.fn,
        owner_id=str(cb.owner_id),
        start=cb.start,
        end=cb.end,
        end_inclusive=cb.end_inclusive,
    )


def event_out(ev: Event, op_seq: int | None) -> EventOut:
    return EventOut(
        seq=ev.seq,
        op_seq=op_seq,
        op=ev.op,
        fd=ev.fd,
        args=dict(ev.args),
        ok=ev.ok,
        errno=ev.errno,
        errno_value=ev.errno_value,
        result=ev.result,
        pending=ev.pending,
        hazard=ev.hazard,
        raw=ev.raw,
        wakes_seq=ev.wakes_seq,
        callbacks=[callback_out(c) for c in ev.callbacks],
        touches=[
            TouchOut(
                what=t.what,
                fd=t.fd,
                owner_id=None if t.owner is None else str(t.owner),
                index=t.index,
                npages=t.npages,
                pfn=t.pfn,
            )
            for t in ev.touches
        ],
        callbacks_total=ev.ncallbacks,
        touches_total=ev.ntouches,
        callbacks_kept=ev.callbacks_kept,
    )
