"""One error shape for the whole API, and the handlers that produce it.

EngineError (the simulated kernel said no) -> 409, or 404 for EBADF and ENOENT (no
such fd, owner or mapping);
ServiceError (unknown session / owner / mapping, limits, bad traces) -> its status;
RequestValidationError -> 422 with a clear message and FastAPI's `detail`;
ValueError from the engine (an enum name it does not know) -> 422;
anything else -> logged, and answered 409 EIO rather than 500.
"""

from __future__ import annotations

import errno as errno_mod
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import Scope

from app import redact
from app.engine import EngineError

log = logging.getLogger("sealscope.errors")


class ServiceError(Exception):
    """A failure of the service itself (not of the simulated kernel)."""

    status = 409
    errno_name: str | None = None

    def __init__(
        self, message: str, *, op: str | None = None, limit: str | None = None, status: int = 0
    ) -> None:
        super().__init__(message)
        self.message = message
        self.op = op
        self.limit = limit
        if status:
            self.status = status

    def body(self) -> dict[str, Any]:
        name = self.errno_name
        body: dict[str, Any] = {
            "errno": name,
            "errno_value": getattr(errno_mod, name) if name else None,
            "op": self.op,
            "message": self.message,
        }
        if self.limit:
            body["limit"] = self.limit
        return body


class NotFound(ServiceError):
    status = 404
    errno_name = "ENOENT"


class Conflict(ServiceError):
    status = 409
    errno_name = "ERANGE"


class BadTrace(ServiceError):
    """A trace refused whole: the message names the first bad op and why."""

    status = 422
    errno_name = "EINVAL"


class TooLarge(ServiceError):
    status = 413
    errno_name = "E2BIG"


class TooMany(ServiceError):
    status = 429
    errno_name = "EAGAIN"


class StoreFailed(ServiceError):
    """The store could not write (503; ENOSPC for a full disk): nothing changed."""

    status = 503
    errno_name = "EIO"

    def __init__(self, what: str, exc: Exception, *, op: str | None = None) -> None:
        super().__init__(f"{what}: {exc}", op=op)
        if getattr(exc, "full", False):
            self.errno_name = "ENOSPC"


class ReadOnly(ServiceError):
    """A damaged session: readable, exportable, deletable, never changed."""

    status = 409
    errno_name = "EROFS"


def check_writable(damage: str | None, op: str) -> None:
    if damage is not None:
        raise ReadOnly(
            f"the session is damaged and read only ({damage}); export its trace or delete it",
            op=op,
        )


class Unavailable(ServiceError):
    status = 503
    errno_name = "EIO"


def engine_error_body(exc: EngineError) -> dict[str, Any]:
    body: dict[str, Any] = {
        "errno": exc.name,
        "errno_value": exc.errno,
        "op": exc.op,
        "message": exc.message,
    }
    if getattr(exc, "hazard", None):
        body["hazard"] = exc.hazard
    if getattr(exc, "seq", None) is not None:
        body["seq"] = exc.seq
    if getattr(exc, "error_offset", None) is not None:
        body["error_offset"] = exc.error_offset  # KVM_SET_MEMORY_ATTRIBUTES2's EAGAIN
    return body


def engine_status(exc: EngineError) -> int:
    """404 for what does not exist (an fd: EBADF; an owner: ENOENT; a mapping: munmap's
    EINVAL), 409 for every other refusal of the simulated kernel."""
    if exc.name in ("EBADF", "ENOENT") or (exc.op == "munmap" and exc.name == "EINVAL"):
        return 404
    return 409


def _clean(value: Any, depth: int = 0) -> Any:
    """Validation error parts made JSON-safe and short (inputs can be anything)."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**64 else str(value)
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "..."
    if isinstance(value, bytes):
        return _clean(value.decode("utf-8", "replace"), depth)
    if depth < 3 and isinstance(value, list | tuple):
        return [_clean(v, depth + 1) for v in list(value)[:20]]
    if depth < 3 and isinstance(value, dict):
        return {str(k)[:100]: _clean(v, depth + 1) for k, v in list(value.items())[:20]}
    return _clean(repr(value), depth)


def validation_body(exc: RequestValidationError, op: str | None) -> dict[str, Any]:
    detail = [
        {k: _clean(v) for k, v in err.items() if k in ("type", "loc", "msg", "input", "ctx")}
        for err in list(exc.errors())[:50]
    ]
    parts = []
    for err in detail[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    message = "; ".join(parts) or "the request does not fit the schema"
    return {
        "errno": "EINVAL",
        "errno_value": errno_mod.EINVAL,
        "op": op,
        "message": message,
        "detail": detail,
    }


def not_json_body(cause: BaseException, op: str | None) -> dict[str, Any]:
    """The 422 EINVAL body of a request body that is not JSON at all."""
    why = str(cause).split("\n", 1)[0][:200]
    return {
        "errno": "EINVAL",
        "errno_value": errno_mod.EINVAL,
        "op": op,
        "message": f"the body is not JSON the service can read ({type(cause).__name__}: {why})",
        "detail": [{"type": "json_invalid", "loc": ["body"], "msg": why}],
    }


def allowed_methods(request: Request) -> str:
    """Every method some route of the request's path answers (Starlette's 405 names only
    the first route that matched the path)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(request.url.path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def _op_of(request: Request) -> str | None:
    route = request.scope.get("route")
    return getattr(route, "name", None)


def install(app: FastAPI) -> None:
    """Register every handler on the app."""

    @app.exception_handler(EngineError)
    async def _engine(request: Request, exc: EngineError) -> JSONResponse:
        return JSONResponse(engine_error_body(exc), status_code=engine_status(exc))

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": "1"} if exc.status == 429 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(validation_body(exc, _op_of(request)), status_code=422)

    @app.exception_handler(ValueError)
    async def _value(request: Request, exc: ValueError) -> JSONResponse:
        if isinstance(exc, EngineError):  # an EngineError that is also a ValueError
            return JSONResponse(engine_error_body(exc), status_code=engine_status(exc))
        body = {
            "errno": "EINVAL",
            "errno_value": errno_mod.EINVAL,
            "op": _op_of(request),
            "message": str(exc)[:500] or "invalid value",
        }
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI could not parse the body (not UTF-8, nested past the parser's
            # depth, an integer of more than 4300 digits): a schema misfit, 422 EINVAL
            return JSONResponse(not_json_body(exc.__cause__, _op_of(request)), status_code=422)
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": allowed_methods(request)}
        names = {404: "ENOENT", 405: "EOPNOTSUPP", 413: "E2BIG", 429: "EAGAIN"}
        name = names.get(exc.status_code)
        body = {
            "errno": name,
            "errno_value": getattr(errno_mod, name) if name else None,
            "op": _op_of(request),
            "message": str(exc.detail),
        }
        return JSONResponse(body, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def _last_resort(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, EngineError):
            return JSONResponse(engine_error_body(exc), status_code=engine_status(exc))
        log_unexpected(request.scope, exc)
        return JSONResponse(internal_error_body(exc, _op_of(request)), status_code=409)


def log_unexpected(scope: Scope, exc: BaseException) -> None:
    method, path = scope.get("method"), redact.path(scope.get("path", ""))
    log.error("unexpected error on %s %s", method, path, exc_info=exc)


def internal_error_body(exc: BaseException, op: str | None) -> dict[str, Any]:
    return {
        "errno": "EIO",
        "errno_value": errno_mod.EIO,
        "op": op,
        "message": f"internal error ({type(exc).__name__}); see the service log",
    }
