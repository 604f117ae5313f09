"""The state after op A next to the state after op B (/s/{sid}/versus?a=&b=): each side's
files, frames, owners and the page map of one file, and what changed from A to B."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import RegistryDep
from app.errors import NotFound
from app.pages.common import not_found
from app.pages.render import respond
from app.pages.state import ViewState, to_int
from app.pages.view import View, load

router = APIRouter(include_in_schema=False)


def changes(a: View, b: View) -> list[str]:
    """What differs from A to B, in words."""
    out: list[str] = []
    fa = {f.info.fd: f for f in a.files}
    fb = {f.info.fd: f for f in b.files}
    for fd in sorted(fa.keys() | fb.keys()):
        x, y = fa.get(fd), fb.get(fd)
        if x is None and y is not None:
            out.append(f"{y.label}: made ({y.info.nr_pages:,} pages resident)")
        elif y is None and x is not None:
            out.append(f"{x.label}: closed")
        elif x is not None and y is not None:
            if x.info.size != y.info.size:
                out.append(f"{y.label}: size {x.info.size:,} → {y.info.size:,} bytes")
            if x.info.seals != y.info.seals:
                seals = ", ".join(y.info.seals) or "none"
                out.append(f"{y.label}: seals {', '.join(x.info.seals) or 'none'} → {seals}")
            if x.info.nr_pages != y.info.nr_pages:
                pa, pb = x.info.nr_pages, y.info.nr_pages
                out.append(f"{y.label}: {pa:,} → {pb:,} pages resident")
            if x.owners != y.owners:
                out.append(f"{y.label}: owners {', '.join(x.owners) or 'none'} → "
                           f"{', '.join(y.owners) or 'none'}")  # fmt: skip
    if a.phys.used != b.phys.used:
        out.append(f"frames in use: {a.phys.used:,} → {b.phys.used:,}")
    oa = {o.info.id: o.info for o in a.owners}
    for o in b.owners:
        old = oa.get(o.info.id)
        if old is None:
            out.append(f"owner {o.info.name} (owner {o.info.id}): made")
        elif (old.nmapped, old.nzapped) != (o.info.nmapped, o.info.nzapped):
            out.append(
                f"{o.info.name}: {old.nmapped:,} → {o.info.nmapped:,} gfns mapped, "
                f"{old.nzapped:,} → {o.info.nzapped:,} zapped"
            )
    if len(a.waiters) != len(b.waiters):
        out.append(f"operations asleep: {len(a.waiters)} → {len(b.waiters)}")
    return out


@router.get("/s/{sid}/versus", name="page_versus", response_class=HTMLResponse)
async def versus(
    request: Request, reg: RegistryDep, sid: Annotated[str, Path(max_length=128)]
) -> Response:
    q = request.query_params
    st = ViewState.from_query(sid, q).but(at=None, page=None, frame=None, walk=None, log=None)
    try:
        seq = reg.get(sid).seq
    except NotFound as exc:
        return not_found(request, exc.message)
    a = to_int(q.get("a"), 0, seq)
    b = to_int(q.get("b"), 0, seq)
    a = 0 if a is None else a
    b = seq if b is None else b
    try:
        va = await load(reg, st.but(at=a))
        vb = await load(reg, st.but(at=b))
    except NotFound as exc:
        return not_found(request, exc.message)
    ctx: dict[str, Any] = {"st": st, "a": a, "b": b, "seq": seq, "sides": (va, vb)}
    ctx["changes"] = changes(va, vb)
    alt = f"{st.api}/at/{a}"
    return respond(request, "versus.html", None, ctx, alternate=alt)
