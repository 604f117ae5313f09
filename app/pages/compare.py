"""Side-by-side pages: a session's log under two designs (/s/{sid}/diff), and against
this machine's kernel (/s/{sid}/kernel). Both replay the log; the session does not change.
JSON twins: POST /api/v1/sessions/{sid}/diff and …/compare."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import RegistryDep
from app.errors import NotFound, ServiceError
from app.models.compare import CompareRequest, Window
from app.pages.common import explain, not_found
from app.pages.render import respond
from app.pages.state import ViewState, to_int
from app.pages.timeline import args_text
from app.registry import Registry
from app.service import diff as diffs
from app.service import kernel
from app.service.play import DESIGNS, design_of

router = APIRouter(include_in_schema=False)
Sid = Annotated[str, Path(max_length=128)]
CHOICES = ["session", *DESIGNS]
PAGE_ROWS = 200


def default_pair(reg: Registry, sid: str) -> tuple[str, str]:
    """The session against the RFC as posted; an RFC session against today's kernel."""
    s = reg.get(sid)
    name, _ = design_of(s.config)
    return ("session", "guest-memfd") if name == "rfc-v2" else ("rfc-v2", "session")


def _window(request: Request) -> Window:
    q = request.query_params
    first = to_int(q.get("first"), 1, 2**31) or 1
    only = q.get("only") in ("1", "on", "true")
    return Window(first=first, limit=PAGE_ROWS, only_diverging=only)


def _labels(reg: Registry, sid: str) -> dict[str, str]:
    own = design_of(reg.get(sid).config)[1]
    return {"session": f"this session ({own})"} | {k: v[2] for k, v in DESIGNS.items()}


@router.get("/s/{sid}/diff", name="page_diff", response_class=HTMLResponse)
async def diff_page(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """The same log under two designs, op by op, divergences marked."""
    q = request.query_params
    try:
        da, db = default_pair(reg, sid)
    except NotFound as exc:
        return not_found(request, exc.message)
    a = q.get("a") if q.get("a") in CHOICES else da
    b = q.get("b") if q.get("b") in CHOICES else db
    win = _window(request)
    st = ViewState(sid)
    ctx: dict[str, Any] = {"st": st, "a": a, "b": b, "win": win, "error": None, "d": None}
    ctx |= {"choices": _labels(reg, sid), "args_text": args_text}
    status = 200
    try:
        ctx["d"] = await diffs.diff_designs(reg, sid, str(a), str(b), win)
    except NotFound as exc:
        return not_found(request, exc.message)
    except ServiceError as exc:
        ctx["error"], status = explain(exc, "diff")
    return respond(
        request, "diff.html", "_diff.html", ctx, alternate=f"{st.api}/diff", status=status
    )


@router.get("/s/{sid}/kernel", name="page_kernel", response_class=HTMLResponse)
async def kernel_page(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """The log against this machine's kernel, op by op."""
    win = _window(request)
    st = ViewState(sid)
    ctx: dict[str, Any] = {"st": st, "win": win, "error": None, "c": None, "args_text": args_text}
    status = 200
    try:
        req = CompareRequest(first=win.first, limit=win.limit, only_diverging=win.only_diverging)
        ctx["c"] = await kernel.compare(reg, sid, req)
    except NotFound as exc:
        return not_found(request, exc.message)
    except ServiceError as exc:
        ctx["error"], status = explain(exc, "compare")
    return respond(
        request, "kernel.html", "_kernel.html", ctx, alternate=f"{st.api}/compare", status=status
    )
