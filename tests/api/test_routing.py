"""The route index picks the route the router's full walk would pick, for every route and
for paths that almost match; what it cannot decide goes to the full walk."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.routing import BaseRoute, Match, Route

from app.main import create_app
from app.routing import RouteIndex
from app.settings import Settings

APP = create_app(Settings(log_requests=False, rate=0))
INDEX = APP.router.middleware_stack
METHODS = ("GET", "POST", "DELETE", "PUT", "HEAD")


def _paths() -> list[str]:
    """Each route's path with its parameters filled, and near misses of it."""
    out = {"/", "/nope", "/api/v1", "/api/v1/", "/static/app.css", "/api/v1/sessions/x/files"}
    for route in APP.router.routes:
        path = getattr(route, "path", None)
        if not path:
            continue
        for fill in ("abc", "3", "-1", "files", "events", "%2F"):
            p = re.sub(r"\{[^}]+\}", fill, path)
            out |= {p, p + "/", p + "/extra", p.rsplit("/", 1)[0] + "/zzz"}
    return sorted(out)


def _first_full(routes: list[BaseRoute], scope: dict[str, object]) -> BaseRoute | None:
    for route in routes:
        match, _ = route.matches(dict(scope))
        if match is Match.FULL:
            return route
    return None


def test_the_index_is_in_front_of_the_router() -> None:
    assert isinstance(INDEX, RouteIndex)
    assert any(isinstance(r, Route) for r in INDEX.candidates("/api/v1/sessions"))


def test_the_index_picks_the_full_walks_route() -> None:
    assert isinstance(INDEX, RouteIndex)
    paths = _paths()
    assert len(paths) > 500
    for path in paths:
        candidates = INDEX.candidates(path)
        assert candidates == [r for r in APP.router.routes if r in candidates], path
        for method in METHODS:
            scope = {"type": "http", "path": path, "method": method, "root_path": ""}
            picked = _first_full(candidates, scope)
            assert picked is _first_full(APP.router.routes, scope), (method, path)


def test_every_route_is_reachable_through_the_index() -> None:
    assert isinstance(INDEX, RouteIndex)
    for route in APP.router.routes:
        if isinstance(route, Route):
            path = re.sub(r"\{[^}]+\}", "1", route.path)
            assert route in INDEX.candidates(path), route.path


@pytest.mark.anyio
async def test_misses_still_answer_as_the_router_does(client: httpx.AsyncClient) -> None:
    """405 with Allow, 404, and the trailing-slash redirect come from the full walk."""
    r = await client.put("/api/v1/sessions")
    assert r.status_code == 405
    assert "POST" in r.headers["allow"]
    r = await client.get("/api/v1/nothing/here")
    assert r.status_code == 404
    assert r.json()["errno"] == "ENOENT"
    r = await client.get("/api/v1/scenarios/", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"].endswith("/api/v1/scenarios")
