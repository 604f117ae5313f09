"""Batches: many ops in one request, each answered as if sent alone."""

from __future__ import annotations

from fastapi import Request, Response

from app.api import new_router
from app.deps import SessionId, registry
from app.models.batch import BatchAnswer, BatchOps
from app.service.batch import CREATED, run_batch
from app.service.ops import OPS

router = new_router("sessions")


# The body is read raw and decoded in a worker thread (10,000 ops are a megabyte of JSON:
# decoding and validating it on the event loop would stall the other sessions).
_SCHEMA = BatchOps.model_json_schema(ref_template="#/components/schemas/{model}")
_SCHEMA.pop("$defs", None)  # TraceOp: in the components already (Trace)
_BODY = {"required": True, "content": {"application/json": {"schema": _SCHEMA}}}


@router.post(
    "/sessions/{sid}/ops",
    name="ops",
    response_model=BatchAnswer,
    openapi_extra={"requestBody": _BODY},
)
async def ops(request: Request, sid: SessionId) -> Response:
    """Up to 10,000 ops of the trace's shape, run in order, each logged and answered as if
    sent alone (`status`, `errno`, `answer`); durable (one transaction) before the
    answer. A malformed op is a 422 naming ops[i], and none runs; with `stop_on_error`
    the first failing op ends the batch (`stopped_at`)."""
    out = await run_batch(registry(request), sid, await request.body(), _created(request))
    return Response(out, media_type="application/json")


def _created(request: Request) -> frozenset[str]:
    """The ops whose own route answers 201 (found once per app by route name = op name),
    so a batch answers each op's status as its route would."""
    found: frozenset[str] | None = getattr(request.app.state, "batch_created", None)
    if found is None:
        routes = request.app.routes
        named = {r.name for r in routes if getattr(r, "status_code", None) == 201}
        found = CREATED | (named & set(OPS))
        request.app.state.batch_created = found
    return found
