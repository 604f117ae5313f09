"""GET …/trace streamed: the log as the Trace model's JSON, built in chunks in a worker
thread, payloads read back from the store a chunk at a time. Memory holds one chunk
(at most CHUNK_OPS ops or about CHUNK_BYTES of payload), the event loop none of it.

The ops are those of the log when the request came; a rewind of the session during the
export (its later ops may then be other ops) or its deletion cuts the answer short, so
the client sees a broken download rather than a trace that never was.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio

from app.oplog import restore
from app.registry import Registry
from app.session import Session
from app.store import StoredOp

CHUNK_OPS = 512
CHUNK_BYTES = 1 << 20


def _dumps(value: Any) -> str:
    # as FastAPI renders a model: compact, UTF-8
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _bounds(ops: list[StoredOp]) -> list[tuple[int, int]]:
    """Chunks [i, j) of at most CHUNK_OPS ops and about CHUNK_BYTES of payload."""
    out, i, size = [], 0, 0
    for j, op in enumerate(ops, 1):
        size += json.loads(op.args)["data_bytes"] if op.elided else len(op.args)
        if j - i >= CHUNK_OPS or size >= CHUNK_BYTES:
            out.append((i, j))
            i, size = j, 0
    if i < len(ops):
        out.append((i, len(ops)))
    return out


def _chunk(s: Session, ops: list[StoredOp], i: int, j: int, rewinds: int) -> bytes:
    full = restore(ops[i:j], i, s.fetch)
    if s.closed or len(s.rewinds) != rewinds:
        raise RuntimeError("the session was rewound or deleted during the trace export")
    parts = [_dumps({"op": o.name, "args": json.loads(o.args), "errno": o.errno}) for o in full]
    return (b"," if i else b"") + ",".join(parts).encode()


async def trace(reg: Registry, sid: str) -> AsyncIterator[bytes]:
    """The trace of session sid, in chunks (NotFound before the first one)."""
    s = reg.get(sid)
    async with s.lock:
        ops = list(s.ops)  # light copies: some bytes an op
        rewinds = len(s.rewinds)
    config = s.config
    head = {
        "profile": config.profile,
        "phys_pages": config.phys_pages,
        "thp": config.thp,
        "variants": sorted(config.variants),
    }
    return _stream(s, ops, rewinds, _dumps(head)[:-1].encode() + b',"ops":[')


async def _stream(
    s: Session, ops: list[StoredOp], rewinds: int, head: bytes
) -> AsyncIterator[bytes]:
    yield head
    for i, j in await anyio.to_thread.run_sync(_bounds, ops):
        yield await anyio.to_thread.run_sync(_chunk, s, ops, i, j, rewinds)
    yield b"]}"
