"""A batch of ops in one request (POST /api/v1/sessions/{sid}/ops).

Each op goes through the same handler, limits and log as when sent alone, and gets the
answer it would have had (status, errno, body). The whole batch is validated first (a
malformed op is a 422 naming ops[i], and nothing runs), then run under the session's lock
in a worker thread, in slices of at most ~50 ms, so the event loop serves the other
sessions meanwhile. Its ops are stored in ONE transaction before the answer: a batch is
durable all or nothing (SIGKILL before the commit leaves none of it in the store, after
it every op); live event streams see its events once they are stored.
"""

from __future__ import annotations

import errno as errno_mod
import json
import logging
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import anyio
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.engine import EngineError
from app.errors import (
    BadTrace,
    ServiceError,
    TooLarge,
    TooMany,
    Unavailable,
    engine_error_body,
    engine_status,
)
from app.models.batch import MAX_BATCH_OPS, BatchHead
from app.registry import Registry
from app.service.batch_answers import FAST, Memo
from app.service.ops import OpSpec, parse
from app.service.replay import describe
from app.service.runner import spawn_snapshot
from app.session import Session
from app.settings import Settings
from app.store import StoredOp

log = logging.getLogger("sealscope.batch")

# seconds of engine work a trip to a worker thread (the event loop runs meanwhile: it
# takes the GIL every sys.getswitchinterval(), 5 ms; slices bound what one trip holds)
SLICE = 0.05
# ops answered 201 whose route has another name than the op (api/batch.py adds the rest)
CREATED = frozenset(
    {"memfd_create", "guest_memfd_create", "mmap", "owner_create", "memslot_create"}
)


@dataclass
class Run:
    """What a batch has done so far (filled in by the worker thread)."""

    items: list[bytes] = field(default_factory=list)  # each result as JSON
    stored: list[StoredOp] = field(default_factory=list)
    stopped_at: int | None = None
    created: frozenset[str] = frozenset()  # ops whose success is 201 Created
    memo: Memo = field(default_factory=dict)  # batch_answers' fixed parts of answers


class Parsed(NamedTuple):
    ops: list[tuple[OpSpec, BaseModel]]
    stop_on_error: bool


_HEAD = TypeAdapter(BatchHead)


def _validate(raw: bytes) -> Parsed:
    """The request body, decoded and validated whole (in the worker thread, by _start):
    a misfit of the body is FastAPI's 422, a bad op a 422 naming ops[i]."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        err = {"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error"}
        raise RequestValidationError(
            [{**err, "input": {}, "ctx": {"error": str(exc)[:200]}}]
        ) from exc
    ops = data.get("ops") if isinstance(data, dict) else None
    stop = data.get("stop_on_error", False) if isinstance(data, dict) else None
    fits = type(stop) is bool and isinstance(ops, list) and all(type(o) is dict for o in ops)
    if not fits or len(data) > 1 + ("stop_on_error" in data):  # the schema's own errors
        try:
            head = _HEAD.validate_python(data)
            ops, stop = head.ops, head.stop_on_error
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
            ) from exc
    assert isinstance(ops, list)
    n = len(ops)
    if n > MAX_BATCH_OPS:
        raise TooLarge(
            f"the batch has {n} ops, past the limit max_batch_ops={MAX_BATCH_OPS}",
            op="ops",
            limit="max_batch_ops",
        )
    parsed = []
    for i, t in enumerate(ops):
        name = t.get("op")
        args = t.get("args", {})
        try:
            if not isinstance(name, str) or len(name) > 64:
                raise ValueError("op: a string of at most 64 characters is needed")
            if not isinstance(args, dict):
                raise ValueError("args: an object is needed")
            parsed.append(parse(name, args))
        except (ValidationError, ValueError) as exc:
            label = name[:64] if isinstance(name, str) else "?"
            raise BadTrace(f"ops[{i}] ({label}): {describe(exc)}", op="ops") from exc
    return Parsed(parsed, bool(stop))


def _error(exc: Exception, name: str) -> tuple[int, dict[str, object]]:
    """The status and body the op would have answered alone (app/errors.py's handlers)."""
    if isinstance(exc, EngineError):
        return engine_status(exc), engine_error_body(exc)
    if isinstance(exc, ServiceError):
        return exc.status, exc.body()
    if isinstance(exc, ValueError):
        msg = str(exc)[:500] or "invalid value"
        return 422, {"errno": "EINVAL", "errno_value": errno_mod.EINVAL, "op": name, "message": msg}
    log.error("batch op %s failed: %r", name, exc)
    msg = f"internal error ({type(exc).__name__}); see the service log"
    return 409, {"errno": "EIO", "errno_value": errno_mod.EIO, "op": name, "message": msg}


def _item(seq: int | None, status: int, errno: str | None, answer: bytes) -> bytes:
    e = b"null" if errno is None else json.dumps(errno).encode()
    s = b"null" if seq is None else str(seq).encode()
    return b'{"seq":%s,"errno":%s,"status":%d,"answer":%s}' % (s, e, status, answer)


def _json(model: BaseModel) -> bytes:
    return type(model).__pydantic_serializer__.to_json(model)


def _failed(run: Run, seq: int | None, exc: Exception, name: str) -> None:
    status, body = _error(exc, name)
    run.items.append(
        _item(seq, status, str(body["errno"]), json.dumps(body, separators=(",", ":")).encode())
    )


def _run_slice(
    settings: Settings,
    session: Session,
    parsed: list[tuple[OpSpec, BaseModel]],
    start: int,
    stop_on_error: bool,
    run: Run,
) -> int:
    """Run ops from `start` for about SLICE seconds (in a worker thread, under the session
    lock); the index to go on from (len(parsed) when done). The per-op path of
    runner.execute and replay.apply, unrolled: it is most of a batch's time."""
    m = session.machine
    items, stored, push = run.items, run.stored, session.push
    deadline = time.perf_counter() + SLICE
    for i in range(start, len(parsed)):
        spec, args = parsed[i]
        error: Exception | None = None
        if spec.check is not None:
            try:
                spec.check(settings, m, args)
            except Exception as exc:
                _failed(run, None, exc, spec.name)
                if stop_on_error:
                    run.stopped_at = i
                    return len(parsed)
                continue
        before = m.event_count
        fast = FAST.get(spec.name)  # the answer as bytes, built from the engine's values
        try:
            result = fast(m, args, run.memo) if fast is not None else spec.handler(m, args)
        except Exception as exc:  # every failure is an answer
            result, error = None, exc
        after = m.event_count
        seq = None
        if after != before:  # the engine recorded it: an op of the log
            seq = len(session.ops) + 1
            errno = None
            if error is not None:  # as replay.Outcome.errno has it
                errno = error.name if isinstance(error, EngineError) else type(error).__name__
            dumped = type(args).__pydantic_serializer__.to_json(args).decode()
            op = StoredOp(seq, spec.name, dumped, errno, after)
            push(op)
            stored.append(op)
        if error is not None:
            _failed(run, seq, error, spec.name)
            if stop_on_error:
                run.stopped_at = i
                return len(parsed)
        elif result is None:
            items.append(_item(seq, 204, None, b"null"))
        elif seq is not None:  # the common case, formatted in place
            status = 201 if spec.name in run.created else 200
            if isinstance(result, bytes):  # built by FAST
                answer = result
            else:
                answer = type(result).__pydantic_serializer__.to_json(result)
            items.append(b'{"seq":%d,"errno":null,"status":%d,"answer":%s}' % (seq, status, answer))
        else:  # answered without an event: not an op (no handler does so today)
            answer = result if isinstance(result, bytes) else _json(result)
            items.append(_item(None, 201 if spec.name in run.created else 200, None, answer))
        if time.perf_counter() > deadline:
            return i + 1
    return len(parsed)


def _start(raw: bytes, settings: Settings, session: Session, run: Run) -> tuple[Parsed, int]:
    """Validate the whole batch, check the log's room, and run the first slice: one trip
    to a worker thread (under load, each trip waits for the scheduler)."""
    batch = _validate(raw)
    n = len(batch.ops)
    if session.seq + n > settings.max_ops:
        raise TooMany(
            f"the session has {session.seq} ops; {n} more is past the limit "
            f"max_ops={settings.max_ops}",
            op="ops",
            limit="max_ops",
        )
    return batch, _run_slice(settings, session, batch.ops, 0, batch.stop_on_error, run)


async def run_batch(
    reg: Registry, sid: str, raw: bytes, created: frozenset[str] = CREATED
) -> bytes:
    """Run a batch (the request body, BatchOps); the answer (BatchAnswer) as JSON bytes.
    `created`: the ops whose route answers 201."""
    session = reg.get(sid)
    run = Run(created=created)
    async with session.lock:
        reg.get(sid)  # still there
        before = session.seq
        first = session.machine.event_count + 1
        # Once the engine is entered, the batch is run and stored even if the client goes.
        with anyio.CancelScope(shield=True):
            try:
                batch, i = await anyio.to_thread.run_sync(_start, raw, reg.settings, session, run)
            except (ServiceError, RequestValidationError):
                raise  # refused whole: nothing ran
            except Exception:
                log.exception("session %s: batch failed; undoing it", sid[:8])
                await _undo(reg, session, before)
                raise
            try:
                while i < len(batch.ops):
                    i = await anyio.to_thread.run_sync(
                        _run_slice, reg.settings, session, batch.ops, i, batch.stop_on_error, run
                    )
            except Exception:  # a bug, not an op's failure: leave no half batch behind
                log.exception("session %s: batch failed at op %d; undoing it", sid[:8], i)
                await _undo(reg, session, before)
                raise
            # a batch's events may be many: read them in a worker thread (views.py)
            session.mark_big(first, session.machine.event_count)
            if run.stored:
                await _store(reg, session, before, run.stored)
        event_seq = session.machine.event_count
    stopped = b"null" if run.stopped_at is None else b"%d" % run.stopped_at
    tail = b'],"seq":%d,"event_seq":%d,"stopped_at":%s}' % (session.seq, event_seq, stopped)
    return b'{"results":[' + b",".join(run.items) + tail


async def _store(reg: Registry, session: Session, before: int, ops: list[StoredOp]) -> None:
    try:
        await reg.store.append_many(session.id, ops, time.time())
    except Exception as exc:
        log.exception("session %s: batch not stored; undoing it", session.id[:8])
        await _undo(reg, session, before)
        raise Unavailable(
            "the op log could not be written; the batch was undone", op="ops"
        ) from exc
    session.notify()
    spawn_snapshot(reg, session)


async def _undo(reg: Registry, session: Session, before: int) -> None:
    """Back to the state after op `before` (the batch's ops leave the log)."""
    machine = await reg.call(session.machine_at, before)
    session.truncate(before, machine)
    session.notify()
