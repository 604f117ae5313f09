"""The engine's results: immutable records with the kernel's spellings.

The ones made in bulk or on every request (file info, page and frame runs, gfn runs,
events, callbacks, touches) are NamedTuples: a frozen dataclass costs ~1.7 us to build
against ~0.35 us, which was half the cost of reading a view of many runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

_PHYS_MIN, _PHYS_MAX, _PHYS_STEP = 1024, 1 << 26, 1024
_PROFILES = ("rfc-v2", "guest-memfd")
_THP = ("never", "always", "within_size")
_VARIANTS = (
    "multi_owner",
    "mmap_shared",
    "inplace_conversion",
    "no_direct_map",
    "hugetlb_1g",
)


@dataclass(frozen=True, slots=True)
class Config:
    """What a machine simulates; invalid values raise ValueError."""

    profile: str = "rfc-v2"
    phys_pages: int = 262144
    thp: str = "never"
    variants: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if self.profile not in _PROFILES:
            raise ValueError(f"unknown profile {self.profile!r} (one of {', '.join(_PROFILES)})")
        if self.thp not in _THP:
            raise ValueError(f"unknown thp mode {self.thp!r} (one of {', '.join(_THP)})")
        pages = self.phys_pages
        if (
            isinstance(pages, bool)
            or not isinstance(pages, int)
            or not _PHYS_MIN <= pages <= _PHYS_MAX
            or pages % _PHYS_STEP
        ):
            raise ValueError(
                f"phys_pages must be a multiple of {_PHYS_STEP} in "
                f"{_PHYS_MIN}..{_PHYS_MAX}, got {pages!r}"
            )
        variants = self.variants
        if isinstance(variants, str):
            variants = frozenset([variants])
        variants = frozenset(variants)
        for v in variants:
            if v not in _VARIANTS:
                raise ValueError(f"unknown variant {v!r} (known: {', '.join(_VARIANTS)})")
        object.__setattr__(self, "variants", variants)


class PfnResult(NamedTuple):
    """The answer of get_lock_pfn / fault.  A NamedTuple, not a frozen
    dataclass: it is made on the hot path, where a frozen dataclass's
    __init__ alone costs more than the engine call (bench/engine.py)."""

    pfn: int | None
    order: int | None
    pending: bool
    seq: int


class FileInfo(NamedTuple):
    fd: int
    kind: str
    name: str
    size: int
    seals: list[str]
    seals_value: int
    flags: list[str]
    owners: list[int]
    nr_pages: int
    mappings: int
    writable_maps: int
    pending: int


class PageRun(NamedTuple):
    """Alike pages [start, end) of a file."""

    start: int
    end: int
    state: str
    pfn: int | None
    order: int | None
    locked: bool
    refcount: int
    dirty: bool
    mapped_by: list[int]
    waiters: int
    life: str | None = None  # a guest_memfd page: allocated / zeroed / prepared


class FrameRun(NamedTuple):
    """Alike frames [start, end)."""

    start: int
    end: int
    state: str
    fd: int | None
    index: int | None  # type: ignore[assignment]  # a field shadowing tuple.index
    order: int
    no_direct_map: bool = False  # variant no_direct_map (a proposal)
    map_id: int | None = None  # "cow": the MAP_PRIVATE mapping whose copy it is


@dataclass(frozen=True, slots=True)
class PhysInfo:
    total: int
    free: int
    used: int
    free_by_order: dict[int, int]


class Callback(NamedTuple):
    fn: str
    owner_id: int
    start: int
    end: int
    end_inclusive: bool


class Touch(NamedTuple):
    what: str
    fd: int | None
    owner: int | None
    index: int  # type: ignore[assignment]  # a field shadowing tuple.index
    npages: int
    pfn: int


class Event(NamedTuple):
    seq: int
    op: str
    fd: int | None
    args: dict[str, int]
    ok: bool
    errno: str | None
    errno_value: int | None
    result: int | None
    pending: bool
    hazard: str | None
    raw: int | None
    wakes_seq: int | None
    callbacks: list[Callback]
    touches: list[Touch]
    # beyond the contract: what the op handed back besides its result
    # (get_lock_pfn, fault and their wakes: {"pfn", "order"}), and for a
    # wake the op that had been sleeping
    out: dict[str, int]
    wakes_op: str | None = None
    # how many callbacks and touches the event has in all: the lists above
    # hold at most `max_items` of each (Machine.events); page the rest with
    # Machine.event_callbacks / event_touches
    ncallbacks: int = 0
    ntouches: int = 0
    # how many of them the engine kept (a prefix: it keeps SS_EV_KEEP runs of callbacks
    # and SS_EV_KEEP touch records an event, and counts the rest)
    callbacks_kept: int = 0
    touches_kept: int = 0


@dataclass(frozen=True, slots=True)
class Memslot:
    slot: int
    fd: int
    gfn: int
    index: int
    npages: int


@dataclass(frozen=True, slots=True)
class OwnerInfo:
    id: int
    kind: str
    name: str
    memslots: list[Memslot]
    nmapped: int
    nzapped: int
    ncallbacks: int


class GfnRun(NamedTuple):
    gfn: int
    npages: int
    pfn: int
    order: int


@dataclass(frozen=True, slots=True)
class Waiter:
    seq: int
    op: str
    fd: int | None
    pfn: int
