"""Records of the KVM side (NamedTuples, like the engine's other views)."""

from __future__ import annotations

from typing import NamedTuple


class VmMemslot(NamedTuple):
    slot: int
    flags: list[str]
    guest_phys_addr: int
    memory_size: int
    userspace_addr: int
    guest_memfd_offset: int
    guest_memfd: int | None  # its fd; None: none, or closed since (gmem_closed)
    fd: int | None  # rfc-v2: the shared view
    private_fd: int | None  # rfc-v2: the private view
    gmem_closed: bool
    gmem_only: bool


class VmInfo(NamedTuple):
    id: int
    name: str
    type: str
    nvcpus: int
    memslots: list[VmMemslot]
    nattr_runs: int
    attr_bytes: int
    closed: bool = False  # the VM fd is closed: alive while a guest_memfd it made is


class AttrRun(NamedTuple):
    start: int  # gfns, end exclusive
    end: int
    attributes: list[str]


class Exit(NamedTuple):
    reason: str  # KVM_EXIT_*
    gpa: int
    size: int
    flags: list[str]  # MEMORY_FAULT
    errno: str | None  # MEMORY_FAULT: KVM_RUN's errno
    type: str | None  # MEMORY_ERROR: KVM_EXIT_MEM_MAP_*


class AccessResult(NamedTuple):
    exit: Exit | None
    backing: str | None  # "private" | "shared" | None (an exit)
    fd: int | None
    index: int | None  # type: ignore[assignment]  # a field shadowing tuple.index
    pfn: int | None
    order: int | None
    value: int | None  # the byte at gpa after the access
    pending: bool  # rfc-v2: the vCPU sleeps on a page get_lock_pfn holds (a wake ends it)
    seq: int


class HostAccess(NamedTuple):
    signal: str | None  # "SIGBUS" | "SIGSEGV" | None
    value: int | None
    seq: int


class GfnSource(NamedTuple):
    start: int
    end: int
    source: str
    slot: int | None
    attributes: list[str]
    fd: int | None
    index: int | None  # type: ignore[assignment]  # a field shadowing tuple.index
    mapped: bool
    pfn: int | None
    order: int | None
