"""The JSON API under /api/v1 (the contract: API.md)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.lean import LeanRoute
from app.models.common import ErrorBody

_E = {"model": ErrorBody}
# Every route may answer these (limits and schema misfits apply everywhere).
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {**_E, "description": "unknown session, fd (EBADF), owner or mapping"},
    409: {**_E, "description": "the simulated kernel refused (errno by name)"},
    413: {**_E, "description": "a size limit of the service"},
    422: {**_E, "description": "the request does not fit the schema"},
    429: {**_E, "description": "a count or rate limit of the service"},
}


def routers() -> list[APIRouter]:
    from app.api import (
        batch,
        compare,
        files,
        guest,
        history,
        kvm,
        kvm_coco,
        scenarios,
        sessions,
        views,
    )

    # the busiest first: routes are matched in order
    mods = (files, guest, kvm, kvm_coco, views, sessions, batch, scenarios, compare, history)
    return [m.router for m in mods]


def new_router(tag: str) -> APIRouter:
    """A module's router: the /api/v1 prefix and the error answers are set here."""
    return APIRouter(prefix="/api/v1", responses=ERRORS, tags=[tag], route_class=LeanRoute)
