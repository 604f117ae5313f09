"""Page and frame maps: a window of a file's pages (or of the frames) drawn honestly
whatever its width, at a cost that follows its runs, never its size.

- A window of CELLS pages or less draws every run as bars: each page is a cell.
- A wider one draws its density: Machine.page_density / frame_density give, per
  column of COLS, how many pages are present (frames used) and what they are, read
  in full however many runs the window has; the browser draws it as a heat scale
  (static/sealscope.js), so a page narrower than a pixel still lights its pixel.
  Runs at least a column wide are bars on top (their colours, their hover words),
  read where the density shows full columns (wide_runs: at most BUDGET runs); holes
  and free frames are the track's background, never bars that could hide a page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.engine import DENS_FLAGS, DENS_MANY, DENS_NOFILE, DENS_NONE, FrameRun, Machine, PageRun

PROBE = 320  # runs read at first: a window with fewer is read whole
PER_SPAN = 64  # runs read through one span of full columns
BUDGET = 1000  # runs read for a window in all
CELLS = 128  # a window this narrow draws every page as its own cell
MAX_BLOCKS = 64  # huge pages drawn one bar each up to this many in a run
COLS = 1200  # density columns of a wider window (the browser fits them to its pixels)
DASH = "\u2013"  # an en dash, for ranges
Fetch = Callable[[int, int, int], tuple[list[Any], int]]


@dataclass(slots=True)
class Bar:
    start: int
    end: int
    cls: str
    title: str
    pfn: int | None = None  # the first page's pfn, when pfns run on with the index
    left: str = ""
    width: str = ""


@dataclass
class Track:
    start: int
    end: int
    total: int
    bars: list[Bar]
    cells: bool
    ticks: list[tuple[str, str]] = field(default_factory=list)  # (left %, label)
    sampled: bool = False  # some runs were not read (zoom in to see each)
    marker: tuple[str, str] | None = None  # (left %, width %) of the selection
    changed: list[tuple[str, str]] = field(default_factory=list)  # what the op shown changed
    density: str = ""  # per column: pages present (frames used), "" for 0, comma separated
    marks: str = ""  # per column: DENS flags (pages) or the file's fd (frames), "" for none
    cols: int = 0


def pct(x: float) -> str:
    return f"{x * 100:.3f}".rstrip("0").rstrip(".") or "0"


def span(a: int, b: int) -> str:
    """Pages/frames [a, b) in words: "7" or "0-15" (with an en dash)."""
    return f"{a:,}" if b - a == 1 else f"{a:,}{DASH}{b - 1:,}"


def wide_runs(fetch: Fetch, s: int, e: int, counts: list[int]) -> tuple[list[Any], bool]:
    """The runs of [s, e) worth a bar, given the window's density `counts` (len(counts)
    columns): all of them when the first PROBE are all; else those, and the runs through
    the spans of full columns (where a run a column wide or more shows), at most BUDGET
    runs in all. Returns (runs, whether every run of the window was read)."""
    runs, nxt = fetch(s, e, PROBE)
    if nxt >= e:
        return runs, True
    cols, w = len(counts), e - s

    def lo(c: int) -> int:
        return s + -(-(w * c) // cols)

    out, cur, budget = list(runs), nxt, BUDGET - len(runs)
    c = 0
    while c < cols and budget > 0:
        if not counts[c] or counts[c] < lo(c + 1) - lo(c):
            c += 1
            continue
        c0 = c
        while c < cols and counts[c] >= lo(c + 1) - lo(c):
            c += 1
        a, b = max(cur, lo(c0)), lo(min(cols, c + 1))
        if b > a:
            got, cur = fetch(a, b, min(budget, PER_SPAN))
            out += got
            budget -= len(got)
    return out, False


def _wide(fetch: Fetch, s: int, e: int, counts: list[int]) -> tuple[list[Any], bool]:
    if e - s <= CELLS:  # every page is a cell: all its runs (at most CELLS)
        runs, nxt = fetch(s, e, CELLS + 1)
        return runs, nxt >= e
    return wide_runs(fetch, s, e, counts)


def page_map(
    m: Machine, fd: int, s: int, e: int, total: int, owners: dict[int, str]
) -> tuple[Track, list[PageRun]]:
    """The page track of [s, e) of file fd, and the runs it read."""
    if e <= s:
        return Track(s, e, total, [], True), []

    def fetch(a: int, b: int, n: int) -> tuple[list[Any], int]:
        return m.page_runs(fd, a, b, n)

    cols = 0 if e - s <= CELLS else min(COLS, e - s)
    present, flags = m.page_density(fd, s, e, cols) if cols else ([], [])
    runs, complete = _wide(fetch, s, e, present)
    t = page_track(runs, s, e, total, owners)
    t.sampled = not complete
    if cols:
        t.cols, t.density = cols, _csv(present)
        # marks: the flags as letters (huge, locked, dirty, mapped, wait)
        t.marks = ",".join(_LETTERS[f] for f in flags) if any(flags) else ""
    return t, runs


def frame_map(m: Machine, s: int, e: int, total: int, names: dict[int, str]) -> Track:
    cols = 0 if e - s <= CELLS else min(COLS, e - s)
    used, fds = m.frame_density(s, e, cols) if cols else ([], [])
    runs, complete = _wide(m.frame_runs, s, e, used)
    t = frame_track(runs, s, e, total, names)
    t.sampled = not complete
    if cols:
        # marks: fd + 1 of the one file, "m" for several, "c" for frames of no open file
        code = {DENS_NONE: "", DENS_MANY: "m", DENS_NOFILE: "c"}
        t.cols, t.density = cols, _csv(used)
        t.marks = ",".join(code.get(f, str(f + 1)) for f in fds)
    return t


def _layout(runs: list[Any], s: int, e: int, single: Callable[[Any, int, int], Bar]) -> list[Bar]:
    """Bars: in a window of CELLS pages or less, every run; in a wider one (its density
    draws the rest) the runs at least a column wide that hold something, never holes."""
    w = e - s
    dense = w > CELLS
    minw = -(-w // COLS) if dense else 1
    bars: list[Bar] = []
    for r in runs:
        a, b = max(r.start, s), min(r.end, e)
        if b - a < minw or (dense and r.state not in _DRAWN):
            continue
        for x, y in _blocks(r, a, b, minw):
            bar = single(r, x, y)
            bar.left, bar.width = pct((x - s) / w), pct((y - x) / w)
            bars.append(bar)
    return bars


def _blocks(r: Any, a: int, b: int, minw: int) -> list[tuple[int, int]]:
    """[a, b) cut at the compound pages of a run of order > 0 (alike huge pages make one
    run; each is drawn as its own bar while there are few and each is wide enough)."""
    size = 1 << (r.order or 0)
    first = getattr(r, "pfn", None) if isinstance(r, PageRun) else r.start
    if size == 1 or size < minw or (b - a) // size > MAX_BLOCKS:
        return [(a, b)]
    # block boundaries: where the pfn (pages) or the frame (frames) is a multiple of size
    base = (first or 0) - r.start if isinstance(r, PageRun) else 0
    out, x = [], a
    while x < b:
        y = min(b, x + size - (x + base) % size)
        out.append((x, y))
        x = y
    return out


_DRAWN = ("present", "cache", "orphan", "hwpoison", "cow")
_LETTERS = [
    "".join(k[0] for k, bit in DENS_FLAGS.items() if f & bit) for f in range(256)
]  # "h", "l", "d", "m", "w"


def _csv(values: list[int]) -> str:
    return ",".join(str(v) if v else "" for v in values)


def ticks(s: int, e: int, n: int = 4) -> list[tuple[str, str]]:
    w = e - s
    marks = sorted({s + (w * i) // n for i in range(n)} | {e - 1}) if w > 0 else []
    return [(pct((m - s + 0.5) / w), f"{m:,}") for m in marks]


def marker(index: int | None, s: int, e: int) -> tuple[str, str] | None:
    if index is None or not s <= index < e:
        return None
    return pct((index - s) / (e - s)), pct(1 / (e - s))


# -- pages ---------------------------------------------------------------------------
def page_cls(r: PageRun) -> str:
    if r.state != "present":
        return "hole"
    parts = ["huge" if (r.order or 0) > 0 else "present"]
    parts += [k for k, on in (("locked", r.locked), ("dirty", r.dirty)) if on]
    parts += ["mapped"] if r.mapped_by else []
    parts += ["wait"] if r.waiters else []
    return " ".join(parts)


def page_words(r: PageRun, owners: dict[int, str]) -> str:
    if r.state != "present":
        return "hole (no page in the cache)"
    n = r.end - r.start
    words = [f"present, pfn {span(r.pfn or 0, (r.pfn or 0) + n)}", f"order {r.order}"]
    words += [f"refcount {r.refcount}", "locked" if r.locked else "unlocked"]
    words += ["dirty"] if r.dirty else []
    if r.mapped_by:
        words.append("mapped by " + ", ".join(owners.get(o, f"owner {o}") for o in r.mapped_by))
    if r.waiters:
        words.append(f"{r.waiters} waiting on the lock")
    return ", ".join(words)


def page_track(runs: list[PageRun], s: int, e: int, total: int, owners: dict[int, str]) -> Track:
    def single(r: PageRun, a: int, b: int) -> Bar:
        pfn = None if r.pfn is None else r.pfn + (a - r.start)
        return Bar(a, b, page_cls(r), f"page {span(a, b)}: {page_words(r, owners)}", pfn)

    return Track(s, e, total, _layout(runs, s, e, single), e - s <= CELLS, ticks(s, e))


# -- frames --------------------------------------------------------------------------
def frame_track(runs: list[FrameRun], s: int, e: int, total: int, names: dict[int, str]) -> Track:
    def single(r: FrameRun, a: int, b: int) -> Bar:
        if r.state == "free":
            return Bar(a, b, "free", f"frame {span(a, b)}: free (buddy block of order {r.order})")
        if r.state == "cache" and r.fd is not None and r.index is not None:
            first = r.index + (a - r.start)
            who = names.get(r.fd, f"fd {r.fd}")
            title = f"frame {span(a, b)}: {who}, page {span(first, first + b - a)}"
            ndm = ", out of the direct map" if r.no_direct_map else ""
            return Bar(a, b, f"used fd{r.fd % 6}", f"{title}, order {r.order}{ndm}")
        if r.state == "cache" and r.index is not None:  # its file is closed, still held
            first = r.index + (a - r.start)
            title = f"frame {span(a, b)}: a closed file's page {span(first, first + b - a)}"
            return Bar(a, b, "closed", f"{title}, order {r.order}")
        if r.state == "hwpoison":
            return Bar(a, b, "hwpoison", f"frame {span(a, b)}: hwpoisoned, off the free lists")
        if r.state == "cow" and r.index is not None:
            first = r.index + (a - r.start)
            title = f"frame {span(a, b)}: mapping {r.map_id}'s copy of page"
            return Bar(a, b, "cow", f"{title} {span(first, first + b - a)} (MAP_PRIVATE)")
        return Bar(a, b, "orphan", f"frame {span(a, b)}: out of the cache, still referenced")

    return Track(s, e, total, _layout(runs, s, e, single), e - s <= CELLS, ticks(s, e))
