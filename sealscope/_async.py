"""The async twin of sealscope.client (the same methods, awaited): AsyncClient,
AsyncSession, AsyncBatch (`async with session.batch() as b`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from sealscope._batch import AsyncBatch
from sealscope._kvm import AsyncKvmOps, Req
from sealscope._wire import (
    API,
    ROUTES,
    SseEvent,
    SseParser,
    check,
    decode,
    drop_none,
    op_call,
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

__all__ = ["AsyncBatch", "AsyncClient", "AsyncSession"]


class AsyncClient:
    """`base_url` of a server, or `http`: any httpx.AsyncClient (e.g. one over an in-process
    app: sealscope.local)."""

    def __init__(
        self, base_url: str = "http://127.0.0.1:8000", *, http: httpx.AsyncClient | None = None
    ) -> None:
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(60.0))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.aclose()

    async def request(
        self, method: str, path: str, body: Any = None, **params: Any
    ) -> httpx.Response:
        q = {k: v for k, v in params.items() if v is not None}
        return await self.http.request(method, path, json=body, params=q or None)

    async def get(
        self, model: type[M], method: str, path: str, body: Any = None, **params: Any
    ) -> M:
        r = await self.request(method, path, body, **params)
        return decode(model, r.status_code, r.content)

    # -- sessions and walkthroughs ---------------------------------------------------
    async def create_session(
        self,
        profile: str | None = None,
        phys_pages: int | None = None,
        thp: str | None = None,
        variants: Sequence[str] | None = None,
    ) -> AsyncSession:
        body = drop_none(profile=profile, phys_pages=phys_pages, thp=thp, variants=variants)
        return AsyncSession(self, await self.get(SessionInfo, "POST", f"{API}/sessions", body))

    async def replay(self, trace: Trace | Json) -> AsyncSession:
        """A new session with every op of `trace` replayed (SealscopeError at the first
        one that does not end as the trace says)."""
        t = trace.model_dump(mode="json") if isinstance(trace, Trace) else trace
        return AsyncSession(
            self, await self.get(SessionInfo, "POST", f"{API}/sessions", {"trace": t})
        )

    async def session(self, sid: str) -> AsyncSession:
        """A handle on an existing session (SealscopeError ENOENT if there is none)."""
        return AsyncSession(self, await self.get(SessionDetail, "GET", f"{API}/sessions/{sid}"))

    async def scenarios(self) -> ScenarioList:
        return await self.get(ScenarioList, "GET", f"{API}/scenarios")

    async def scenario(self, name: str) -> Scenario:
        return await self.get(Scenario, "GET", f"{API}/scenarios/{name}")

    async def start_scenario(self, name: str, steps: int | None = 0) -> AsyncSession:
        path = f"{API}/scenarios/{name}/sessions"
        return AsyncSession(self, await self.get(SessionInfo, "POST", path, {"steps": steps}))


class AsyncSession(AsyncKvmOps):
    """One simulated machine. Each op method is one op of its log; `batch()` sends many
    together; `follow()` iterates its live events."""

    def __init__(self, client: AsyncClient, info: SessionInfo) -> None:
        self.client = client
        self.info = info
        self.id = info.id
        self.path = f"{API}/sessions/{info.id}"

    # -- any op, by name (the trace's shape) ------------------------------------------
    async def op(self, op: str, **args: Any) -> Any:
        """Run one op alone: its answer's model (None for 204), or SealscopeError."""
        call = op_call(self.id, op, args)
        r = await self.client.request(call.method, call.path, call.body)
        model = ROUTES[op].model
        if model is None:
            check(r.status_code, r.content)
            return None
        return decode(model, r.status_code, r.content)

    async def _kvm(self, req: Req[M]) -> M:
        path = f"{self.path}{req.path}"
        r = await self.client.request(req.method, path, req.body, **dict(req.params))
        return decode(req.model, r.status_code, r.content)

    async def _run(self, model: type[M], op: str, **args: Any) -> M:
        call = op_call(self.id, op, args)
        r = await self.client.request(call.method, call.path, call.body)
        return decode(model, r.status_code, r.content)

    async def ops(self, ops: Sequence[Json], stop_on_error: bool = False) -> BatchAnswer:
        """POST .../ops: up to 10,000 ops ({"op", "args"}) in one request."""
        body = {"ops": list(ops), "stop_on_error": stop_on_error}
        return await self.client.get(BatchAnswer, "POST", f"{self.path}/ops", body)

    def batch(self, stop_on_error: bool = False) -> AsyncBatch:
        return AsyncBatch(self, stop_on_error)

    # -- the session ----------------------------------------------------------------
    async def detail(self) -> SessionDetail:
        return await self.client.get(SessionDetail, "GET", self.path)

    async def delete(self) -> None:
        r = await self.client.request("DELETE", self.path)
        check(r.status_code, r.content)

    async def trace(self) -> Trace:
        return await self.client.get(Trace, "GET", f"{self.path}/trace")

    async def rewind(self, seq: int) -> SessionDetail:
        return await self.client.get(SessionDetail, "POST", f"{self.path}/rewind", {"seq": seq})

    async def at(self, n: int) -> SessionDetail:
        return await self.client.get(SessionDetail, "GET", f"{self.path}/at/{n}")

    async def diff(self, variant: str, **window: Any) -> Diff:
        body = {"variant": variant, **window}
        return await self.client.get(Diff, "POST", f"{self.path}/diff", body)

    async def compare(self, **window: Any) -> Comparison:
        """The log against this machine's kernel (first=, limit=, only_diverging=)."""
        return await self.client.get(Comparison, "POST", f"{self.path}/compare", window)

    # -- files ----------------------------------------------------------------------
    async def memfd_create(self, name: str = "vm0", flags: Sequence[str] = ()) -> File:
        return await self._run(File, "memfd_create", name=name, flags=list(flags))

    async def guest_memfd_create(self, size: int, flags: Sequence[str] = ()) -> File:
        return await self._run(File, "guest_memfd_create", size=size, flags=list(flags))

    async def file(self, fd: int) -> File:
        return await self.client.get(File, "GET", f"{self.path}/files/{fd}")

    async def ftruncate(self, fd: int, length: int) -> File:
        return await self._run(File, "ftruncate", fd=fd, length=length)

    async def add_seals(self, fd: int, seals: Sequence[str]) -> Seals:
        return await self._run(Seals, "fcntl", fd=fd, cmd="F_ADD_SEALS", seals=list(seals))

    async def get_seals(self, fd: int) -> Seals:
        return await self._run(Seals, "fcntl", fd=fd, cmd="F_GET_SEALS")

    async def fallocate(
        self, fd: int, offset: int, len: int, mode: Sequence[str] = ()
    ) -> FallocateAnswer:
        return await self._run(
            FallocateAnswer, "fallocate", fd=fd, mode=list(mode), offset=offset, len=len
        )

    async def punch_hole(self, fd: int, offset: int, len: int) -> FallocateAnswer:
        return await self.fallocate(
            fd, offset, len, ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
        )

    async def pread(self, fd: int, offset: int, count: int) -> PreadAnswer:
        return await self._run(PreadAnswer, "pread", fd=fd, offset=offset, count=count)

    async def pwrite(self, fd: int, offset: int, data: bytes) -> PwriteAnswer:
        import base64

        b64 = base64.b64encode(data).decode("ascii")
        return await self._run(PwriteAnswer, "pwrite", fd=fd, offset=offset, data_b64=b64)

    async def mmap(
        self,
        fd: int,
        length: int,
        offset: int = 0,
        prot: Sequence[str] = ("PROT_READ", "PROT_WRITE"),
        flags: Sequence[str] = ("MAP_SHARED",),
    ) -> Mapping:
        a = {"offset": offset, "length": length, "prot": list(prot), "flags": list(flags)}
        return await self._run(Mapping, "mmap", fd=fd, **a)

    async def munmap(self, map_id: int) -> None:
        await self.op("munmap", map_id=map_id)

    async def close(self, fd: int) -> None:
        await self.op("close", fd=fd)

    # -- the guest interface --------------------------------------------------------
    async def owner_create(self, name: str = "kvm0", kind: str = "kvm") -> Owner:
        return await self._run(Owner, "owner_create", name=name, kind=kind)

    async def owner(
        self, owner_id: str, start: int | None = None, limit: int | None = None
    ) -> OwnerDetail:
        path = f"{self.path}/owners/{owner_id}"
        return await self.client.get(OwnerDetail, "GET", path, start=start, limit=limit)

    async def register_guest(self, fd: int, owner_id: str | None) -> File:
        return await self._run(File, "register_guest", fd=fd, owner_id=owner_id)

    async def unregister_guest(self, fd: int, owner_id: str) -> File:
        return await self._run(File, "unregister_guest", fd=fd, owner_id=owner_id)

    async def get_lock_pfn(self, fd: int, index: int, alloc: bool = True) -> Pfn:
        return await self._run(Pfn, "get_lock_pfn", fd=fd, index=index, alloc=alloc)

    async def put_unlock_pfn(self, pfn: int) -> Unlocked:
        return await self._run(Unlocked, "put_unlock_pfn", pfn=pfn)

    async def migrate_page(self, pfn: int) -> Migrated:
        return await self._run(Migrated, "migrate_page", pfn=pfn)

    async def invalidate(self, fd: int, start: int, end: int) -> Callbacks:
        return await self._run(Callbacks, "invalidate", fd=fd, start=start, end=end)

    async def memslot_create(
        self, owner_id: str, fd: int, gfn: int, npages: int, index: int = 0
    ) -> Memslot:
        a = {"fd": fd, "gfn": gfn, "index": index, "npages": npages}
        return await self._run(Memslot, "memslot_create", owner_id=owner_id, **a)

    async def fault(self, owner_id: str, gfn: int) -> FaultAnswer:
        return await self._run(FaultAnswer, "fault", owner_id=owner_id, gfn=gfn)

    # -- views and events -----------------------------------------------------------
    async def pages(
        self, fd: int, start: int = 0, end: int | None = None, limit: int | None = None
    ) -> Pages:
        path = f"{self.path}/files/{fd}/pages"
        return await self.client.get(Pages, "GET", path, start=start, end=end, limit=limit)

    async def phys(self, start: int = 0, end: int | None = None, limit: int | None = None) -> Phys:
        return await self.client.get(
            Phys, "GET", f"{self.path}/phys", start=start, end=end, limit=limit
        )

    async def events(self, after: int = 0, limit: int | None = None) -> Events:
        return await self.client.get(Events, "GET", f"{self.path}/events", after=after, limit=limit)

    async def event_callbacks(
        self, seq: int, first: int = 0, count: int | None = None
    ) -> EventCallbacks:
        path = f"{self.path}/events/{seq}/callbacks"
        return await self.client.get(EventCallbacks, "GET", path, first=first, count=count)

    async def follow(self, after: int = 0, timeout: float | None = 60.0) -> AsyncIterator[SseEvent]:
        """The live event stream as an iterator: every event after `after`, then each as
        it comes ("message"), "rewind" when the past changed, and "end" (the last: the
        session was deleted or the service stops). `timeout`: seconds without a byte."""
        t = httpx.Timeout(timeout, connect=10.0)
        path = f"{self.path}/events/stream"
        async with self.client.http.stream("GET", path, params={"after": after}, timeout=t) as r:
            if r.status_code >= 400:
                await r.aread()
                check(r.status_code, r.content)
            parser = SseParser()
            async for line in r.aiter_lines():
                msg = parser.feed(line)
                if msg is not None:
                    yield msg
