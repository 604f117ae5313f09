"""The VM panel's links: a gfn's detail (its file page, its frame) and back, the gfns a
selected file page serves (app/pages/vm.py)."""

from __future__ import annotations

from dataclasses import dataclass

from app.engine import Machine
from app.engine._kvm_types import VmInfo
from app.pages.state import ViewState

# a gfn source -> (css class, words)
SOURCES = {
    "none": ("nogfn", "no memslot (MMIO)"),
    "private": ("priv", "a private page of the guest_memfd"),
    "shared_guest_memfd": ("shgm", "shared, in place in the guest_memfd"),
    "shared_userspace_addr": ("shva", "shared, the VMM's page at userspace_addr"),
    "shared_fd": ("shfd", "shared, a page of the shared fd (rfc-v2)"),
    "unmapped_userspace_addr": ("unmapped", "not mapped: userspace_addr has no VMM mapping"),
    "closed_guest_memfd": ("closed", "its guest_memfd was closed"),
    "poisoned": ("poison", "poisoned: its guest_memfd page is hwpoisoned (EHWPOISON)"),
}


@dataclass
class GfnDetail:
    gfn: int
    words: str
    attributes: list[str]
    source: str
    fd: int | None = None
    index: int | None = None
    pfn: int | None = None
    page_url: str = ""
    frame_url: str = ""


def detail(m: Machine, vm: int, gfn: int, st: ViewState) -> GfnDetail:
    runs, _ = m.gfn_sources(vm, gfn, gfn + 1, 1)
    if not runs:
        return GfnDetail(gfn, "past the gfn space", [], "none")
    r = runs[0]
    words = SOURCES.get(r.source, ("", r.source))[1]
    d = GfnDetail(gfn, words, r.attributes, r.source, r.fd, r.index, r.pfn)
    if r.source == "poisoned" and r.fd is not None and r.index is not None:
        # zapped, so no MMU mapping names it: the failed frame is the file page's
        pages, _ = m.page_runs(r.fd, r.index, r.index + 1, 1)
        d.pfn = pages[0].pfn if pages else None
    if r.fd is not None and r.index is not None:
        d.page_url = st.url(fd=r.fd, start=None, end=None, page=r.index, frame=None)
    if r.pfn is not None:
        d.frame_url = st.url(frame=r.pfn, page=None)
    return d


def _uaddr_base(m: Machine, vm: int, g0: int, fd: int) -> int | None:
    """The page of `fd` behind a slot's first gfn when userspace_addr maps that file
    (read from the first gfn's shared source), else None."""
    runs, _ = m.gfn_sources(vm, g0, g0 + 1, 1)
    if runs and runs[0].source == "shared_userspace_addr" and runs[0].fd == fd:
        return runs[0].index
    return None


def back(m: Machine, info: VmInfo, fd: int, index: int, st: ViewState) -> list[tuple[str, str]]:
    """The gfns that a file page backs (checked against the gfn's own source)."""
    out = []
    for sl in info.memslots:
        if sl.slot >> 16:
            continue
        g0, n = sl.guest_phys_addr >> 12, sl.memory_size >> 12
        # the file page of the slot's first gfn (the RFC: userspace_addr is the offset)
        base: int | None = sl.userspace_addr >> 12
        if sl.guest_memfd == fd:
            base = sl.guest_memfd_offset >> 12
        if fd not in (sl.guest_memfd, sl.fd, sl.private_fd):
            base = _uaddr_base(m, info.id, g0, fd)  # fd behind userspace_addr, if it is
        if base is None or not base <= index < base + n:
            continue
        gfn = g0 + index - base
        runs, _ = m.gfn_sources(info.id, gfn, gfn + 1, 1)
        serves = bool(runs) and runs[0].fd == fd and runs[0].index == index
        how = "serves" if serves else "could serve (the guest's view is the other file now)"
        words = f"page {index:,} of fd {fd} {how} gfn {gfn:,} of {info.name} (slot {sl.slot})"
        out.append((words, st.url(gfn=gfn)))
    return out
