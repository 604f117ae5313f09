"""What the sync and the async client share: the op table (each op of a session's log as
a REST call), the one exception, answer decoding, batches and the SSE parser. Nothing
here needs the compiled engine: the models are the server's own (app.models)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel

from sealscope.models.batch import MAX_BATCH_OPS, BatchAnswer, BatchResult
from sealscope.models.common import ErrorBody
from sealscope.models.files import FallocateAnswer, File, Mapping, PreadAnswer, PwriteAnswer, Seals
from sealscope.models.guest import FaultAnswer, Memslot, Migrated, Owner, Pfn, Unlocked
from sealscope.models.views import Callbacks

M = TypeVar("M", bound=BaseModel)
API = "/api/v1"


class SealscopeError(Exception):
    """An error answer of the service: the errno by name and value, the op that failed,
    the message (which rule refused), the HTTP status and the whole body."""

    def __init__(self, status: int, body: ErrorBody) -> None:
        super().__init__(f"{body.errno or status}: {body.op}: {body.message}")
        self.status = status
        self.errno = body.errno
        self.errno_value = body.errno_value
        self.op = body.op
        self.message = body.message
        self.limit = body.limit
        self.body = body


def error_of(status: int, content: bytes) -> SealscopeError:
    try:
        body = ErrorBody.model_validate_json(content)
    except ValueError:
        text = content[:300].decode("utf-8", "replace")
        body = ErrorBody(errno=None, errno_value=None, op=None, message=text or f"HTTP {status}")
    return SealscopeError(status, body)


class Route(NamedTuple):
    """An op of the log as a REST call: the ids its path takes from the args, the rest
    is the body; the answer's model (None: 204 or an answer without one here yet)."""

    method: str
    path: str  # under /api/v1/sessions/{sid}
    path_args: tuple[str, ...]
    model: type[BaseModel] | None


_F = "/files/{fd}/"
ROUTES: dict[str, Route] = {
    "memfd_create": Route("POST", "/memfds", (), File),
    "guest_memfd_create": Route("POST", "/guest_memfds", (), File),
    "ftruncate": Route("POST", _F + "ftruncate", ("fd",), File),
    "fcntl": Route("POST", _F + "fcntl", ("fd",), Seals),
    "fallocate": Route("POST", _F + "fallocate", ("fd",), FallocateAnswer),
    "pread": Route("POST", _F + "pread", ("fd",), PreadAnswer),
    "pwrite": Route("POST", _F + "pwrite", ("fd",), PwriteAnswer),
    "mmap": Route("POST", _F + "mmap", ("fd",), Mapping),
    "munmap": Route("DELETE", "/mappings/{map_id}", ("map_id",), None),
    "close": Route("POST", _F + "close", ("fd",), None),
    "owner_create": Route("POST", "/owners", (), Owner),
    "register_guest": Route("POST", _F + "register_guest", ("fd",), File),
    "unregister_guest": Route("POST", _F + "unregister_guest", ("fd",), File),
    "get_lock_pfn": Route("POST", _F + "get_lock_pfn", ("fd",), Pfn),
    "put_unlock_pfn": Route("POST", "/put_unlock_pfn", (), Unlocked),
    "migrate_page": Route("POST", "/migrate_page", (), Migrated),
    "invalidate": Route("POST", _F + "invalidate", ("fd",), Callbacks),
    "memslot_create": Route("POST", "/owners/{owner_id}/memslots", ("owner_id",), Memslot),
    "fault": Route("POST", "/owners/{owner_id}/fault", ("owner_id",), FaultAnswer),
    "vm_close": Route("DELETE", "/vms/{vm_id}", ("vm_id",), None),
}


class Call(NamedTuple):
    method: str
    path: str
    body: dict[str, Any] | None


def op_call(sid: str, op: str, args: dict[str, Any]) -> Call:
    """The REST call that runs `op` alone (ValueError for an op the client has no route
    for: send it in a batch, which takes every op name of the server)."""
    route = ROUTES.get(op)
    if route is None:
        raise ValueError(f"no REST route for op {op!r} here; use a batch")
    body = {k: v for k, v in args.items() if k not in route.path_args}
    path = route.path.format(**{k: args[k] for k in route.path_args})
    if route.method == "DELETE" or (not body and route.path.endswith("/close")):
        return Call(route.method, f"{API}/sessions/{sid}{path}", None)
    return Call(route.method, f"{API}/sessions/{sid}{path}", body)


def drop_none(**args: Any) -> dict[str, Any]:
    """Arguments as a body: those left at None are left out (the server's defaults)."""
    return {k: v for k, v in args.items() if v is not None}


def decode(model: type[M], status: int, content: bytes) -> M:
    if status >= 400:
        raise error_of(status, content)
    return model.model_validate_json(content)


def check(status: int, content: bytes) -> None:
    if status >= 400:
        raise error_of(status, content)


def decode_json(status: int, content: bytes) -> dict[str, Any]:
    """An answer the client has no model for (yet): the JSON object as it is."""
    if status >= 400:
        raise error_of(status, content)
    value = json.loads(content) if content else {}
    return value if isinstance(value, dict) else {"value": value}


class Slot(Generic[M]):
    """One op of a batch; its result once the batch has been sent."""

    def __init__(self, op: str, model: type[M] | None) -> None:
        self.op = op
        self.model = model
        self.result: BatchResult | None = None

    @property
    def sent(self) -> bool:
        return self.result is not None

    def value(self) -> M | None:
        """The op's answer (its model; None for a 204), or its SealscopeError raised."""
        r = self.result
        if r is None:
            raise RuntimeError(f"{self.op}: the batch has not been sent yet")
        if r.errno is not None or r.status >= 400:
            raise SealscopeError(r.status, ErrorBody.model_validate(r.answer))
        if self.model is None or r.answer is None:
            return None
        return self.model.model_validate(r.answer)


@dataclass
class Queue:
    """Ops gathered by a batch context manager, sent MAX_BATCH_OPS at a time."""

    stop_on_error: bool = False
    ops: list[dict[str, Any]] = field(default_factory=list)
    slots: list[Slot[Any]] = field(default_factory=list)
    answers: list[BatchAnswer] = field(default_factory=list)
    stopped: bool = False

    def add(self, op: str, args: dict[str, Any]) -> Slot[Any]:
        route = ROUTES.get(op)
        slot: Slot[Any] = Slot(op, route.model if route else None)
        self.ops.append({"op": op, "args": args})
        self.slots.append(slot)
        return slot

    def full(self) -> bool:
        return len(self.ops) >= MAX_BATCH_OPS

    def take(self) -> tuple[dict[str, Any], list[Slot[Any]]]:
        n = MAX_BATCH_OPS
        body = {"ops": self.ops[:n], "stop_on_error": self.stop_on_error}
        slots = self.slots[:n]
        del self.ops[:n], self.slots[:n]
        return body, slots

    def settle(self, answer: BatchAnswer, slots: list[Slot[Any]]) -> None:
        self.answers.append(answer)
        for slot, result in zip(slots, answer.results, strict=False):
            slot.result = result
        if answer.stopped_at is not None:
            self.stopped = True

    @property
    def results(self) -> list[BatchResult]:
        return [r for a in self.answers for r in a.results]


class SseEvent(NamedTuple):
    """One message of GET .../events/stream: `event` is "message" (data: an event, id its
    seq), "rewind" or "end"."""

    event: str
    data: Any
    id: str | None


class SseParser:
    """Lines of a text/event-stream in, messages out."""

    def __init__(self) -> None:
        self.event, self.data = "message", ""
        self.id: str | None = None

    def feed(self, line: str) -> SseEvent | None:
        if line.startswith("event:"):
            self.event = line[6:].strip()
        elif line.startswith("data:"):
            self.data += line[5:].strip()
        elif line.startswith("id:"):
            self.id = line[3:].strip()
        elif line == "":
            out = SseEvent(self.event, json.loads(self.data), self.id) if self.data else None
            self.event, self.data, self.id = "message", "", None
            return out
        return None


def sse_messages(lines: Iterable[str]) -> Iterator[SseEvent]:
    parser = SseParser()
    for line in lines:
        msg = parser.feed(line)
        if msg is not None:
            yield msg
