"""A batch of ops in one request: POST /api/v1/sessions/{sid}/ops."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from app.models.common import examples
from app.models.sessions import TraceOp

MAX_BATCH_OPS = 10_000

_OPS = [
    {"op": "memfd_create", "args": {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}},
    {"op": "ftruncate", "args": {"fd": 3, "length": 8192}},
    {"op": "fcntl", "args": {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}},
]


class BatchOps(BaseModel):
    """Ops of the trace's shape (`{"op", "args"}`; a trace op's `errno` is ignored), run in
    order, each as if sent alone. At most 10,000 (413 beyond). With `stop_on_error`, the
    first op that fails ends the batch: the ops after it are not run."""

    ops: list[TraceOp]
    stop_on_error: bool = False
    model_config = examples({"ops": _OPS, "stop_on_error": False})


class BatchHead(BaseModel):
    """BatchOps as the service first reads it: each op is then parsed by its own
    arguments' model (a misfit names ops[i])."""

    ops: list[dict[str, Any]]
    stop_on_error: bool = False


class BatchResult(BaseModel):
    """One op's answer as if it had been sent alone: `status` its HTTP status, `errno`
    null on success, `answer` the route's answer (null for 204) or the error body. `seq`
    is its place in the log, null when it was refused before the engine (not an op)."""

    seq: int | None
    errno: str | None = None
    status: int = 200
    answer: Any = None
    model_config = examples(
        {"seq": 1, "errno": None, "status": 201, "answer": {"fd": 3, "kind": "memfd"}}
    )


class BatchAnswer(BaseModel):
    """`seq`: ops in the session's log after the batch; `event_seq`: engine events.
    `stopped_at`: with stop_on_error, the index of the op that failed (the results end
    there)."""

    results: list[BatchResult]
    seq: int
    event_seq: int
    stopped_at: int | None = None
    model_config = examples(
        {
            "results": [
                {"seq": 1, "errno": None, "status": 201, "answer": {"fd": 3}},
                {
                    "seq": 2,
                    "errno": "EBUSY",
                    "status": 409,
                    "answer": {
                        "errno": "EBUSY",
                        "errno_value": 16,
                        "op": "F_ADD_SEALS",
                        "message": "F_SEAL_GUEST needs an empty file (size is 8192)",
                    },
                },
            ],
            "seq": 2,
            "event_seq": 2,
            "stopped_at": None,
        }
    )
