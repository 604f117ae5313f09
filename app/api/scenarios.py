"""The guided walkthroughs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from app.api import new_router
from app.models.sessions import Scenario, ScenarioList
from app.service import scenarios as svc

router = new_router("scenarios")


@router.get("/scenarios", name="scenarios")
async def scenarios() -> ScenarioList:
    return svc.list_all()


@router.get("/scenarios/{name}", name="scenario")
async def scenario(name: Annotated[str, Path(max_length=128)]) -> Scenario:
    """One walkthrough: its steps with notes, and the same as a trace to POST."""
    return svc.get(name)
