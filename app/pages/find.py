"""Find a pfn, a gfn or a file page across the files and the owners (/s/{sid}/find?q=).

    pfn 1 · frame 1    the frame: whose page it holds, who maps it
    gfn 257            each owner's memslot that holds it: which file page, mapped or not
    page 5             that page of every file: present (its pfn) or a hole
    257                all three

Numbers take what the forms take (0x1000, 4K: app/pages/numbers.py). The state is the
live one, or a preview's (`at`), as the view around the search box shows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import RegistryDep
from app.engine import Machine
from app.errors import NotFound
from app.pages.common import not_found
from app.pages.numbers import UINT64_MAX, parse_number
from app.pages.render import respond
from app.pages.state import ViewState
from app.registry import Registry

router = APIRouter(include_in_schema=False)
_QUERY = re.compile(r"^\s*(pfn|frame|gfn|page|index)?\s*[:=#]?\s*(.+?)\s*$", re.IGNORECASE)
MAX_HITS = 40


@dataclass
class Hit:
    kind: str  # "pfn", "gfn", "page"
    words: str
    url: str | None  # the view selecting it
    link: str = ""  # the link's text


def _frame(m: Machine, st: ViewState, pfn: int, names: dict[int, str]) -> list[Hit]:
    if pfn >= m.config.phys_pages:
        return [Hit("pfn", f"no frame {pfn:,}: the machine has {m.config.phys_pages:,}", None)]
    r = m.frame_runs(pfn, pfn + 1, 1)[0][0]
    if r.state == "free":
        return [Hit("pfn", f"frame {pfn:,} is free (a buddy block of order {r.order})", None)]
    if r.fd is None or r.index is None:
        return [Hit("pfn", f"frame {pfn:,} holds a page of no open file ({r.state})", None)]
    index = r.index + pfn - r.start
    who = names.get(r.fd, f"fd {r.fd}")
    url = st.url(fd=r.fd, page=index, frame=None, start=None, end=None)
    if r.state == "cow":  # not the file's page: a private mapping's copy of it
        words = f"frame {pfn:,} is mapping {r.map_id}'s MAP_PRIVATE copy of page {index:,} of {who}"
        return [Hit("pfn", words, url, f"page {index:,} of {who}")]
    run = m.page_runs(r.fd, index, index + 1, 1)[0][0]
    mapped = ", ".join(f"owner {o}" for o in run.mapped_by)
    words = f"frame {pfn:,} holds page {index:,} of {who}" + (
        f", mapped by {mapped}" if mapped else ""
    )
    return [Hit("pfn", words, url, f"page {index:,} of {who}")]


def _gfn(m: Machine, st: ViewState, gfn: int, names: dict[int, str]) -> list[Hit]:
    hits = []
    for o in m.owners():
        slots = [s for s in o.memslots if s.gfn <= gfn < s.gfn + s.npages]
        if not slots and o.kind == "kvm":
            hits.append(Hit("gfn", f"no memslot of {o.name} holds gfn {gfn:,}", None))
        for s in slots:
            index = s.index + gfn - s.gfn
            who = names.get(s.fd, f"fd {s.fd}")
            runs = m.gfn_runs(o.id, gfn, 1)
            on = [r for r in runs if r.gfn <= gfn < r.gfn + r.npages]
            state = f"mapped to pfn {on[0].pfn + gfn - on[0].gfn:,}" if on else "not faulted in"
            words = f"gfn {gfn:,} of {o.name} (slot {s.slot}) is page {index:,} of {who}: {state}"
            url = st.url(fd=s.fd, page=index, frame=None, start=None, end=None)
            hits.append(Hit("gfn", words, url, f"page {index:,} of {who}"))
    return hits


def _page(m: Machine, st: ViewState, index: int, names: dict[int, str]) -> list[Hit]:
    hits = []
    for f in m.files():
        if index >= -(-f.size // 4096):
            continue
        r = m.page_runs(f.fd, index, index + 1, 1)[0][0]
        who = names[f.fd]
        state = (
            f"present, pfn {(r.pfn or 0) + index - r.start:,}" if r.state == "present" else "a hole"
        )
        url = st.url(fd=f.fd, page=index, frame=None, start=None, end=None)
        hits.append(
            Hit("page", f"page {index:,} of {who}: {state}", url, f"page {index:,} of {who}")
        )
    return hits


def find(m: Machine, st: ViewState, q: str) -> tuple[list[Hit], str | None]:
    """The hits for query q, or an error in words."""
    match = _QUERY.match(q or "")
    if not match:
        return [], "type a pfn, a gfn or a page: pfn 1, gfn 257, page 5, or a number"
    kind = (match.group(1) or "").lower()
    try:
        n = parse_number(match.group(2))
    except ValueError as exc:
        return [], str(exc)
    if not 0 <= n <= UINT64_MAX:
        return [], f"{n:,} is no pfn, gfn or page index (0 to 2^64 - 1)"
    names = {f.fd: f"{f.name or '(empty name)'} (fd {f.fd})" for f in m.files()}
    hits: list[Hit] = []
    if kind in ("", "gfn"):
        hits += _gfn(m, st, n, names)
    if kind in ("", "page", "index"):
        hits += _page(m, st, n, names)
    if kind in ("", "pfn", "frame"):
        hits += _frame(m, st, n, names)
    return hits[:MAX_HITS], None if hits else f"nothing found for {q.strip()[:40]!r}"


async def _find(reg: Registry, st: ViewState, q: str) -> tuple[list[Hit], str | None]:
    """Find in the live machine (under the session's lock: a few reads) or a preview's."""
    s = reg.get(st.sid)
    async with s.lock:
        if st.at is None or st.at >= s.seq:
            return find(s.machine, st.but(at=None), q)
        m = await reg.call(s.machine_at, st.at)
    return find(m, st, q)


@router.get("/s/{sid}/find", name="page_find", response_class=HTMLResponse)
async def find_page(
    request: Request, reg: RegistryDep, sid: Annotated[str, Path(max_length=128)]
) -> Response:
    st = ViewState.from_query(sid, request.query_params)
    q = request.query_params.get("q", "")[:200]
    try:
        hits, error = await _find(reg, st.but(page=None, frame=None), q)
    except NotFound as exc:
        return not_found(request, exc.message)
    ctx = {"st": st, "q": q, "hits": hits, "error": error}
    return respond(request, "find.html", "_find.html", ctx, alternate=st.api)
