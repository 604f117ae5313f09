"""Charts over the op log (/s/{sid}/charts): after each op, the resident pages, the frames
in use, the free blocks by order and the op's callbacks, replayed from the log (the first
MAX_OPS ops). A click on a chart moves the time cursor (the session previewed at that op);
a brushed range opens op A next to op B (static/sealscope.js)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import RegistryDep
from app.engine import Machine
from app.errors import NotFound
from app.pages.common import not_found
from app.pages.render import respond
from app.pages.state import ViewState
from app.service.replay import replay
from app.store import StoredOp

router = APIRouter(include_in_schema=False)
MAX_OPS = 20000  # ops replayed for the charts
POINTS = 800  # points a line keeps at most
W, H = 1000, 100  # the plot's viewBox


@dataclass
class Series:
    label: str
    values: list[int]
    cls: str = "s0"
    points: str = ""


@dataclass
class Chart:
    title: str
    series: list[Series]
    peak: int = 0
    data: str = ""  # the first series per op, for the readout (comma separated)
    log: bool = False  # a log scale (free blocks: 1 block of order 0 next to 256 of 10)


def metrics(m: Machine, ops: list[StoredOp]) -> dict[str, Any]:
    """After op 0 .. len(ops): resident pages, frames in use, free blocks by order,
    callbacks of each op."""
    resident, used, cbs = [0], [0], [0]
    orders: list[dict[int, int]] = [m.phys().free_by_order]
    for op in ops:
        before = m.event_count
        replay(m, [op], strict=False)
        evs = m.events(before, m.event_count - before, max_items=0)
        resident.append(sum(f.nr_pages for f in m.files()))
        phys = m.phys()
        used.append(phys.used)
        orders.append(phys.free_by_order)
        cbs.append(sum(e.ncallbacks for e in evs))
    return {"resident": resident, "used": used, "orders": orders, "callbacks": cbs}


def _points(values: list[int], peak: int, log: bool = False) -> str:
    n = len(values) - 1
    step = max(1, -(-len(values) // POINTS))

    def y(v: int) -> float:
        if not peak:
            return H
        share = math.log1p(v) / math.log1p(peak) if log else v / peak
        return H - (H - 4) * share

    out = []
    for i in range(0, len(values), step):
        x = W * i / n if n else 0
        out.append(f"{x:.1f},{y(max(values[i : i + step])):.1f}")
    if n and (len(values) - 1) % step:
        out.append(f"{W:.1f},{y(values[-1]):.1f}")
    return " ".join(out)


def charts(data: dict[str, Any]) -> list[Chart]:
    orders = sorted({o for d in data["orders"] for o, c in d.items() if c})
    free = [
        Series(f"order {o}", [d.get(o, 0) for d in data["orders"]], f"s{o % 6}") for o in orders
    ]
    out = [
        Chart("resident pages", [Series("resident pages", data["resident"])]),
        Chart("frames in use", [Series("frames in use", data["used"], "s1")]),
        Chart("free blocks by order", free or [Series("none", [0] * len(data["used"]))], log=True),
        Chart("callbacks per op", [Series("callbacks", data["callbacks"], "s3")]),
    ]
    for c in out:
        c.peak = max((max(s.values) for s in c.series), default=0)
        for s in c.series:
            s.points = _points(s.values, c.peak, c.log)
        c.data = ",".join(str(v) for v in c.series[0].values)
    return out


@router.get("/s/{sid}/charts", name="page_charts", response_class=HTMLResponse)
async def charts_page(
    request: Request, reg: RegistryDep, sid: Annotated[str, Path(max_length=128)]
) -> Response:
    st = ViewState.from_query(sid, request.query_params)
    try:
        s = reg.get(sid)
    except NotFound as exc:
        return not_found(request, exc.message)
    async with s.lock:
        ops, seq, config = list(s.ops[:MAX_OPS]), s.seq, s.config
    data = await reg.call(metrics, Machine(config), ops)
    ctx = {"st": st, "charts": charts(data), "n": len(ops), "seq": seq, "at": st.at}
    return respond(request, "charts.html", None, ctx, alternate=f"{st.api}/trace")
