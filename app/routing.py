"""First-match routing without walking every route.

Starlette (and FastAPI's router over it) finds a request's route by trying every route's
regex in order: with the ~50 routes of the API and the pages that walk was a tenth of a
request's cost (bench/api.py). A route's path can only match paths with as many "/" as
its own (no route here takes a `{name:path}` parameter), and, when its last segment is
literal, only paths ending in that segment. RouteIndex keeps, for each such shape, the
routes that can match it, in their order; a request tries those, the first full match
wins as in the full walk, and everything else (no full match: 405, redirects, 404;
websockets; mounts; telemetry) goes to the router's own walk unchanged.
"""

from __future__ import annotations

from collections import defaultdict

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

Shape = tuple[int, str | None]  # (number of "/", the literal last segment or None)


def _shape(route: BaseRoute) -> Shape | None:
    """The shape of paths `route` can match, or None when it may match any path."""
    if not isinstance(route, Route) or ":path}" in route.path:
        return None
    last = route.path.rsplit("/", 1)[1]
    return route.path.count("/"), (None if "{" in last else last)


class RouteIndex:
    """The router's dispatch, with a shortcut to the routes a path's shape allows."""

    def __init__(self, router: Router, full: ASGIApp) -> None:
        self.router = router
        self.full = full  # the router's own walk over every route
        any_path: list[tuple[int, BaseRoute]] = []
        exact: defaultdict[Shape, list[tuple[int, BaseRoute]]] = defaultdict(list)
        for i, route in enumerate(router.routes):
            shape = _shape(route)
            if shape is None:
                any_path.append((i, route))
            else:
                exact[shape].append((i, route))
        wild = {n: exact.get((n, None), []) for n, _ in exact}

        def merged(*groups: list[tuple[int, BaseRoute]]) -> list[BaseRoute]:
            return [route for _, route in sorted(x for g in groups for x in g)]

        self.exact = {
            s: merged(rs, wild[s[0]], any_path) for s, rs in exact.items() if s[1] is not None
        }
        self.wild = {n: merged(rs, any_path) for n, rs in wild.items()}
        self.any_path = merged(any_path)

    def candidates(self, path: str) -> list[BaseRoute]:
        """The routes that may match `path`, in the router's order."""
        n = path.count("/")
        found = self.exact.get((n, path.rsplit("/", 1)[1]))
        if found is not None:
            return found
        return self.wild.get(n, self.any_path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and not scope.get("root_path")
            and not scope.get("fastapi.telemetry")
        ):
            for route in self.candidates(scope["path"]):
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.setdefault("router", self.router)
                    scope.update(child_scope)
                    await route.handle(scope, receive, send)
                    return
        await self.full(scope, receive, send)


def index_routes(router: Router) -> None:
    """Put a RouteIndex in front of `router`'s walk; call once all routes are added."""
    router.middleware_stack = RouteIndex(router, router.middleware_stack)
