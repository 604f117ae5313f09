"""A leaner request path for the API's plain routes, with FastAPI's answers.

FastAPI solves a route's parameters in general: per request it walks dependencies,
headers, cookies and every parameter's annotation (is it a sequence? a Json? a model of
query parameters?) and opens two AsyncExitStacks; for the API's routes (path and query
scalars, one JSON body model, the Request, no dependencies) that general work was the
biggest part of what a request costs over a bare endpoint (bench/api.py, BENCHMARKS.md).

LeanRoute is an APIRoute (the same dependant, so the same OpenAPI document) that, when a
route has only such parameters, answers through `_lean_app`: the same steps as
fastapi.routing.get_request_handler and solve_dependencies in the same order, with every
per-route decision made once when the route is built. Anything else (dependencies,
headers, cookies, forms, streams, sequences, parameter models, several aliases, a custom
response class, no response model or no body) keeps FastAPI's own handler. Errors are FastAPI's:
the same RequestValidationError (its errors in the same order, the same locations), the
same HTTPException 400 from an unparsable body, the same ResponseValidationError; the
app's exception handlers answer them as before. tests/api/test_lean.py sends the same
requests, well-formed and not, to both paths of every route and compares the answers.

The app turns FastAPI's native OpenTelemetry off (app/main.py): it configures no
provider, and the lean path opens no telemetry spans.

This follows FastAPI's internals of the pinned version (pyproject.toml): an upgrade that
moves the private helpers imported here fails at import; one that changes what FastAPI
answers fails tests/api/test_lean.py, which holds the two paths to each other.
"""

from __future__ import annotations

import email.message
import inspect
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import params
from fastapi._compat import ModelField, Undefined
from fastapi._compat.shared import field_annotation_is_sequence
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.utils import _get_param_aliases, _get_param_model, _is_json_field
from fastapi.dependencies.utils import _validate_value_with_model_field as validate
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.routing import APIRoute, _extract_endpoint_context
from fastapi.utils import is_body_allowed_for_status_code
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Endpoint = Callable[..., Coroutine[Any, Any, Any]]


@dataclass(frozen=True)
class Param:
    """One path or query parameter, with what FastAPI decides about it per request."""

    name: str
    alias: str
    loc: tuple[str, str]
    field: ModelField


def _param(field: ModelField) -> Param | None:
    if (
        _get_param_model(field) is not None
        or _is_json_field(field)
        or field_annotation_is_sequence(field.field_info.annotation)
    ):
        return None  # none of the API's routes has such a parameter
    aliases = _get_param_aliases(field)
    if len(aliases) != 1:
        return None
    info = field.field_info
    if not isinstance(info, params.Param):
        return None
    alias = aliases[0][1]
    return Param(
        name=field.name,
        alias=alias,
        loc=(info.in_.value, alias),
        field=field,
    )


def _solve(
    plan: tuple[Param, ...], received: Any, values: dict[str, Any], errors: list[Any]
) -> None:
    # fastapi.dependencies.utils.request_params_to_args and _get_multidict_value, for
    # scalar parameters of one alias, no Json, no model (the rest keep FastAPI's handler)
    for p in plan:
        value = received.get(p.alias)
        if value is None:
            value = Undefined
        v, errs = validate(field=p.field, value=value, values=values, loc=p.loc)
        if errs:
            errors.extend(errs)
        else:
            values[p.name] = v


class LeanRoute(APIRoute):
    """An APIRoute answering through `_lean_app` where its parameters allow."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.fastapi_app = self.app  # FastAPI's own handler (tests compare the two)
        lean = self._lean_plan()
        if lean is not None:
            self.app = lean

    def _lean_plan(self) -> Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]] | None:
        d = self.dependant
        if (
            d.dependencies
            or d.header_params
            or d.cookie_params
            or d.http_connection_param_name
            or d.websocket_param_name
            or d.background_tasks_param_name
            or d.response_param_name
            or d.security_scopes_param_name
            or len(d.body_params) > 1
            or self._embed_body_fields
            or self.response_field is None
            or not is_body_allowed_for_status_code(self.status_code)
            or self.stream_item_field is not None
            or self.is_json_stream
            or not isinstance(self.response_class, DefaultPlaceholder)
            or not isinstance(self.strict_content_type, DefaultPlaceholder)
            or not inspect.iscoroutinefunction(d.call)
            or inspect.isasyncgenfunction(d.call)
        ):
            return None
        body = d.body_params[0] if d.body_params else None
        if body is not None and (
            isinstance(body.field_info, params.Form) or body is not self.body_field
        ):
            return None
        path_plan = tuple(_param(f) for f in d.path_params)
        query_plan = tuple(_param(f) for f in d.query_params)
        if any(p is None for p in path_plan + query_plan):
            return None
        assert d.call is not None
        return _lean_app(
            self,
            d.call,
            tuple(p for p in path_plan if p),
            tuple(p for p in query_plan if p),
            body,
        )


def _lean_app(
    route: LeanRoute,
    call: Endpoint,
    path_plan: tuple[Param, ...],
    query_plan: tuple[Param, ...],
    body_field: ModelField | None,
) -> Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]:
    request_name = route.dependant.request_param_name
    response_field = route.response_field
    assert response_field is not None
    status_code = route.status_code
    status_args: dict[str, Any] = {} if status_code is None else {"status_code": status_code}
    dependant_path = route.dependant.path

    def context(request: Request) -> Any:
        ctx = _extract_endpoint_context(call)
        if dependant_path:
            mount_path = request.scope.get("root_path", "").rstrip("/")
            ctx["path"] = f"{request.method} {mount_path}{dependant_path}"
        return ctx

    async def read_body(request: Request) -> Any:
        # fastapi.routing.get_request_handler's body step, strict content type
        try:
            body_bytes = await request.body()
            if not body_bytes:
                return Undefined
            content_type = request.headers.get("content-type")
            if content_type == "application/json":  # what email.message makes of it, quicker
                return await request.json()
            if content_type:
                message = email.message.Message()
                message["content-type"] = content_type
                if message.get_content_maintype() == "application":
                    subtype = message.get_content_subtype()
                    if subtype == "json" or subtype.endswith("+json"):
                        return await request.json()
            return body_bytes
        except json.JSONDecodeError as e:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", e.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": e.msg},
                    }
                ],
                body=e.doc,
                endpoint_ctx=context(request),
            ) from e
        except HTTPException:
            raise
        except Exception as e:
            raise HTTPException(
                status_code=400, detail="There was an error parsing the body"
            ) from e

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        body: Any = Undefined
        if body_field is not None:
            body = await read_body(request)
        values: dict[str, Any] = {}
        errors: list[Any] = []
        if path_plan:
            _solve(path_plan, request.path_params, values, errors)
        if query_plan:
            _solve(query_plan, request.query_params, values, errors)
        if body_field is not None:
            v, errs = validate(field=body_field, value=body, values={}, loc=("body",))
            if errs:
                errors.extend(errs)
            else:
                values[body_field.name] = v
        if request_name:
            values[request_name] = request
        if errors:
            raise RequestValidationError(
                errors, body=None if body is Undefined else body, endpoint_ctx=context(request)
            )
        raw = await call(**values)
        if isinstance(raw, Response):
            response = raw
        else:
            value, errs = response_field.validate(raw, {}, loc=("response",))
            if errs:
                raise ResponseValidationError(errors=errs, body=raw, endpoint_ctx=context(request))
            content = response_field.serialize_json(
                value,
                include=route.response_model_include,
                exclude=route.response_model_exclude,
                by_alias=route.response_model_by_alias,
                exclude_unset=route.response_model_exclude_unset,
                exclude_defaults=route.response_model_exclude_defaults,
                exclude_none=route.response_model_exclude_none,
            )
            response = Response(content=content, media_type="application/json", **status_args)
        await response(scope, receive, send)

    return app
