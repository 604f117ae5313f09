"""A typed client of the sealscope REST API (shared/API.md), on httpx; AsyncClient is
the same with `await`. Answers are the server's own pydantic models; every error answer
raises SealscopeError (errno name and value, op, message, status).

    with Client("http://127.0.0.1:8000") as c:
        s = c.create_session(profile="rfc-v2")
        f = s.memfd_create("vm0", ["MFD_ALLOW_SEALING"])
        with s.batch() as b:                      # one request for all of them
            b.add("ftruncate", fd=f.fd, length=8192)
            seals = b.add("fcntl", fd=f.fd, cmd="F_ADD_SEALS", seals=["F_SEAL_GUEST"])
        seals.value()                             # raises SealscopeError: EBUSY
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from sealscope._batch import Batch
from sealscope._kvm import KvmOps, Req
from sealscope._wire import (
    API,
    ROUTES,
    SealscopeError,
    Slot,
    SseEvent,
    check,
    decode,
    drop_none,
    op_call,
    sse_messages,
)
from sealscope.models.batch import BatchAnswer
from sealscope.models.compare import Comparison, Diff
from sealscope.models.files import FallocateAnswer, File, Mapping, PreadAnswer, PwriteAnswer, Seals
from sealscope.models.guest import FaultAnswer, Memslot, Migrated, Owner, OwnerDetail, Pfn, Unlocked
from sealscope.models.scenarios import Scenario, ScenarioList
from sealscope.models.sessions import Session as SessionInfo
from sealscope.models.sessions import SessionDetail, Trace
from sealscope.models.views import Callbacks, EventCallbacks, Events, Pages, Phys

M = TypeVar("M", bound=BaseModel)
Json = dict[str, Any]

__all__ = ["Batch", "Client", "SealscopeError", "Session", "Slot", "SseEvent"]


class Client:
    """`base_url` of a server, or `http`: any httpx.Client (e.g. one over an in-process
    app: sealscope.local)."""

    def __init__(
        self, base_url: str = "http://127.0.0.1:8000", *, http: httpx.Client | None = None
    ) -> None:
        self.http = http or httpx.Client(base_url=base_url, timeout=httpx.Timeout(60.0))

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: Any = None, **params: Any) -> httpx.Response:
        q = {k: v for k, v in params.items() if v is not None}
        return self.http.request(method, path, json=body, params=q or None)

    def get(self, model: type[M], method: str, path: str, body: Any = None, **params: Any) -> M:
        r = self.request(method, path, body, **params)
        return decode(model, r.status_code, r.content)

    # -- sessions and walkthroughs ---------------------------------------------------
    def create_session(
        self,
        profile: str | None = None,
        phys_pages: int | None = None,
        thp: str | None = None,
        variants: Sequence[str] | None = None,
    ) -> Session:
        body = drop_none(profile=profile, phys_pages=phys_pages, thp=thp, variants=variants)
        return Session(self, self.get(SessionInfo, "POST", f"{API}/sessions", body))

    def replay(self, trace: Trace | Json) -> Session:
        """A new session with every op of `trace` replayed (SealscopeError at the first
        one that does not end as the trace says)."""
        t = trace.model_dump(mode="json") if isinstance(trace, Trace) else trace
        return Session(self, self.get(SessionInfo, "POST", f"{API}/sessions", {"trace": t}))

    def session(self, sid: str) -> Session:
        """A handle on an existing session (SealscopeError ENOENT if there is none)."""
        return Session(self, self.get(SessionDetail, "GET", f"{API}/sessions/{sid}"))

    def scenarios(self) -> ScenarioList:
        return self.get(ScenarioList, "GET", f"{API}/scenarios")

    def scenario(self, name: str) -> Scenario:
        return self.get(Scenario, "GET", f"{API}/scenarios/{name}")

    def start_scenario(self, name: str, steps: int | None = 0) -> Session:
        path = f"{API}/scenarios/{name}/sessions"
        return Session(self, self.get(SessionInfo, "POST", path, {"steps": steps}))


class Session(KvmOps):
    """One simulated machine. Each op method is one op of its log; `batch()` sends many
    together; `follow()` iterates its live events."""

    def __init__(self, client: Client, info: SessionInfo) -> None:
        self.client = client
        self.info = info
        self.id = info.id
        self.path = f"{API}/sessions/{info.id}"

    # -- any op, by name (the trace's shape) ------------------------------------------
    def op(self, op: str, **args: Any) -> Any:
        """Run one op alone: its answer's model (None for 204), or SealscopeError."""
        call = op_call(self.id, op, args)
        r = self.client.request(call.method, call.path, call.body)
        model = ROUTES[op].model
        if model is None:
            check(r.status_code, r.content)
            return None
        return decode(model, r.status_code, r.content)

    def _kvm(self, req: Req[M]) -> M:
        r = self.client.request(req.method, f"{self.path}{req.path}", req.body, **dict(req.params))
        return decode(req.model, r.status_code, r.content)

    def _run(self, model: type[M], op: str, **args: Any) -> M:
        call = op_call(self.id, op, args)
        r = self.client.request(call.method, call.path, call.body)
        return decode(model, r.status_code, r.content)

    def ops(self, ops: Sequence[Json], stop_on_error: bool = False) -> BatchAnswer:
        """POST .../ops: up to 10,000 ops ({"op", "args"}) in one request."""
        body = {"ops": list(ops), "stop_on_error": stop_on_error}
        return self.client.get(BatchAnswer, "POST", f"{self.path}/ops", body)

    def batch(self, stop_on_error: bool = False) -> Batch:
        return Batch(self, stop_on_error)

    # -- the session ----------------------------------------------------------------
    def detail(self) -> SessionDetail:
        return self.client.get(SessionDetail, "GET", self.path)

    def delete(self) -> None:
        r = self.client.request("DELETE", self.path)
        check(r.status_code, r.content)

    def trace(self) -> Trace:
        return self.client.get(Trace, "GET", f"{self.path}/trace")

    def rewind(self, seq: int) -> SessionDetail:
        return self.client.get(SessionDetail, "POST", f"{self.path}/rewind", {"seq": seq})

    def at(self, n: int) -> SessionDetail:
        return self.client.get(SessionDetail, "GET", f"{self.path}/at/{n}")

    def diff(self, variant: str, **window: Any) -> Diff:
        body = {"variant": variant, **window}
        return self.client.get(Diff, "POST", f"{self.path}/diff", body)

    def compare(self, **window: Any) -> Comparison:
        """The log against this machine's kernel (first=, limit=, only_diverging=)."""
        return self.client.get(Comparison, "POST", f"{self.path}/compare", window)

    # -- files ----------------------------------------------------------------------
    def memfd_create(self, name: str = "vm0", flags: Sequence[str] = ()) -> File:
        return self._run(File, "memfd_create", name=name, flags=list(flags))

    def guest_memfd_create(self, size: int, flags: Sequence[str] = ()) -> File:
        return self._run(File, "guest_memfd_create", size=size, flags=list(flags))

    def file(self, fd: int) -> File:
        return self.client.get(File, "GET", f"{self.path}/files/{fd}")

    def ftruncate(self, fd: int, length: int) -> File:
        return self._run(File, "ftruncate", fd=fd, length=length)

    def add_seals(self, fd: int, seals: Sequence[str]) -> Seals:
        return self._run(Seals, "fcntl", fd=fd, cmd="F_ADD_SEALS", seals=list(seals))

    def get_seals(self, fd: int) -> Seals:
        return self._run(Seals, "fcntl", fd=fd, cmd="F_GET_SEALS")

    def fallocate(
        self, fd: int, offset: int, len: int, mode: Sequence[str] = ()
    ) -> FallocateAnswer:
        return self._run(
            FallocateAnswer, "fallocate", fd=fd, mode=list(mode), offset=offset, len=len
        )

    def punch_hole(self, fd: int, offset: int, len: int) -> FallocateAnswer:
        return self.fallocate(fd, offset, len, ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"])

    def pread(self, fd: int, offset: int, count: int) -> PreadAnswer:
        return self._run(PreadAnswer, "pread", fd=fd, offset=offset, count=count)

    def pwrite(self, fd: int, offset: int, data: bytes) -> PwriteAnswer:
        import base64

        b64 = base64.b64encode(data).decode("ascii")
        return self._run(PwriteAnswer, "pwrite", fd=fd, offset=offset, data_b64=b64)

    def mmap(
        self,
        fd: int,
        length: int,
        offset: int = 0,
        prot: Sequence[str] = ("PROT_READ", "PROT_WRITE"),
        flags: Sequence[str] = ("MAP_SHARED",),
    ) -> Mapping:
        a = {"offset": offset, "length": length, "prot": list(prot), "flags": list(flags)}
        return self._run(Mapping, "mmap", fd=fd, **a)

    def munmap(self, map_id: int) -> None:
        self.op("munmap", map_id=map_id)

    def close(self, fd: int) -> None:
        self.op("close", fd=fd)

    # -- the guest interface --------------------------------------------------------
    def owner_create(self, name: str = "kvm0", kind: str = "kvm") -> Owner:
        return self._run(Owner, "owner_create", name=name, kind=kind)

    def owner(
        self, owner_id: str, start: int | None = None, limit: int | None = None
    ) -> OwnerDetail:
        path = f"{self.path}/owners/{owner_id}"
        return self.client.get(OwnerDetail, "GET", path, start=start, limit=limit)

    def register_guest(self, fd: int, owner_id: str | None) -> File:
        return self._run(File, "register_guest", fd=fd, owner_id=owner_id)

    def unregister_guest(self, fd: int, owner_id: str) -> File:
        return self._run(File, "unregister_guest", fd=fd, owner_id=owner_id)

    def get_lock_pfn(self, fd: int, index: int, alloc: bool = True) -> Pfn:
        return self._run(Pfn, "get_lock_pfn", fd=fd, index=index, alloc=alloc)

    def put_unlock_pfn(self, pfn: int) -> Unlocked:
        return self._run(Unlocked, "put_unlock_pfn", pfn=pfn)

    def migrate_page(self, pfn: int) -> Migrated:
        return self._run(Migrated, "migrate_page", pfn=pfn)

    def invalidate(self, fd: int, start: int, end: int) -> Callbacks:
        return self._run(Callbacks, "invalidate", fd=fd, start=start, end=end)

    def memslot_create(
        self, owner_id: str, fd: int, gfn: int, npages: int, index: int = 0
    ) -> Memslot:
        a = {"fd": fd, "gfn": gfn, "index": index, "npages": npages}
        return self._run(Memslot, "memslot_create", owner_id=owner_id, **a)

    def fault(self, owner_id: str, gfn: int) -> FaultAnswer:
        return self._run(FaultAnswer, "fault", owner_id=owner_id, gfn=gfn)

    # -- views and events -----------------------------------------------------------
    def pages(
        self, fd: int, start: int = 0, end: int | None = None, limit: int | None = None
    ) -> Pages:
        path = f"{self.path}/files/{fd}/pages"
        return self.client.get(Pages, "GET", path, start=start, end=end, limit=limit)

    def phys(self, start: int = 0, end: int | None = None, limit: int | None = None) -> Phys:
        return self.client.get(Phys, "GET", f"{self.path}/phys", start=start, end=end, limit=limit)

    def events(self, after: int = 0, limit: int | None = None) -> Events:
        return self.client.get(Events, "GET", f"{self.path}/events", after=after, limit=limit)

    def event_callbacks(self, seq: int, first: int = 0, count: int | None = None) -> EventCallbacks:
        path = f"{self.path}/events/{seq}/callbacks"
        return self.client.get(EventCallbacks, "GET", path, first=first, count=count)

    def follow(self, after: int = 0, timeout: float | None = 60.0) -> Iterator[SseEvent]:
        """The live event stream as an iterator: every event after `after`, then each as
        it comes ("message"), "rewind" when the past changed, and "end" (the last: the
        session was deleted or the service stops). `timeout`: seconds without a byte."""
        t = httpx.Timeout(timeout, connect=10.0)
        path = f"{self.path}/events/stream"
        with self.client.http.stream("GET", path, params={"after": after}, timeout=t) as r:
            if r.status_code >= 400:
                r.read()
                check(r.status_code, r.content)
            yield from sse_messages(r.iter_lines())


from sealscope._async import AsyncClient, AsyncSession  # noqa: E402, F401
from sealscope._batch import AsyncBatch  # noqa: E402, F401
