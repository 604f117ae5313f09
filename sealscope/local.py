"""A client over an in-process service (no server, no port): the app of this checkout or
of the full `sealscope` distribution, its store in `data`. This is the one part of the
package that needs the compiled engine (it runs it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx

from sealscope._async import AsyncClient
from sealscope.client import Client


def _app(data: Path, settings: dict[str, Any]) -> Any:
    try:
        from app.main import create_app
        from app.settings import Settings
    except ImportError as exc:  # the client distribution alone: no engine here
        raise RuntimeError(
            f"an in-process sealscope needs the full distribution (the engine): {exc}; "
            "give a server's URL instead (--sealscope-url / SEALSCOPE_URL)"
        ) from exc
    return create_app(Settings(data=data, **{"log_requests": False, "rate": 0, **settings}))


@contextmanager
def local_client(data: Path, **settings: Any) -> Iterator[Client]:
    """A Client of an app running in this process (its lifespan around the block)."""
    from starlette.testclient import TestClient

    with TestClient(_app(data, settings), base_url="http://sealscope.local") as http:
        yield Client(http=http)


@asynccontextmanager
async def local_async_client(data: Path, **settings: Any) -> AsyncIterator[AsyncClient]:
    """An AsyncClient of an app running on this event loop."""
    app = _app(data, settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sealscope.local") as h:
            yield AsyncClient(http=h)
