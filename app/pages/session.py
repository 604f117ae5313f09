"""The session view (/s/{sid}) and its fragments, time travel (rewind), the "why?" of
an op, and deleting a session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.deps import RegistryDep
from app.errors import NotFound, ServiceError
from app.pages.common import (
    Outcome,
    explain,
    first,
    not_found,
    read_form,
    state_of,
    view_response,
    walk_of,
)
from app.pages.render import is_htmx, respond
from app.pages.state import ViewState, to_int
from app.pages.timeline import args_text
from app.pages.view import load
from app.service import redo as redo_svc
from app.service import room, sessions
from app.service.ops import parse
from app.service.replay import apply
from app.session import Session
from app.store import StoredOp

router = APIRouter(include_in_schema=False)
Sid = Annotated[str, Path(max_length=128)]

# fragment name -> (template, JSON twin under the session's API path)
PARTS = {
    "files": ("_files.html", ""),
    "pagemap": ("_pagemap.html", "/files/{fd}/pages?start={start}&end={end}"),
    "framemap": ("_framemap.html", "/phys?start={fstart}&end={fend}"),
    "owners": ("_owners.html", ""),
    "timeline": ("_timeline.html", "/events"),
    "timetravel": ("_timetravel.html", "/trace"),
    "vm": ("_vm.html", "/vms/{vm_id}"),
}


@router.get("/s/{sid}", name="page_session", response_class=HTMLResponse)
async def session_page(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """The session: files, page map, frame map, owners, timeline, time travel, actions."""
    st = ViewState.from_query(sid, request.query_params)
    if request.query_params.get("goto"):  # "go to page" (G): the map zooms to it
        st = st.go_to()
        return await view_response(request, reg, st, headers={"HX-Push-Url": st.url()})
    return await view_response(request, reg, st)


@router.get("/s/{sid}/{part}", name="page_part", response_class=HTMLResponse)
async def session_part(request: Request, reg: RegistryDep, sid: Sid, part: str) -> Response:
    """One panel of the session view (htmx), or the whole page showing the same state."""
    if part not in PARTS:
        return not_found(request, f"no such view {part[:40]!r}")
    st = ViewState.from_query(sid, request.query_params)
    if not is_htmx(request):
        return await view_response(request, reg, st)
    try:
        v = await load(reg, st)
    except NotFound as exc:
        return not_found(request, exc.message)
    template, twin = PARTS[part]
    pages, frames = v.pages, v.frames
    alt = v.state.api + twin.format(
        fd=v.file.info.fd if v.file else 0,
        start=pages.start if pages else 0,
        end=pages.end if pages else 0,
        fstart=frames.start,
        fend=frames.end,
        vm_id=v.vm.info.id if v.vm else 0,
    )
    if (part == "pagemap" and v.file is None) or (part == "vm" and v.vm is None):
        alt = v.state.api
    ctx = {"v": v, "walk": walk_of(v.state.walk), "outcome": None, "oob": False}
    return respond(request, "session.html", template, ctx | {"view_oob": False}, alternate=alt)


def _rerun(s: Session, n: int) -> tuple[StoredOp, Exception | None]:
    """Op n (with its payload, read from the store) run again on the state after op
    n - 1: the op and how it failed, if it did."""
    logged = s.full_ops(n - 1, n)[0]
    machine = s.machine_at(n - 1)
    try:
        spec, parsed = parse(logged.name, logged.args_dict())
    except ValueError as exc:
        return logged, exc
    return logged, apply(machine, spec, parsed).error


@router.get("/s/{sid}/why/{n}", name="page_why", response_class=HTMLResponse)
async def why(
    request: Request, reg: RegistryDep, sid: Sid, n: Annotated[int, Path(ge=0, le=2**62)]
) -> Response:
    """Why op n ended as it did: the log replayed up to n - 1, then op n run again (the
    engine is deterministic), its refusal in words with the rule behind it."""
    try:
        s = reg.get(sid)
    except NotFound as exc:
        return not_found(request, exc.message)
    async with s.lock:
        if not 1 <= n <= s.seq:
            return not_found(request, f"no op {n} in this session (it has {s.seq})")
        # a temporary machine, counted; the replay and the op again run off the loop
        with room.machines(reg, 1, s.config.phys_pages, "why"):
            logged, failed = await reg.call(_rerun, s, n)
    name, args = logged.name, logged.args_dict()
    error, note = None, "it did not fail"
    if failed is not None:
        error = explain(failed, name)[0]
    st = ViewState(sid)
    ctx = {"n": n, "error": error, "note": note, "call": f"{name}({args_text(args)})"}
    alt = f"{st.api}/trace"
    return respond(request, "why.html", "_why.html", ctx | {"back": st.url()}, alternate=alt)


@router.post("/s/{sid}/rewind", name="page_rewind", response_class=HTMLResponse)
async def rewind(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """Back to the state after op `seq`, for good (undo is seq - 1)."""
    form = await read_form(request)
    st = state_of(sid, form).but(at=None, log=None)
    n = to_int(first(form, "seq"), 0, 2**62)
    outcome = Outcome(call=f"rewind(seq={first(form, 'seq')[:20]})")
    status = 200
    try:
        if n is None:
            raise ValueError("seq: not an op number")
        detail = await sessions.rewind(reg, sid, n)
        outcome.summary = f"the state after op {detail.seq}; later ops left the log"
    except NotFound as exc:
        return not_found(request, exc.message)
    except (ServiceError, ValueError) as exc:
        outcome.error, status = explain(exc, "rewind")
    if not is_htmx(request):
        return RedirectResponse(st.url(), status_code=303)
    return await view_response(request, reg, st, outcome=outcome, status=status)


@router.post("/s/{sid}/redo", name="page_redo", response_class=HTMLResponse)
async def redo(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    """Replay the op the last undo (or rewind) took out, as a new op of the log."""
    form = await read_form(request)
    st = state_of(sid, form).but(at=None, log=None)
    outcome = Outcome(call="redo()")
    status = 200
    try:
        detail = await redo_svc.redo(reg, sid)
        outcome.summary = f"op {detail.seq} is back in the log ({detail.redo} more to redo)"
    except NotFound as exc:
        return not_found(request, exc.message)
    except ServiceError as exc:
        outcome.error, status = explain(exc, "redo")
    if not is_htmx(request):
        return RedirectResponse(st.url(), status_code=303)
    return await view_response(request, reg, st, outcome=outcome, status=status)


@router.post("/s/{sid}/delete", name="page_delete")
async def delete(request: Request, reg: RegistryDep, sid: Sid) -> Response:
    try:
        await sessions.delete(reg, sid)
    except NotFound as exc:
        return not_found(request, exc.message)
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": "/"})
    return RedirectResponse("/", status_code=303)
