"""Shared by the page routes: refusals in words, form bodies, the session view response."""

from __future__ import annotations

import errno as errno_mod
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from app.engine import EngineError
from app.errors import NotFound, ServiceError, engine_error_body, engine_status
from app.models.scenarios import Scenario
from app.pages.render import is_htmx, respond
from app.pages.rules import hazard, rule
from app.pages.state import ViewState
from app.pages.timeline import OpRow
from app.pages.view import View, load
from app.registry import Registry
from app.service import scenarios
from app.service.replay import describe

Form = dict[str, list[str]]
RECENT = "sealscope_recent"
_SID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass
class Outcome:
    call: str
    summary: str = ""
    error: dict[str, Any] | None = None
    row: OpRow | None = None
    guest: dict[str, Any] | None = None  # a vCPU exit as the guest's request (guest_play)


def explain(exc: Exception, op: str | None = None) -> tuple[dict[str, Any], int]:
    """The API's error body for `exc`, plus the rule behind it; and the HTTP status."""
    if isinstance(exc, EngineError):
        body = engine_error_body(exc)
        body["rule"] = rule(exc.op, exc.name, str(body.get("message", "")))
        body["hazard"] = hazard(exc.hazard) if exc.hazard else None
        return body, engine_status(exc)
    if isinstance(exc, ServiceError):
        return {**exc.body(), "rule": None, "hazard": None}, exc.status
    message = describe(exc) if isinstance(exc, ValidationError) else str(exc)[:300]
    body = {"errno": "EINVAL", "errno_value": errno_mod.EINVAL, "op": op, "message": message}
    return {**body, "rule": None, "hazard": None}, 422


async def read_form(request: Request) -> Form:
    raw = (await request.body()).decode("utf-8", "replace")
    return parse_qs(raw, keep_blank_values=True)


def first(form: Form, key: str, default: str = "") -> str:
    values = form.get(key)
    return values[0] if values else default


def state_of(sid: str, form: Form) -> ViewState:
    return ViewState.from_query(sid, {k: v[0] for k, v in form.items() if v})


def walk_of(name: str | None) -> Scenario | None:
    if not name:
        return None
    try:
        return scenarios.get(name)
    except NotFound:
        return None


def remember(response: Response, request: Request, sid: str) -> None:
    """Keep the session among this browser's recent ones (a cookie, never listed to others)."""
    old = [s for s in request.cookies.get(RECENT, "").split(".") if _SID.match(s) and s != sid]
    value = ".".join([sid, *old][:8])
    response.set_cookie(RECENT, value, max_age=30 * 86400, httponly=True, samesite="lax")


def recent_ids(request: Request) -> list[str]:
    return [s for s in request.cookies.get(RECENT, "").split(".") if _SID.match(s)][:8]


def alternate(v: View) -> str:
    st = v.state
    return st.api if not v.preview else f"{st.api}/at/{v.shown}"


def not_found(request: Request, message: str) -> HTMLResponse:
    error = {"errno": "ENOENT", "errno_value": errno_mod.ENOENT, "op": None, "message": message}
    ctx = {"error": {**error, "rule": None, "hazard": None}}
    return respond(request, "missing.html", "_error.html", ctx, status=404)


async def view_response(
    request: Request,
    reg: Registry,
    st: ViewState,
    *,
    outcome: Outcome | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
    with_result: bool = False,
    op_seq: int | None = None,
) -> HTMLResponse:
    """The session page, or (htmx) the #view fragment; `with_result` adds #result (an
    action's answer) with #view swapped out of band."""
    try:
        v = await load(reg, st)
    except NotFound as exc:
        return not_found(request, exc.message)
    if outcome is not None and op_seq is not None:
        outcome.row = next((r for r in v.rows if r.n == op_seq), None)
    frag = is_htmx(request)
    ctx = {"v": v, "walk": walk_of(v.state.walk), "outcome": outcome, "oob": frag}
    ctx |= {"view_oob": frag and with_result, "result_oob": frag and not with_result}
    fragment = "_answer.html" if with_result or outcome is not None else "_view.html"
    out_headers = {"HX-Push-Url": v.state.url()} if request.method == "POST" else {}
    out_headers |= headers or {}
    resp = respond(
        request,
        "session.html",
        fragment,
        ctx,
        alternate=alternate(v),
        status=status,
        headers=out_headers,
    )
    if request.method == "GET" and "hx-request" not in request.headers:
        remember(resp, request, st.sid)
    return resp
