"""Everything the session view shows, read from one Machine in one go.

`load` takes the session lock once and reads the live machine, or replays the
log into a fresh machine up to op `at` (a preview: the session does not change).
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from app.engine import FileInfo, Machine, OwnerInfo, PageRun, PhysInfo, Waiter
from app.pages.changes import Changes, changes_of, overlay
from app.pages.maps import PROBE, Track, frame_map, marker, page_map, span
from app.pages.state import ViewState, window, zooms
from app.pages.timeline import (
    CallbackRow,
    OpRow,
    args_text,
    callback_row,
    future_rows,
    op_rows,
)
from app.pages.vm import VmPanel, vm_panel
from app.registry import Registry
from app.service import room
from app.session import Session

TIMELINE = 40
AHEAD = 12  # a preview's timeline shows this many later ops
TABLE_ROWS = 64
MAX_GFN_RUNS = 64
FRAME_KEYS = ("fstart", "fend")
REDO_SHOWN = 6  # the redo stack's first ops, named in the confirmations


@dataclass
class FileView:
    info: FileInfo
    label: str
    pages: int
    owners: list[str]  # "kvm0 (owner 0)"

    @property
    def name(self) -> str:
        """The file's name, or words for an empty one (Linux accepts "")."""
        return self.info.name or "(empty name)"


@dataclass
class PageDetail:
    fd: int
    index: int
    run: PageRun
    pfn: int | None
    mapped: list[str]  # "kvm0 maps gfn 256 (slot 0)"


@dataclass
class FrameDetail:
    pfn: int
    words: str


@dataclass
class OwnerView:
    info: OwnerInfo
    files: list[str]
    runs: list[Any]
    more: bool
    changed: list[str] = field(default_factory=list)  # what the op shown did to it
    zaps: list[str] = field(default_factory=list)
    zap_op: int | None = None
    received: list[tuple[str | None, CallbackRow]] = field(default_factory=list)


@dataclass
class View:
    state: ViewState
    profile: str
    thp: str
    variants: list[str]
    seq: int  # ops in the session's log
    shown: int  # ops applied in what is shown (seq, or `at` in a preview)
    event_seq: int
    live_events: int  # the live machine's event count (where the event stream starts)
    files: list[FileView]
    file: FileView | None
    pages: Track | None
    page_zoom: dict[str, str | None]
    frames: Track
    frame_zoom: dict[str, str | None]
    phys: PhysInfo
    owners: list[OwnerView]
    rows: list[OpRow]
    older: int | None
    page: PageDetail | None
    frame: FrameDetail | None
    missing: int | None  # the fd the view names, not open in this preview
    waiters: list[Waiter]
    table: list[PageRun]
    damage: str | None = None  # the stored log could not be replayed: read only
    undo: str = ""  # the live log's last op, "#8 fallocate(…)"
    redo: list[str] = field(default_factory=list)  # the redo stack, "#9 fallocate(…)"
    redo_total: int = 0
    going: list[str] = field(default_factory=list)  # ops a rewind to `shown` takes out
    vm: VmPanel | None = None  # the VM panel (app/pages/vm.py), when there is a VM

    @property
    def preview(self) -> bool:
        return self.shown < self.seq


async def load(reg: Registry, state: ViewState) -> View:
    s = reg.get(state.sid)
    with ExitStack() as hold:
        async with s.lock:
            seq = s.seq
            if state.at is None or state.at >= seq:
                return build(s, s.machine, s.ops, s.op_events, state.but(at=None), seq)
            # a preview is a temporary machine: counted while it lives
            hold.enter_context(room.machines(reg, 1, s.config.phys_pages, "at"))
            m = await reg.call(s.machine_at, state.at)
            ops, op_events = s.ops[: state.at], s.op_events[: state.at]
            live = s.machine.event_count
        return build(s, m, ops, op_events, state, seq, live)


def _call(op: Any, n: int) -> str:
    return f"#{n} {op.name}({args_text(op.args_dict())})"


NO_DIRECT_MAP = {False: "", True: ", out of the kernel's direct map (no_direct_map)"}


def _frame(m: Machine, pfn: int, names: dict[int, str]) -> tuple[FrameDetail, int | None, int]:
    """The frame's words, and the (fd, index) it holds if any."""
    runs, _ = m.frame_runs(pfn, pfn + 1, 1)
    if not runs:
        return FrameDetail(pfn, "past the last frame"), None, -1
    r = runs[0]
    if r.state == "cache" and r.fd is not None and r.index is not None:
        index = r.index + pfn - r.start
        who = names.get(r.fd, f"fd {r.fd}")
        words = f"holds page {index:,} of {who} (order {r.order})" + NO_DIRECT_MAP[r.no_direct_map]
        return FrameDetail(pfn, words), r.fd, index
    if r.state == "free":
        return FrameDetail(pfn, f"free, in a buddy block of order {r.order}"), None, -1
    if r.state == "hwpoison":
        return FrameDetail(pfn, "hwpoisoned: a failed frame, off the free lists for good"), None, -1
    if r.state == "cow" and r.index is not None:
        index = r.index + pfn - r.start
        who = "a closed file" if r.fd is None else names.get(r.fd, f"fd {r.fd}")
        words = f"mapping {r.map_id}'s MAP_PRIVATE copy of page {index:,} of {who}"
        return FrameDetail(pfn, words), None, -1
    if r.state == "cache" and r.index is not None:
        index = r.index + pfn - r.start
        return (
            FrameDetail(
                pfn,
                f"holds page {index:,} of a closed file (order {r.order}), which something "
                "still holds: an owner's registration or memslot, or its final truncate "
                "sleeping on a page get_lock_pfn holds",
            ),
            None,
            -1,
        )
    return FrameDetail(pfn, "out of the page cache, still referenced (orphan)"), None, -1


def _page(m: Machine, fd: int, index: int, owners: list[OwnerInfo]) -> PageDetail | None:
    runs, _ = m.page_runs(fd, index, index + 1, 1)
    if not runs:
        return None
    r = runs[0]
    pfn = None if r.pfn is None else r.pfn + index - r.start
    mapped = []
    for o in owners:
        slots = [s for s in o.memslots if s.fd == fd and s.index <= index < s.index + s.npages]
        where = ", ".join(f"gfn {s.gfn + index - s.index:,} (slot {s.slot})" for s in slots)
        if o.id in r.mapped_by:
            mapped.append(f"{o.name} (owner {o.id}) at {where or 'a gfn'}")
        elif where:
            mapped.append(f"not {o.name}: its {where} is not faulted in")
    return PageDetail(fd, index, r, pfn, mapped)


def _changes(m: Machine, op_events: list[int], n: int, fd: int | None) -> Changes:
    """What op n (the last op of the state shown) changed."""
    if n < 1:
        return Changes()
    lo = op_events[n - 2] if n >= 2 else 0
    return changes_of(m.events(lo, op_events[n - 1] - lo, max_items=256), fd)


def _owners(m: Machine, infos: list[OwnerInfo], files: list[FileView]) -> list[OwnerView]:
    names = {o.id: o.name for o in infos}
    fnames = {f.info.fd: f.label for f in files}
    recent = m.events(max(0, m.event_count - 200), max_items=64)  # a few of each shown
    out = []
    for o in infos:
        runs = m.gfn_runs(o.id, 0, MAX_GFN_RUNS + 1)
        ov = OwnerView(
            info=o,
            files=[f.label for f in files if o.id in f.info.owners],
            runs=runs[:MAX_GFN_RUNS],
            more=len(runs) > MAX_GFN_RUNS,
        )
        for ev in reversed(recent):
            zaps = [t for t in ev.touches if t.what == "zap" and t.owner == o.id]
            if zaps:
                ov.zap_op = ev.seq
                ov.zaps = [
                    f"gfn {span(t.index, t.index + t.npages)} → pfn {span(t.pfn, t.pfn + t.npages)}"
                    for t in zaps[:16]
                ]
                break
        got = [(ev.fd, c) for ev in recent for c in ev.callbacks if c.owner_id == o.id]
        ov.received = [
            (None if fd is None else fnames.get(fd, f"fd {fd}"), callback_row(c, names))
            for fd, c in got[-8:]
        ][::-1]
        out.append(ov)
    return out


def _zoom_urls(
    st: ViewState, z: dict[str, tuple[int, int] | None], s: int, e: int, total: int, frames: bool
) -> dict[str, str | None]:
    """Zoom and pan links; None where the control would not change the window. The page
    map's whole window is its default (no start/end); the frame map's is explicit, as
    its default window is the part of memory in use."""
    a, b = FRAME_KEYS if frames else ("start", "end")
    out: dict[str, str | None] = {}
    for name, win in (*z.items(), ("whole", None)):
        lo, hi = win or (0, total)
        same = (lo, hi) == (s, e) or not total
        keys = (lo, hi) if frames else (win or (None, None))
        out[name] = None if same else st.url(**{a: keys[0], b: keys[1]})
    return out


def _frame_window(m: Machine, st: ViewState, total: int, pfn: int | None) -> tuple[int, int]:
    """The frame map's window: as asked, else from frame 0 to past the frames in use
    (a power of two, at least 64), so a few pages in use are not lost in the machine."""
    if st.fstart is not None or st.fend is not None:
        fs, fe, _ = window(st.fstart, st.fend, total, 16)
        return fs, fe
    runs, nxt = m.frame_runs(0, total, PROBE)
    used = total if nxt < total else max((r.end for r in runs if r.state != "free"), default=0)
    used = max(used, (pfn or 0) + 1)
    return 0, min(total, max(64, 1 << (used + used // 4).bit_length()))


def build(
    s: Session,
    m: Machine,
    ops: list[Any],
    op_events: list[int],
    st: ViewState,
    seq: int,
    live: int | None = None,
) -> View:
    infos = m.owners()
    onames = {o.id: o.name for o in infos}
    files = [
        FileView(
            f,
            f"{f.name or '(empty name)'} (fd {f.fd})",
            -(-f.size // 4096),
            [f"{onames.get(o, '?')} (owner {o})" for o in f.owners],
        )
        for f in m.files()
    ]
    fnames = {f.info.fd: f.label for f in files}
    phys = m.phys()
    frame = None
    if st.frame is not None and st.frame < phys.total:
        frame, ffd, findex = _frame(m, st.frame, fnames)
        if ffd is not None:
            same = ffd == st.fd  # then the page window follows the page (below)
            st = st.but(fd=ffd, page=findex, frame=None)  # from now on, a page selection
            st = st if same else st.but(start=None, end=None)
    missing: int | None = None
    file = next((f for f in files if f.info.fd == st.fd), None)
    if file is None and st.fd is not None and len(ops) < seq:
        missing = st.fd  # a preview before the file was made: the view keeps it (and its zoom)
    else:
        file = file or (files[0] if files else None)
        st = st.but(fd=None if file is None else file.info.fd)
    pages, page, table = None, None, []
    zoom: dict[str, str | None] = {}
    if file is not None:
        total, fd = file.pages, file.info.fd
        ps, pe, _ = window(st.start, st.end, total)
        if st.page is not None and st.page < total and not ps <= st.page < pe:
            # a page selected outside the window: the window moves to it (same width)
            w = pe - ps
            ps = max(0, min(st.page - w // 2, total - w))
            pe = ps + w
            st = st.but(start=ps, end=pe)
        pages, runs = page_map(m, fd, ps, pe, total, onames)
        table = sorted(runs, key=lambda r: r.start)[:TABLE_ROWS]
        zoom = _zoom_urls(st, zooms(ps, pe, total), ps, pe, total, False)
        if st.page is not None and st.page < total:
            page = _page(m, fd, st.page, infos)
            pages.marker = marker(st.page, ps, pe)
            if frame is None and page is not None and page.pfn is not None:
                frame, _, _ = _frame(m, page.pfn, fnames)
    fs, fe = _frame_window(m, st, phys.total, frame.pfn if frame else None)
    frames = frame_map(m, fs, fe, phys.total, fnames)
    shown = len(ops)
    changes = _changes(m, op_events, shown, file.info.fd if file else None)
    frames.changed = overlay(changes.frames, fs, fe)
    if pages is not None:
        pages.changed = overlay(changes.pages, pages.start, pages.end)
    owner_views = _owners(m, infos, files)
    for ov in owner_views:
        ov.changed = changes.owners.get(ov.info.id, [])
    if frame is not None:
        frames.marker = marker(frame.pfn, fs, fe)
    # the timeline: the whole log, a preview's later ops too (greyed, above the cursor)
    newest = min(st.log or (shown + AHEAD), seq)
    first = max(1, newest - TIMELINE + 1)
    rows: list[OpRow] = future_rows(s.ops, max(first, shown + 1), newest)
    past = min(newest, shown)
    if past >= first:
        lo = op_events[first - 2] if first >= 2 else 0
        events = m.events(lo, max(1, op_events[past - 1] - lo), max_items=16)
        rows += op_rows(ops[first - 1 : past], first, op_events, events, onames, fnames)
    return View(
        undo=_call(s.ops[seq - 1], seq) if seq else "",
        redo=[_call(o, seq + i + 1) for i, o in enumerate(s.redo[:REDO_SHOWN])],
        redo_total=len(s.redo),
        going=[_call(s.ops[i], i + 1) for i in range(shown, min(seq, shown + REDO_SHOWN))],
        state=st,
        profile=s.config.profile,
        thp=s.config.thp,
        variants=sorted(s.config.variants),
        seq=seq,
        shown=shown,
        event_seq=m.event_count,
        live_events=m.event_count if live is None else live,
        files=files,
        file=file,
        pages=pages,
        page_zoom=zoom,
        frames=frames,
        frame_zoom=_zoom_urls(st, zooms(fs, fe, phys.total, 16), fs, fe, phys.total, True),
        phys=phys,
        owners=owner_views,
        rows=rows,
        older=first - 1 if first > 1 else None,
        page=page,
        frame=frame,
        missing=missing,
        waiters=m.waiters(),
        table=table,
        damage=s.damage,
        vm=vm_panel(m, st),
    )
