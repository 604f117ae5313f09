"""The VM panel: a VM's memslots over its gfn space, its gfns by attribute and by where
each is served from, and the links gfn -> file page -> frame (and back).

Drawn in columns (at most COLS over the window), at a cost that follows the window's
runs, never its size, so a 1 TiB VM draws as fast as a small one:

- memslots: one bar each (a VM has at most a few dozen);
- attributes: exact, from the attribute runs (read up to ATTR_BUDGET; beyond, the
  columns past the last run read are said to be unread): per column the share of
  private gfns;
- served from: exact from the gfn sources in a window of EXACT gfns or less; wider,
  each column is its first gfn's source (a sample, said so); poisoned gfns (their
  guest_memfd page hwpoisoned) are exact at any width, from the engine's short list of
  poisoned frames: a column holding one is drawn poisoned.

Adjacent columns alike make one bar, so many runs in a column cost nothing more.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from app.engine import Machine
from app.engine._kvm_names import ATTRIBUTES
from app.engine._kvm_types import GfnSource, VmInfo
from app.pages.maps import pct, span, ticks
from app.pages.state import ViewState, window
from app.pages.vm_links import SOURCES, GfnDetail, back, detail

COLS = 400  # columns of a wide window
EXACT = 4096  # a window this narrow reads every gfn source run
SOURCE_RUNS = 1000  # at most this many source runs read in an exact window
POISON_RUNS = 1000  # poisoned runs read for a window (each a memory_failure)
ATTR_BUDGET = 20000  # attribute runs read for a window
MIN_GFNS = 16
PRIVATE_BIT = ATTRIBUTES["KVM_MEMORY_ATTRIBUTE_PRIVATE"]


@dataclass(slots=True)
class VBar:
    start: int
    end: int
    cls: str
    title: str
    left: str = ""
    width: str = ""
    href: str = ""


@dataclass
class VmPanel:
    info: VmInfo
    vms: list[VmInfo]
    start: int
    end: int
    total: int  # the gfn space drawn: up to the end of the highest memslot
    slots: list[VBar]
    attrs: list[VBar]
    sources: list[VBar]
    sampled: bool
    attr_unread: bool
    ticks: list[tuple[str, str]]
    zoom: dict[str, str | None]
    gfn: GfnDetail | None = None
    back: list[tuple[str, str]] = field(default_factory=list)  # (words, url): page -> gfn
    private: int = 0  # private gfns in the window
    poisoned: int = 0  # poisoned gfns in the window
    legend: list[tuple[str, str]] = field(default_factory=list)


def _edges(s: int, e: int, cols: int) -> list[int]:
    w = e - s
    return [s + (w * c) // cols for c in range(cols + 1)]


def _merge(
    cols: list[tuple[str, str]], edges: list[int], s: int, e: int, href: Any = None
) -> list[VBar]:
    """Columns (class, words) -> bars, adjacent alike columns merged."""
    out: list[VBar] = []
    w = e - s
    for c, (cls, words) in enumerate(cols):
        a, b = edges[c], edges[c + 1]
        if b <= a:
            continue
        if out and out[-1].cls == cls and out[-1].title.endswith(words) and out[-1].end == a:
            out[-1].end = b
            continue
        out.append(VBar(a, b, cls, words))
    for bar in out:
        bar.left, bar.width = pct((bar.start - s) / w), pct((bar.end - bar.start) / w)
        bar.title = f"gfn {span(bar.start, bar.end)}: {bar.title}"
        if href is not None:
            bar.href = href(bar.start)
    return out


def _attr_cols(m: Machine, vm: int, edges: list[int]) -> tuple[list[tuple[str, str]], int, bool]:
    """Per column: private / shared / mixed (with its share). Exact from the runs."""
    s, e = edges[0], edges[-1]
    runs = m.attr_spans(vm, s, e, ATTR_BUDGET)
    unread_from = runs[-1][1] if len(runs) >= ATTR_BUDGET else e
    n = len(edges) - 1
    priv = [0] * n
    c = 0
    total = 0
    for r0, r1, bits in runs:
        if not bits & PRIVATE_BIT:
            continue
        a, b = (r0 if r0 > s else s), (r1 if r1 < e else e)
        if b <= a:
            continue
        total += b - a
        k = bisect_right(edges, a, c) - 1  # the column of a (runs come in order)
        c = k
        while b > edges[k + 1]:  # a run over several columns
            priv[k] += edges[k + 1] - a
            a = edges[k + 1]
            k += 1
        priv[k] += b - a
    out = []
    for k in range(n):
        width = edges[k + 1] - edges[k]
        if edges[k] >= unread_from:
            out.append(("unread", "not read (zoom in)"))
        elif priv[k] == 0:
            out.append(("shared", "shared (no attribute)"))
        elif priv[k] >= width:
            out.append(("priv", "private"))
        else:
            out.append(("mixed", f"mixed: {priv[k] * 100 / width:.2g}% private"))
    return out, total, unread_from < e


def _source_cls(r: GfnSource) -> tuple[str, str]:
    cls, words = SOURCES.get(r.source, ("nogfn", r.source))
    if r.mapped:
        return cls + " mapped", words + ", mapped by the MMU"
    return cls, words


def _poison(
    m: Machine, vm: int, edges: list[int], out: list[tuple[str, str]]
) -> list[tuple[int, int]]:
    """Columns holding a poisoned gfn drawn poisoned (exact: from the poisoned runs).
    Returns the poisoned runs of the window."""
    runs = m.poisoned_gfns(vm, edges[0], edges[-1], POISON_RUNS)
    for a, b in runs:
        k = bisect_right(edges, a) - 1
        while k < len(out) and edges[k] < b:
            lo, hi = max(a, edges[k]), min(b, edges[k + 1])
            whole = (lo, hi) == (edges[k], edges[k + 1])
            words = SOURCES["poisoned"][1] + ("" if whole else f" ({hi - lo:,} gfn(s) here)")
            out[k] = ("poison", words)
            k += 1
    return runs


def _poison_links(bars: list[VBar], runs: list[tuple[int, int]], pick: Any) -> None:
    """A poisoned bar selects its first poisoned gfn (not its column's first gfn)."""
    for bar in bars:
        if bar.cls == "poison":
            i = bisect_right(runs, (bar.start, 1 << 64)) - 1
            first = bar.start if i >= 0 and runs[i][1] > bar.start else runs[i + 1][0]
            bar.href = pick(first)


def _source_cols(m: Machine, vm: int, edges: list[int]) -> tuple[list[tuple[str, str]], bool]:
    s, e = edges[0], edges[-1]
    n = len(edges) - 1
    if e - s <= EXACT:
        runs, nxt = m.gfn_sources(vm, s, e, SOURCE_RUNS)
        out: list[tuple[str, str]] = []
        i = 0
        for k in range(n):
            a, b = edges[k], edges[k + 1]
            while i < len(runs) and runs[i].end <= a:
                i += 1
            here = [r for r in runs[i : i + 8] if r.start < b and r.end > a]
            if not here:
                out.append(("unread", "not read"))
            elif len(here) == 1:
                out.append(_source_cls(here[0]))
            else:
                out.append(("mixed", "several sources (zoom in)"))
        return out, nxt < e
    out = []
    for k in range(n):
        runs, _ = m.gfn_sources(vm, edges[k], edges[k] + 1, 1)
        out.append(_source_cls(runs[0]) if runs else ("unread", "not read"))
    return out, True


def _slot_bars(info: VmInfo, s: int, e: int, st: ViewState) -> list[VBar]:
    out = []
    w = e - s
    for sl in info.memslots:
        g0 = sl.guest_phys_addr >> 12
        g1 = g0 + (sl.memory_size >> 12)
        a, b = max(g0, s), min(g1, e)
        if b <= a or sl.slot >> 16:  # SMM's address space is not drawn
            continue
        fd = sl.guest_memfd if sl.guest_memfd is not None else sl.private_fd
        what = ", ".join(sl.flags) or "no flags"
        if sl.guest_memfd is not None:
            what += f", guest_memfd fd {sl.guest_memfd} at page {sl.guest_memfd_offset >> 12:,}"
        if sl.fd is not None:
            what += f", fd {sl.fd}"
        if sl.private_fd is not None:
            what += f", private_fd {sl.private_fd}"
        if sl.gmem_closed:
            what += ", its guest_memfd closed"
        title = f"slot {sl.slot}: gfn {span(g0, g1)} ({what})"
        bar = VBar(a, b, "slot" + (" gone" if sl.gmem_closed else ""), title)
        bar.left, bar.width = pct((a - s) / w), pct((b - a) / w)
        if fd is not None:
            gm = sl.guest_memfd is not None
            index = (sl.guest_memfd_offset if gm else sl.userspace_addr) >> 12
            bar.href = st.url(fd=fd, start=None, end=None, page=index)
        out.append(bar)
    return out


def vm_panel(m: Machine, st: ViewState) -> VmPanel | None:
    vms = m.vms()
    if not vms:
        return None
    info = next((v for v in vms if v.id == st.vm), vms[0])
    top = max(
        ((sl.guest_phys_addr + sl.memory_size) >> 12 for sl in info.memslots if not sl.slot >> 16),
        default=0,
    )
    total = max(MIN_GFNS, top)
    s, e, _ = window(st.gstart, st.gend, total, MIN_GFNS)
    cols = min(COLS, e - s)
    edges = _edges(s, e, cols)
    acols, private, unread = _attr_cols(m, info.id, edges)
    scols, sampled = _source_cols(m, info.id, edges)
    poison = _poison(m, info.id, edges, scols)

    def pick(g: int) -> str:
        return st.url(gfn=g)

    p = VmPanel(
        info=info,
        vms=vms,
        start=s,
        end=e,
        total=total,
        slots=_slot_bars(info, s, e, st),
        attrs=_merge(acols, edges, s, e),
        sources=_merge(scols, edges, s, e, pick),
        sampled=sampled,
        attr_unread=unread,
        ticks=ticks(s, e),
        zoom=_zooms(st, s, e, total),
        private=private,
        poisoned=sum(b - a for a, b in poison),
    )
    _poison_links(p.sources, poison, pick)
    if st.gfn is not None:
        p.gfn = detail(m, info.id, st.gfn, st)
    if st.fd is not None and st.page is not None:
        p.back = back(m, info, st.fd, st.page, st)
    shown = {b.cls.split()[0] for b in p.sources}
    p.legend = [(c, w) for c, w in SOURCES.values() if c in shown]
    return p


def _zooms(st: ViewState, s: int, e: int, total: int) -> dict[str, str | None]:
    from app.pages.state import zooms

    out: dict[str, str | None] = {}
    for name, win in (*zooms(s, e, total, MIN_GFNS).items(), ("whole", None)):
        lo, hi = win or (0, total)
        out[name] = None if (lo, hi) == (s, e) else st.url(gstart=lo, gend=hi)
    return out
