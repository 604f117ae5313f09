"""A client over an in-process service (no server, no port): the app of this checkout or
of the full `sealscope` distribution, its store in `data`. This is the one part of the
package that needs the compiled engine (it runs it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal

from sealscope._async import AsyncClient
from sealscope.client import Client

BASE = "http://sealscope.local"


def _app(data: Path, settings: dict[str, Any]) -> Any:
    try:
        from app.main import create_app
        from app.settings import Settings
    except ImportError as exc:  # the client distribution alone: no engine here
        raise RuntimeError(
            f"an in-process sealscope needs the full distribution (the engine): {exc}; "
            "give a server's URL instead (--sealscope-url / SEALSCOPE_URL)"
        ) from exc
    # SEALSCOPE_* from the environment, then: its own store, no request log, no rate limit
    return create_app(
        Settings.from_env(**{"log_requests": False, "rate": 0, **settings}, data=data)
    )


def _no_stream(request: httpx.Request) -> None:
    """In-process transports read an answer whole: a live stream would never end."""
    if request.url.path.endswith("/events/stream"):
        raise RuntimeError(
            "follow() needs a server (an in-process service answers whole, and a live event "
            "stream never ends): give a URL, or read events(after=...) instead"
        )


class _AsgiTransport(httpx.ASGITransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        _no_stream(request)
        return await super().handle_async_request(request)


class _PortalTransport(httpx.BaseTransport):
    """Sync requests into an ASGI app running on an event loop in another thread (the
    answer is read whole: a live event stream needs a server or the AsyncClient)."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self.portal = portal
        self.inner = httpx.ASGITransport(app=app)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _no_stream(request)
        content = request.read()

        async def call() -> tuple[int, httpx.Headers, bytes]:
            req = httpx.Request(
                request.method, request.url, headers=request.headers, content=content
            )
            resp = await self.inner.handle_async_request(req)
            return resp.status_code, resp.headers, await resp.aread()

        status, headers, body = self.portal.call(call)
        return httpx.Response(status, headers=headers, content=body, request=request)


@contextmanager
def local_client(data: Path, **settings: Any) -> Iterator[Client]:
    """A Client of an app running in this process (its lifespan around the block)."""
    app = _app(data, settings)
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
        httpx.Client(transport=_PortalTransport(portal, app), base_url=BASE) as http,
    ):
        yield Client(http=http)


@asynccontextmanager
async def local_async_client(data: Path, **settings: Any) -> AsyncIterator[AsyncClient]:
    """An AsyncClient of an app running on this event loop."""
    app = _app(data, settings)
    async with app.router.lifespan_context(app):
        transport = _AsgiTransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as h:
            yield AsyncClient(http=h)
