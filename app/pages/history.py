"""The history screen (/history): one guest story in each design side by side, op by
op, where they part, and for each change of design the review argument behind it.
?chapter= marks a chapter (the URL is shareable); its JSON twin is /api/v1/history."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.deps import RegistryDep
from app.pages.render import respond
from app.pages.timeline import args_text
from app.service import history as svc
from app.service.history_story import CHAPTERS

router = APIRouter(include_in_schema=False)


@router.get("/history", name="page_history", response_class=HTMLResponse)
async def history(request: Request, reg: RegistryDep) -> Response:
    h = await svc.history(reg)
    keys = {k for k, _ in CHAPTERS}
    chapter = request.query_params.get("chapter")
    ctx = {"h": h, "chapter": chapter if chapter in keys else None, "args_text": args_text}
    return respond(request, "history.html", "history.html", ctx, alternate="/api/v1/history")
