"""The app: create_app(settings) builds it; the lifespan owns the store and the registry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app import api, errors, pages
from app.middleware import Front
from app.ownership import ClaimSessions, claim_sessions, make_store
from app.registry import Registry
from app.routing import index_routes
from app.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = make_store(settings)
        registry = Registry(settings, store)
        await registry.start()
        app.state.registry = registry
        app.state.ownership = claim_sessions(registry)  # None but in a cluster's worker
        try:
            yield
        finally:
            await registry.stop()

    app = FastAPI(
        title="sealscope",
        version="1",
        summary="memfd F_SEAL_GUEST (RFC v2) and KVM guest_memfd, simulated",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc: app/pages/apidocs.py, from static/vendor/
        redoc_url=None,
        # no OpenTelemetry provider is configured; off, FastAPI skips its per-request
        # check of the global providers (and app/lean.py opens no spans)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    errors.install(app)
    for router in api.routers():
        # Routes straight on the app, not include_router: FastAPI 0.163 matches included
        # routers through a nested, per-request walk that costs ~0.2 ms a request.
        app.router.routes.extend(router.routes)
    app.router.routes.extend(pages.routes())
    index_routes(app.router)
    if settings.store != "sqlite":
        app.add_middleware(ClaimSessions)
    # the request log, cross-site refusal, rate and body limits, last resort: one layer
    app.add_middleware(Front, settings=settings)
    return app
