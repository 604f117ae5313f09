"""The last resort: an exception no handler took answers 409 EIO here."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.engine import EngineError
from app.errors import engine_error_body, engine_status, internal_error_body, log_unexpected


class LastResort:
    """An exception no handler took answers 409 EIO here, below Starlette's
    ServerErrorMiddleware: that one answers and then re-raises to the server, which
    drops the connection (keep-alive lost). Innermost of the middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if started:
                raise  # half an answer is out: nothing better than to drop it
            if isinstance(exc, EngineError):
                body, status = engine_error_body(exc), engine_status(exc)
            else:
                log_unexpected(scope, exc)
                route = scope.get("route")
                body, status = internal_error_body(exc, getattr(route, "name", None)), 409
            await JSONResponse(body, status_code=status)(scope, receive, send)
