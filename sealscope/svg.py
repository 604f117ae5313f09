"""A session's page map (each file's pages) and frame map (physical memory) as one SVG
picture, for a review mail: runs of alike pages as bars, colours with a legend."""

from __future__ import annotations

from html import escape
from typing import Any

from sealscope.models.views import FrameExtent, PageExtent

WIDTH = 960
BAR = 22
MAX_RUNS = 4096  # runs read per map (the picture says when there were more)

PAGE_COLOURS = {
    "hole": "#eceff1",
    "present": "#4c8bf5",
    "locked": "#e8710a",
    "mapped": "#188038",
}
FRAME_COLOURS = {"free": "#eceff1", "cache": "#4c8bf5", "orphan": "#d93025"}


def _page_kind(e: PageExtent) -> str:
    if e.state != "present":
        return "hole"
    if e.locked:
        return "locked"
    return "mapped" if e.mapped_by else "present"


def _bar(y: int, total: int, runs: list[tuple[int, int, str, str]], colours: dict[str, str]) -> str:
    """Rectangles for runs (start, end, kind, title) of [0, total), at least 1 px each."""
    empty = next(iter(colours.values()))  # the first colour: holes, free frames
    out = [f'<rect x="0" y="{y}" width="{WIDTH}" height="{BAR}" fill="{empty}" stroke="#999"/>']
    scale = WIDTH / max(1, total)
    for start, end, kind, title in runs:
        if kind in ("hole", "free"):
            continue
        x = start * scale
        w = max(1.0, (end - start) * scale)
        out.append(
            f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{BAR}" fill="{colours[kind]}">'
            f"<title>{escape(title)}</title></rect>"
        )
    return "\n".join(out)


def _legend(y: int, colours: dict[str, str]) -> str:
    parts = []
    x = 0
    for name, colour in colours.items():
        parts.append(
            f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour}" stroke="#999"/>'
        )
        parts.append(f'<text x="{x + 16}" y="{y + 11}">{escape(name)}</text>')
        x += 24 + 8 * len(name)
    return "\n".join(parts)


def render(
    title: str,
    files: list[tuple[Any, list[PageExtent], bool]],
    frames: tuple[int, list[FrameExtent], bool],
) -> str:
    """files: (File, its page runs, more runs than read) each; frames: (total, runs, more)."""
    rows: list[str] = []
    y = 32
    rows.append(f'<text x="0" y="{y - 14}" class="h">Page map</text>')
    for f, runs, more in files:
        npages = max((r.end for r in runs), default=0)
        label = f"fd {f.fd} {f.name!r} ({f.kind}): {f.size} bytes, {f.nr_pages} resident pages"
        label += f", seals {' '.join(f.seals) or 'none'}" + (" (runs cut)" if more else "")
        rows.append(f'<text x="0" y="{y + 12}">{escape(label)}</text>')
        y += 18
        spans = [
            (
                r.start,
                r.end,
                _page_kind(r),
                f"pages {r.start}-{r.end - 1}: {_page_kind(r)}"
                + (f", pfn {r.pfn} order {r.order}" if r.pfn is not None else ""),
            )
            for r in runs
        ]
        rows.append(_bar(y, npages, spans, PAGE_COLOURS))
        y += BAR + 14
    if not files:
        rows.append(f'<text x="0" y="{y + 12}">no open files</text>')
        y += 30
    rows.append(_legend(y, PAGE_COLOURS))
    y += 56
    total, fruns, fmore = frames
    used = sum(r.end - r.start for r in fruns if r.state != "free")
    # the frames up to the last one in use (all of memory would be a sliver and a void)
    shown = max((r.end for r in fruns if r.state != "free"), default=0)
    shown = total if fmore else min(total, max(1024, -(-shown * 5 // 4)))
    rows.append(f'<text x="0" y="{y - 20}" class="h">Frame map</text>')
    note = f"{total} frames, {used} in use; frames 0-{shown - 1} shown"
    rows.append(f'<text x="0" y="{y}">{note}{" (runs cut)" if fmore else ""}</text>')
    y += 8
    spans = [
        (
            r.start,
            r.end,
            r.state if r.state in FRAME_COLOURS else "cache",
            f"frames {r.start}-{r.end - 1}: {r.state}"
            + (f" (fd {r.fd} page {r.index})" if r.fd is not None else ""),
        )
        for r in fruns
    ]
    spans = [(a, min(b, shown), k, t) for a, b, k, t in spans if a < shown]
    rows.append(_bar(y, shown, spans, FRAME_COLOURS))
    y += BAR + 14
    rows.append(_legend(y, FRAME_COLOURS))
    y += 24
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" '
        f'viewBox="0 0 {WIDTH} {y}" font-family="sans-serif" font-size="12">\n'
        "<style>.h { font-weight: bold; font-size: 14px }</style>\n"
        f"<title>{escape(title)}</title>\n"
    )
    return head + "\n".join(r for r in rows if r) + "\n</svg>\n"
