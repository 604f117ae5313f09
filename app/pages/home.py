"""The home page: a new session, a guided walkthrough, a recent session, a trace import."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from app.deps import RegistryDep
from app.errors import NotFound, ServiceError
from app.models.sessions import SessionCreate
from app.pages.common import explain, first, read_form, recent_ids, remember
from app.pages.render import respond
from app.pages.state import PAGE, ViewState
from app.registry import Registry
from app.service import scenarios, sessions

router = APIRouter(include_in_schema=False)

MEMORIES = [
    (2**22, "4 MiB (1,024 frames)"),
    (2**26, "64 MiB"),
    (2**28, "256 MiB"),
    (2**30, "1 GiB (262,144 frames)"),
    (2**32, "4 GiB"),
    (2**34, "16 GiB"),
    (2**36, "64 GiB"),
]
DEFAULT_MEMORY = 2**30


def _ago(t: float) -> str:
    s = max(0, int(time.time() - t))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"


def _recent(reg: Registry, request: Request) -> list[dict[str, Any]]:
    out = []
    for sid in recent_ids(request):
        s = reg.sessions.get(sid)
        if s is None or s.closed:
            continue
        n_files = len(s.machine.files())
        out.append(
            {"id": sid, "profile": s.config.profile, "seq": s.seq, "files": n_files}
            | {"ago": _ago(s.active)}
        )
    return out


def _home(
    request: Request,
    reg: Registry,
    error: dict[str, Any] | None = None,
    status: int = 200,
    trace: str | None = None,
) -> HTMLResponse:
    """The home page; with `trace`, an import refused: the error shows at the import form,
    which keeps the pasted trace."""
    ctx = {
        "memories": MEMORIES,
        "default_memory": DEFAULT_MEMORY,
        "scenarios": scenarios.list_all().scenarios,
        "recent": _recent(reg, request),
        "error": None if trace is not None else error,
        "import_error": error if trace is not None else None,
        "trace_text": trace or "",
    }
    return respond(request, "home.html", None, ctx, alternate="/api/v1/scenarios", status=status)


@router.get("/", name="page_home", response_class=HTMLResponse)
async def home(request: Request, reg: RegistryDep) -> Response:
    return _home(request, reg)


async def _create(
    request: Request, reg: Registry, body: Any, walk: str | None = None, trace: str | None = None
) -> Response:
    try:
        created = await sessions.create(reg, SessionCreate.model_validate(body))
    except (ServiceError, ValidationError, ValueError) as exc:
        error, status = explain(exc, "session")
        return _home(request, reg, error, status, trace)
    at = 0 if walk and created.seq else None
    url = ViewState(created.id, walk=walk, at=at).url()
    resp = RedirectResponse(url, status_code=303)
    remember(resp, request, created.id)
    return resp


@router.post("/new", name="page_new")
async def new(request: Request, reg: RegistryDep) -> Response:
    form = await read_form(request)
    try:
        memory = int(first(form, "memory", str(DEFAULT_MEMORY)))
    except ValueError:
        memory = 0
    body = {
        "profile": first(form, "profile", "rfc-v2"),
        "phys_pages": memory // PAGE,
        "thp": first(form, "thp", "never"),
        "variants": form.get("variants", []),
    }
    return await _create(request, reg, body)


@router.post("/import", name="page_import")
async def import_trace(request: Request, reg: RegistryDep) -> Response:
    form = await read_form(request)
    text = first(form, "trace")
    try:
        trace = json.loads(text.strip())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, 4300+ digits, nesting
        why = str(exc).split("\n", 1)[0][:200]
        error, status = explain(ValueError(f"the trace is not JSON: {why}"), "import")
        return _home(request, reg, error, status, text)
    return await _create(request, reg, {"trace": trace}, trace=text)


@router.post("/walk/{name}", name="page_walk")
async def walk(
    request: Request, reg: RegistryDep, name: Annotated[str, Path(max_length=64)]
) -> Response:
    """A walkthrough: its trace replayed into a new session, shown from before op 1."""
    try:
        scenario = scenarios.get(name)
    except NotFound as exc:
        return _home(request, reg, explain(exc)[0], 404)
    return await _create(request, reg, {"trace": scenario.trace.model_dump()}, walk=name)
