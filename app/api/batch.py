"""Batches: many ops in one request, each answered as if sent alone."""

from __future__ import annotations

from fastapi import Request, Response

from app.api import new_router
from app.deps import SessionId, registry
from app.models.batch import BatchAnswer, BatchOps
from app.service.batch import run_batch

router = new_router("sessions")


@router.post("/sessions/{sid}/ops", name="ops", response_model=BatchAnswer)
async def ops(request: Request, sid: SessionId, body: BatchOps) -> Response:
    """Up to 10,000 ops of the trace's shape, run in order, each logged and answered as if
    sent alone (`status`, `errno`, `answer`); durable (one transaction) before the
    answer. A malformed op is a 422 naming ops[i], and none runs; with `stop_on_error`
    the first failing op ends the batch (`stopped_at`)."""
    return Response(await run_batch(registry(request), sid, body), media_type="application/json")
