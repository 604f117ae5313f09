"""Page and frame maps: runs of alike pages (or frames) drawn as bars in a window.

The cost follows the number of runs shown, never the file's size:
- fetching: when a window holds few runs (under PROBE) all are read; else, for each
  1/BINS of the window, its first PER_BIN runs and a "more" placeholder for the rest
  (zoom in to read them all) — so a 1 TiB file with 10,000 runs reads ~1,000;
- drawing: a run at least 1/BINS of the window wide is its own bar; narrower runs
  are pooled into one "mixed" bar until the pool is that wide, so a map has at most
  about 2 * BINS bars. A window of CELLS pages or less draws every page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.engine import FrameRun, PageRun

BINS = 160
PROBE = 2 * BINS
PER_BIN = 6
CELLS = 128  # a window this narrow draws every page as its own cell
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


@dataclass(slots=True)
class Pool:
    start: int = -1
    end: int = -1
    runs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    one: Any = None  # the first run pooled


def pct(x: float) -> str:
    return f"{x * 100:.3f}".rstrip("0").rstrip(".") or "0"


def span(a: int, b: int) -> str:
    """Pages/frames [a, b) in words: "7" or "0-15" (with an en dash)."""
    return f"{a:,}" if b - a == 1 else f"{a:,}{DASH}{b - 1:,}"


def _same_page(a: PageRun, b: PageRun) -> bool:
    keys = ("state", "order", "locked", "refcount", "dirty", "mapped_by", "waiters")
    on = a.pfn is None or (b.pfn is not None and a.pfn + (a.end - a.start) == b.pfn)
    return on and all(getattr(a, k) == getattr(b, k) for k in keys)


def _same_frame(a: FrameRun, b: FrameRun) -> bool:
    on = a.index is None or (b.index is not None and a.index + (a.end - a.start) == b.index)
    return on and (a.state, a.fd, a.order) == (b.state, b.fd, b.order)


def fetch_runs(fetch: Fetch, s: int, e: int, more: Callable[[int, int], Any]) -> list[Any]:
    """The runs of [s, e): all when few, else the first PER_BIN of each 1/BINS of the
    window, a `more(start, end)` placeholder standing for the rest of that part."""
    runs, nxt = fetch(s, e, PROBE)
    if nxt >= e or len(runs) < PROBE:
        return runs
    same = _same_page if isinstance(runs[0], PageRun) else _same_frame
    out, cur, w = runs, nxt, e - s
    for i in range(BINS):
        b = s + w * (i + 1) // BINS
        if b <= cur:
            continue
        got, nx = fetch(cur, b, PER_BIN)
        if got and out and out[-1].end == got[0].start and same(out[-1], got[0]):
            out[-1] = out[-1]._replace(end=got[0].end)
            got = got[1:]
        out.extend(got)
        if nx < b:
            out.append(more(nx, b))
        cur = b
    return out


def _layout(
    runs: list[Any],
    s: int,
    e: int,
    single: Callable[[Any, int, int], Bar],
    mixed: Callable[[Pool], Bar],
    tally: Callable[[Any, int, Pool], None],
) -> list[Bar]:
    w = e - s
    minw = 1 if w <= CELLS else max(1, w // BINS)
    bars: list[Bar] = []
    pool = Pool()

    def flush() -> None:
        nonlocal pool
        if pool.runs == 1:
            bars.append(single(pool.one, pool.start, pool.end))
        elif pool.runs:
            bars.append(mixed(pool))
        pool = Pool()

    for r in runs:
        a, b = max(r.start, s), min(r.end, e)
        if b <= a:
            continue
        if b - a >= minw and r.state != "more":
            flush()
            bars.append(single(r, a, b))
            continue
        if not pool.runs:
            pool.start, pool.one = a, r
        pool.end = b
        pool.runs += 1
        if r.state == "more":
            pool.counts["more"] = pool.counts.get("more", 0) + 1
        else:
            tally(r, b - a, pool)
        if pool.end - pool.start >= minw:
            flush()
    flush()
    for bar in bars:
        bar.left = pct((bar.start - s) / w)
        bar.width = pct((bar.end - bar.start) / w)
    return bars


def ticks(s: int, e: int, n: int = 4) -> list[tuple[str, str]]:
    w = e - s
    marks = sorted({s + (w * i) // n for i in range(n)} | {e - 1}) if w > 0 else []
    return [(pct((m - s + 0.5) / w), f"{m:,}") for m in marks]


def marker(index: int | None, s: int, e: int) -> tuple[str, str] | None:
    if index is None or not s <= index < e:
        return None
    return pct((index - s) / (e - s)), pct(1 / (e - s))


def _more_words(p: Pool) -> str:
    return " and more not read" if p.counts.get("more") else ""


# -- pages ---------------------------------------------------------------------------
def page_cls(r: PageRun) -> str:
    if r.state == "more":
        return "unloaded"
    if r.state != "present":
        return "hole"
    parts = ["huge" if (r.order or 0) > 0 else "present"]
    parts += [k for k, on in (("locked", r.locked), ("dirty", r.dirty)) if on]
    parts += ["mapped"] if r.mapped_by else []
    parts += ["wait"] if r.waiters else []
    return " ".join(parts)


def page_words(r: PageRun, owners: dict[int, str]) -> str:
    if r.state == "more":
        return "more runs, not read at this zoom (zoom in)"
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


def more_pages(a: int, b: int) -> PageRun:
    return PageRun(a, b, "more", None, None, False, 0, False, [], 0)


def page_track(runs: list[PageRun], s: int, e: int, total: int, owners: dict[int, str]) -> Track:
    def single(r: PageRun, a: int, b: int) -> Bar:
        pfn = None if r.pfn is None else r.pfn + (a - r.start)
        return Bar(a, b, page_cls(r), f"page {span(a, b)}: {page_words(r, owners)}", pfn)

    def tally(r: PageRun, n: int, pool: Pool) -> None:
        if r.state != "present":
            return
        c = pool.counts
        for k, on in (
            ("present", True),
            ("huge", (r.order or 0) > 0),
            ("locked", r.locked),
            ("dirty", r.dirty),
            ("mapped", bool(r.mapped_by)),
        ):
            if on:
                c[k] = c.get(k, 0) + n

    def mixed(p: Pool) -> Bar:
        c = p.counts
        words = [f"{c.get(k, 0):,} {k}" for k in ("present", "huge", "locked", "dirty", "mapped")]
        title = f"pages {span(p.start, p.end)}: {p.runs:,} runs{_more_words(p)}; pages read: "
        marks = [k for k in ("present", "locked", "dirty", "mapped") if c.get(k)]
        cls = " ".join(["mixed", *marks])
        return Bar(p.start, p.end, cls, title + ", ".join(words) + " (zoom in to see each)")

    bars = _layout(runs, s, e, single, mixed, tally)
    sampled = any(r.state == "more" for r in runs)
    return Track(s, e, total, bars, e - s <= CELLS, ticks(s, e), sampled)


# -- frames --------------------------------------------------------------------------
def more_frames(a: int, b: int) -> FrameRun:
    return FrameRun(a, b, "more", None, None, 0)


def frame_track(runs: list[FrameRun], s: int, e: int, total: int, names: dict[int, str]) -> Track:
    def single(r: FrameRun, a: int, b: int) -> Bar:
        if r.state == "free":
            return Bar(a, b, "free", f"frame {span(a, b)}: free (buddy block of order {r.order})")
        if r.state == "cache" and r.fd is not None and r.index is not None:
            first = r.index + (a - r.start)
            who = names.get(r.fd, f"fd {r.fd}")
            title = f"frame {span(a, b)}: {who}, page {span(first, first + b - a)}"
            return Bar(a, b, f"used fd{r.fd % 6}", f"{title}, order {r.order}")
        if r.state == "more":
            return Bar(a, b, "unloaded", f"frames {span(a, b)}: more runs, not read (zoom in)")
        if r.state == "cache" and r.index is not None:  # its file is closed, still held
            first = r.index + (a - r.start)
            title = f"frame {span(a, b)}: a closed file's page {span(first, first + b - a)}"
            return Bar(a, b, "closed", f"{title}, order {r.order}")
        return Bar(a, b, "orphan", f"frame {span(a, b)}: out of the cache, still referenced")

    def tally(r: FrameRun, n: int, pool: Pool) -> None:
        pool.counts[r.state] = pool.counts.get(r.state, 0) + n

    def mixed(p: Pool) -> Bar:
        c = p.counts
        title = f"frames {span(p.start, p.end)}: {p.runs:,} runs{_more_words(p)}; read: "
        title += f"{c.get('cache', 0):,} in use, {c.get('free', 0):,} free, "
        title += f"{c.get('orphan', 0):,} orphaned (zoom in)"
        return Bar(p.start, p.end, "mixed" + (" used" if c.get("cache") else ""), title)

    bars = _layout(runs, s, e, single, mixed, tally)
    sampled = any(r.state == "more" for r in runs)
    return Track(s, e, total, bars, e - s <= CELLS, ticks(s, e), sampled)
