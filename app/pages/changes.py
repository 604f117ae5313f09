"""What the op shown changed, to mark on every map: the pages of the file shown, the
frames, each owner's gfns and the callbacks it received (from the op's events' touches:
alloc, free, lock, map, zap ...; a map or zap touch names gfns, the others file pages)."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.engine import Event
from app.pages.maps import pct, span

MAX_MARKS = 32  # ranges marked on one map


@dataclass
class Changes:
    pages: list[tuple[int, int]] = field(default_factory=list)  # of the file shown
    frames: list[tuple[int, int]] = field(default_factory=list)
    owners: dict[int, list[str]] = field(default_factory=dict)  # owner id -> words


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out[:MAX_MARKS]


def changes_of(events: list[Event], fd: int | None) -> Changes:
    pages, frames = [], []
    owners: dict[int, list[str]] = {}
    for ev in events:
        for t in ev.touches:
            frames.append((t.pfn, t.pfn + t.npages))
            if t.what in ("map", "zap") and t.owner is not None:
                gfns, pfns = span(t.index, t.index + t.npages), span(t.pfn, t.pfn + t.npages)
                verb = "maps" if t.what == "map" else "zaps"
                owners.setdefault(t.owner, []).append(f"{verb} gfn {gfns} → pfn {pfns}")
            elif t.fd is not None and t.fd == fd:
                pages.append((t.index, t.index + t.npages))
        for cb in ev.callbacks:
            end = "]" if cb.end_inclusive else ")"
            owners.setdefault(cb.owner_id, []).append(f"gets {cb.fn} [{cb.start}, {cb.end}{end}")
    for o, words in owners.items():
        owners[o] = words[:8] + ([f"and {len(words) - 8} more"] if len(words) > 8 else [])
    return Changes(_merge(pages), _merge(frames), owners)


def overlay(ranges: list[tuple[int, int]], s: int, e: int) -> list[tuple[str, str]]:
    """(left %, width %) of each range inside the window [s, e)."""
    w = e - s
    out = []
    for a, b in ranges:
        a, b = max(a, s), min(b, e)
        if b > a and w > 0:
            out.append((pct((a - s) / w), pct((b - a) / w)))
    return out
