"""The last resort: an exception no handler took answers 409 EIO here."""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import Scope

from app.engine import EngineError
from app.errors import engine_error_body, engine_status, internal_error_body, log_unexpected


def last_resort(scope: Scope, exc: Exception) -> JSONResponse:
    """The answer to an exception no handler took: 409 EIO (an EngineError: its errno).
    Given below Starlette's ServerErrorMiddleware (by app/middleware.py's Front, for an
    answer not yet started): that one answers and then re-raises to the server, which
    drops the connection (keep-alive lost)."""
    if isinstance(exc, EngineError):
        body, status = engine_error_body(exc), engine_status(exc)
    else:
        log_unexpected(scope, exc)
        route = scope.get("route")
        body, status = internal_error_body(exc, getattr(route, "name", None)), 409
    return JSONResponse(body, status_code=status)
