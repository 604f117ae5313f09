"""The state of a session view, as named by its URL's query string.

Every view (zoom, pan, the selected page or frame, the op previewed, the
walkthrough) is a URL, so a link can be shared. Bad values are ignored, not
refused: a page should always render.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote, urlencode

from app.pages.numbers import parse_number

U64 = 2**64 - 1
PAGE = 4096
GOTO_WIDTH = 128  # "go to page" shows this many pages around it (each its own cell)


def to_int(raw: str | None, lo: int = 0, hi: int = U64) -> int | None:
    """An integer in [lo, hi] as the forms write them (12, 0x1f, 4K, 1.5M: see
    app/pages/numbers.py), else None."""
    if raw is None or len(raw) > 64:
        return None
    try:
        value = parse_number(raw)
    except ValueError:
        return None
    return value if lo <= value <= hi else None


def parse_size(raw: str) -> int:
    """Bytes from "65536", "64K", "1.5M", "1T", "9E" or "16p" (pages), negative too (the
    kernel answers those); ValueError in words if not (app/pages/numbers.py)."""
    return parse_number(raw, sizes=True)


@dataclass(frozen=True)
class ViewState:
    sid: str
    fd: int | None = None
    start: int | None = None  # page window of the file [start, end)
    end: int | None = None
    fstart: int | None = None  # frame window [fstart, fend)
    fend: int | None = None
    page: int | None = None  # the selected page (of fd)
    frame: int | None = None  # the selected frame (pfn)
    at: int | None = None  # previewing the state after op `at` (None: live)
    walk: str | None = None  # a guided walkthrough's name
    log: int | None = None  # the newest op the timeline shows (None: the newest)
    vm: int | None = None  # the VM panel's VM (its owner id; None: the first VM)
    gfn: int | None = None  # the selected gfn of that VM
    gstart: int | None = None  # the VM panel's gfn window [gstart, gend)
    gend: int | None = None

    KEYS: ClassVar[tuple[str, ...]] = (
        "fd",
        "start",
        "end",
        "fstart",
        "fend",
        "page",
        "frame",
        "at",
    )
    KEYS += ("walk", "log", "vm", "gfn", "gstart", "gend")

    @classmethod
    def from_query(cls, sid: str, q: Mapping[str, str]) -> ViewState:
        def n(key: str) -> int | None:
            return to_int(q.get(key))

        walk = q.get("walk") or None
        if walk is not None and not re.fullmatch(r"[a-z0-9-]{1,64}", walk):
            walk = None
        return cls(
            sid=sid,
            fd=to_int(q.get("fd"), -(2**31), 2**31 - 1),
            start=n("start"),
            end=n("end"),
            fstart=n("fstart"),
            fend=n("fend"),
            page=n("page"),
            frame=n("frame"),
            at=n("at"),
            walk=walk,
            log=n("log"),
            vm=n("vm"),
            gfn=n("gfn"),
            gstart=n("gstart"),
            gend=n("gend"),
        )

    def but(self, **changes: object) -> ViewState:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def go_to(self, width: int = GOTO_WIDTH) -> ViewState:
        """The view zoomed to the selected page (a window of `width` pages around it, so
        it draws as a cell) or the selected frame."""
        st = self
        if st.page is not None:
            a = max(0, st.page - width // 2)
            st = st.but(start=a, end=a + width)
        if st.frame is not None:
            a = max(0, st.frame - width // 2)
            st = st.but(fstart=a, fend=a + width)
        return st

    def follow(self, fd: object) -> ViewState:
        """The view on file `fd` (a walkthrough step's file), its page window and selected
        page reset; unchanged when fd is not an fd or is the file shown already."""
        if isinstance(fd, bool) or not isinstance(fd, int) or fd == self.fd:
            return self
        if not -(2**31) <= fd < 2**31:
            return self
        return self.but(fd=fd, start=None, end=None, page=None)

    def params(self, **changes: object) -> dict[str, str]:
        values = dataclasses.asdict(self) | changes
        return {k: str(values[k]) for k in self.KEYS if values.get(k) is not None}

    def url(self, **changes: object) -> str:
        """/s/{sid}?query with `changes` applied (None drops a key)."""
        query = urlencode(self.params(**changes))
        return self.base + ("?" + query if query else "")

    @property
    def base(self) -> str:
        return f"/s/{quote(self.sid, safe='')}"

    @property
    def api(self) -> str:
        return f"/api/v1/sessions/{quote(self.sid, safe='')}"


def window(
    start: int | None, end: int | None, total: int, min_width: int = 8
) -> tuple[int, int, bool]:
    """The window [s, e) inside [0, total), at least min_width wide; whole=True when it
    is the whole range."""
    if total <= 0:
        return 0, 0, True
    s = min(start or 0, total - 1)
    e = total if end is None else max(min(end, total), s + 1)
    if e - s < min_width:
        e = min(total, s + min_width)
        s = max(0, e - min_width)
    return s, e, (s, e) == (0, total)


def zooms(s: int, e: int, total: int, min_width: int = 8) -> dict[str, tuple[int, int] | None]:
    """Windows for the zoom and pan controls (None: the whole range)."""
    w = e - s
    c = s + w // 2

    def clamp(a: int, b: int) -> tuple[int, int] | None:
        b = min(b, total)
        a = max(0, min(a, b - 1))
        if b - a < min_width:
            a, b = max(0, min(a, total - min_width)), min(total, max(b, a + min_width))
        return None if (a, b) == (0, total) else (a, b)

    half = max(min_width, w // 2)
    return {
        "in": clamp(c - half // 2, c - half // 2 + half),
        "out": clamp(c - w, c + w),
        "left": clamp(max(0, s - w // 2), max(0, s - w // 2) + w),
        "right": clamp(min(e + w // 2, total) - w, min(e + w // 2, total)),
    }
