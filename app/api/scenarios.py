"""The guided walkthroughs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request

from app.api import new_router
from app.deps import registry
from app.models.scenarios import Scenario, ScenarioList, ScenarioStart
from app.models.sessions import Session
from app.service import scenarios as svc

router = new_router("scenarios")
Name = Annotated[str, Path(max_length=128)]


@router.get("/scenarios", name="scenarios")
async def scenarios() -> ScenarioList:
    """The walkthroughs, with the settings each needs (profile, thp, variants)."""
    return svc.list_all()


@router.get("/scenarios/{name}", name="scenario")
async def scenario(name: Name) -> Scenario:
    """One walkthrough: each step's op, narration (note, rule, look), the answer it
    expects (errno, expect, callbacks) and the same step as a REST call; and all of it
    as a trace to POST to /api/v1/sessions."""
    return svc.get(name)


@router.post("/scenarios/{name}/sessions", status_code=201, name="scenario_start")
async def start(request: Request, name: Name, body: ScenarioStart | None = None) -> Session:
    """A new session with the walkthrough's settings, its first `steps` steps played
    (default 0: ready for step 1, whose REST call is steps[0].request)."""
    body = body or ScenarioStart()
    out = await svc.start(registry(request), name, body.steps)
    request.state.session = out.id[:8]
    return out
