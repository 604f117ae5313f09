"""Read-only views: page runs of a file, frame runs of the machine, the event log."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from app.models.common import examples


class PageExtent(BaseModel):
    """Pages [start, end) that look alike; pfns are consecutive from `pfn`."""

    start: int
    end: int
    state: str = Field(description='"hole" | "present"')
    pfn: int | None
    order: int | None
    locked: bool
    refcount: int
    dirty: bool
    mapped_by: list[str] = Field(description="owner ids whose page tables map these pages")
    waiters: int = 0
    life: str | None = Field(
        default=None,
        description='a guest_memfd page: "allocated" | "zeroed" | "prepared" (the arch hook '
        "ran: SNP RMP assigned, TDX in the S-EPT); null for other files and holes (absent)",
    )
    model_config = examples(
        {
            "start": 0,
            "end": 512,
            "state": "present",
            "pfn": 1024,
            "order": 9,
            "locked": False,
            "refcount": 1,
            "dirty": True,
            "mapped_by": ["0"],
            "waiters": 0,
        }
    )


class Pages(BaseModel):
    extents: list[PageExtent]
    next: int | None = Field(None, description="more runs from this index on (?start=)")
    model_config = examples(
        {
            "extents": [
                {
                    "start": 0,
                    "end": 16,
                    "state": "hole",
                    "pfn": None,
                    "order": None,
                    "locked": False,
                    "refcount": 0,
                    "dirty": False,
                    "mapped_by": [],
                    "waiters": 0,
                }
            ],
            "next": None,
        }
    )


class FrameExtent(BaseModel):
    """Frames [start, end): "free", "cache" (in fd's page cache at index), "orphan",
    "hwpoison" (a failed frame removed from its file: off the free lists for good), or
    "cow" (mapping map_id's MAP_PRIVATE copy of fd's page at index)."""

    start: int
    end: int
    state: str
    fd: int | None
    index: int | None
    order: int
    no_direct_map: bool = Field(
        default=False,
        description="proposal, not merged (variant no_direct_map, v7 2025): out of the "
        "kernel's direct map",
    )
    model_config = examples(
        {"start": 0, "end": 512, "state": "cache", "fd": 3, "index": 0, "order": 9}
    )


class CowFrameExtent(FrameExtent):
    """A "cow" extent: frames holding a MAP_PRIVATE mapping's copies (engine_c/cow.c) of
    fd's pages from index; only these extents carry map_id."""

    map_id: int = Field(description="the mapping whose copies they are")
    model_config = examples(
        {"start": 1024, "end": 1025, "state": "cow", "fd": 3, "index": 1, "order": 0, "map_id": 1}
    )


class Phys(BaseModel):
    total: int
    free: int
    used: int
    free_by_order: dict[str, int] = Field(description="free blocks per buddy order")
    extents: list[CowFrameExtent | FrameExtent]
    next: int | None = Field(None, description="more runs from this frame on (?start=)")
    model_config = examples(
        {
            "total": 262144,
            "free": 261632,
            "used": 512,
            "free_by_order": {"9": 1, "10": 255},
            "extents": [
                {"start": 0, "end": 512, "state": "cache", "fd": 3, "index": 0, "order": 9}
            ],
            "next": None,
        }
    )


class CallbackOut(BaseModel):
    """An owner callback: invalidate_page_range (end inclusive), fallocate (end exclusive)."""

    fn: str
    owner_id: str
    start: int
    end: int
    end_inclusive: bool
    model_config = examples(
        {
            "fn": "invalidate_page_range",
            "owner_id": "0",
            "start": 0,
            "end": 0,
            "end_inclusive": True,
        }
    )


class Callbacks(BaseModel):
    callbacks: list[CallbackOut] = Field(
        description="the first 4096 callbacks (page the rest with …/events/{seq}/callbacks)"
    )
    seq: int | None = Field(None, description="engine event seq of the call")
    callbacks_total: int = Field(0, description="callbacks the call made in all")
    callbacks_kept: int = Field(
        0,
        description="how many of them the event log keeps, to page with …/events/{seq}/"
        "callbacks?first= (all but for a call meeting more than 4096 runs of pages)",
    )
    model_config = examples(
        {
            "callbacks": [
                {
                    "fn": "invalidate_page_range",
                    "owner_id": "0",
                    "start": 0,
                    "end": 0,
                    "end_inclusive": True,
                }
            ],
            "seq": 4,
            "callbacks_total": 1,
            "callbacks_kept": 1,
        }
    )


class TouchOut(BaseModel):
    """What an event did to pages and frames."""

    what: str
    fd: int | None
    owner_id: str | None
    index: int
    npages: int
    pfn: int
    model_config = examples(
        {"what": "alloc", "fd": 3, "owner_id": None, "index": 0, "npages": 1, "pfn": 1024}
    )


class EventOut(BaseModel):
    """One engine event. `seq` counts engine events (one or more per operation: a
    put_unlock_pfn that wakes a punch adds a "wake" event); `op_seq` is the operation
    of the session's log (see the session's `seq`) that produced it."""

    seq: int
    op_seq: int | None
    op: str
    fd: int | None
    args: dict[str, Any]
    ok: bool
    errno: str | None
    errno_value: int | None
    result: int | None
    pending: bool
    hazard: str | None
    raw: int | None
    wakes_seq: int | None
    callbacks: list[CallbackOut]
    touches: list[TouchOut]
    callbacks_total: int = Field(
        0,
        description="callbacks the event made in all; `callbacks` holds the first "
        "4096 (page the rest with …/events/{seq}/callbacks)",
    )
    touches_total: int = Field(0, description="touches in all; `touches` holds the first 4096")
    callbacks_kept: int = Field(
        0,
        description="callbacks the log keeps to page (a prefix of callbacks_total: an event "
        "keeps 4096 runs of them, a run being one per page over contiguous pages)",
    )
    model_config = examples(
        {
            "seq": 3,
            "op_seq": 3,
            "op": "fallocate",
            "fd": 3,
            "args": {"mode": 3, "offset": 0, "len": 4096},
            "ok": True,
            "errno": None,
            "errno_value": None,
            "result": 0,
            "pending": False,
            "hazard": None,
            "raw": None,
            "wakes_seq": None,
            "callbacks": [],
            "touches": [],
            "callbacks_total": 0,
            "touches_total": 0,
            "callbacks_kept": 0,
        }
    )


class EventCallbacks(BaseModel):
    """A page of one event's callbacks: [first, first + len(callbacks)) of total."""

    seq: int
    total: int
    first: int
    callbacks: list[CallbackOut]
    kept: int = Field(0, description="callbacks the log keeps: none is answered past these")
    model_config = examples(
        {
            "seq": 7,
            "total": 1,
            "first": 0,
            "callbacks": [
                {
                    "fn": "invalidate_page_range",
                    "owner_id": "0",
                    "start": 3,
                    "end": 3,
                    "end_inclusive": True,
                }
            ],
            "kept": 1,
        }
    )


class Events(BaseModel):
    events: list[EventOut]
    last_seq: int = Field(description="the newest engine event seq of the session")
    model_config = examples({"events": [], "last_seq": 0})
