"""The lean request path (app/lean.py) answers what FastAPI's own handler answers.

Two apps over their own stores: one as built (its plain routes lean), one with every
LeanRoute back on FastAPI's handler. Both get the same requests in the same order, so
their deterministic engines stay in step; every answer (status, headers, body, with the
two session ids written alike) must be the same. The requests: schemathesis's generated
cases for every lean operation (valid and schema-breaking), and hand-made hostile ones
for each lean route (bad JSON, no or a foreign content type, bytes that are no UTF-8,
wrong path types, repeated and unknown query parameters)."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Query, Request
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from app.lean import LeanRoute
from app.routing import RouteIndex
from app.settings import Settings
from tests.api.helpers import running
from tests.budget import DERANDOMIZE, examples

API = "/api/v1/sessions"


def _plain(app: FastAPI) -> None:
    """Every LeanRoute of app back on FastAPI's own handler."""
    # the route objects are the modules' routers' own, shared by every app: copies
    routes = app.router.routes
    for i, route in enumerate(routes):
        if isinstance(route, LeanRoute):
            plain = copy.copy(route)
            plain.app = route.fastapi_app
            routes[i] = plain
    index = app.router.middleware_stack
    assert isinstance(index, RouteIndex)
    app.router.middleware_stack = RouteIndex(app.router, index.full)


@asynccontextmanager
async def _app(data: Path, lean: bool) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with running(Settings(data=data, log_requests=False, rate=0)) as (app, client):
        if not lean:
            _plain(app)
        yield app, client


def _lean_routes(app: FastAPI) -> list[LeanRoute]:
    return [r for r in app.router.routes if isinstance(r, LeanRoute) and r.app is not r.fastapi_app]


class Pair:
    """The two apps, each with a session set up alike; `send` compares their answers."""

    def __init__(self, a: httpx.AsyncClient, b: httpx.AsyncClient) -> None:
        self.a, self.b = a, b
        self.sids: tuple[str, str] = ("", "")
        self.compared = 0

    async def setup(self) -> None:
        a = (await self.a.post(API, json={"phys_pages": 4096})).json()["id"]
        b = (await self.b.post(API, json={"phys_pages": 4096})).json()["id"]
        self.sids = (a, b)
        steps: list[tuple[str, dict[str, Any]]] = [
            ("/memfds", {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}),
            ("/files/3/fcntl", {"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}),
            ("/files/3/ftruncate", {"length": 1 << 16}),
            ("/owners", {"kind": "kvm", "name": "kvm0"}),
            ("/files/3/register_guest", {"owner_id": "0"}),
            ("/owners/0/memslots", {"fd": 3, "gfn": 0, "npages": 16}),
            ("/files/3/fallocate", {"mode": [], "offset": 0, "len": 16384}),
            ("/memfds", {"name": "shared", "flags": []}),
            ("/files/4/ftruncate", {"length": 1 << 16}),
            (
                "/files/4/mmap",
                {"offset": 0, "length": 8192, "prot": ["PROT_READ"], "flags": ["MAP_SHARED"]},
            ),
            ("/vms", {"name": "vm1"}),
        ]
        for path, body in steps:
            status = await self.send(
                "POST",
                "{SID}" + path,
                content=json.dumps(body).encode(),
                headers={"content-type": "application/json"},
            )
            assert status < 300, path

    def _same(self, text: str, sid: str) -> str:
        # the set-up session's id, and those of sessions a request made (random, 32 chars)
        return re.sub(r'"[A-Za-z0-9_-]{32}"', '"ID"', text.replace(sid, "SID"))

    async def send(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> int:
        answers = []
        for c, sid in ((self.a, self.sids[0]), (self.b, self.sids[1])):
            r = await c.request(
                method,
                path.replace("{SID}", f"{API}/{sid}" if path.startswith("{SID}") else sid),
                content=content,
                headers=headers,
                params=params,
            )
            hs = {k: v for k, v in r.headers.items() if k not in ("date", "x-request-id")}
            body = self._same(r.content.decode("utf-8", "replace"), sid)
            answers.append((r.status_code, hs, body))
        (sa, ha, ba), (sb, hb, bb) = answers
        where = f"{method} {path} {content!r:.200} {headers} {params}"
        assert sa == sb, where
        assert ba == bb, where
        if ha.get("content-length") != hb.get("content-length"):
            assert len(ba) != len(bb) or ha == hb, where  # the ids may differ in length
        assert {k: v for k, v in ha.items() if k != "content-length"} == {
            k: v for k, v in hb.items() if k != "content-length"
        }, where
        self.compared += 1
        return sa


@asynccontextmanager
async def _pair(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, Pair]]:
    async with _app(tmp_path / "a", True) as (app, a), _app(tmp_path / "b", False) as (_, b):
        pair = Pair(a, b)
        await pair.setup()
        yield app, pair


def _fill(path: str, value: str) -> str:
    path = path.replace("{sid}", "{SID}")
    return re.sub(r"\{(?!SID\})[^}]+\}", value, path)


HOSTILE_BODIES: list[tuple[bytes | None, dict[str, str]]] = [
    (None, {}),
    (b"", {"content-type": "application/json"}),
    (b"{}", {"content-type": "application/json"}),
    (b"[]", {"content-type": "application/json"}),
    (b"null", {"content-type": "application/json"}),
    (b'{"offset": ', {"content-type": "application/json"}),
    (b"not json", {"content-type": "application/json"}),
    (b'{"a": 1}', {"content-type": "text/plain"}),
    (b'{"a": 1}', {}),
    (b'{"index": 1}', {"content-type": "application/vnd.x+json; charset=utf-8"}),
    (b"\xff\xfe{}", {"content-type": "application/json"}),
    (b"[" * 5000 + b"]" * 5000, {"content-type": "application/json"}),
    (b'{"len": ' + b"9" * 5000 + b"}", {"content-type": "application/json"}),
    (b'{"fd": 3, "offset": -1, "len": 1.5, "mode": ["X"]}', {"content-type": "application/json"}),
    (b'{"gfn": "1", "index": true, "pfn": null}', {"content-type": "application/json"}),
]
PATH_VALUES = ["3", "0", "-1", "abc", "99999999999999999999999", "%00", "1.5", "x" * 200]
QUERIES: list[Any] = [
    None,
    {"start": "abc"},
    [("start", "1"), ("start", "2"), ("end", "0")],
    {"after": "-5", "limit": "0"},
    {"limit": "100000000"},
    {"unknown": "1", "offset": "x"},
    {"start": "0", "end": "16", "width": "nope"},
]


@pytest.mark.anyio
async def test_every_plain_api_route_is_lean(tmp_path: Path) -> None:
    async with _app(tmp_path / "a", True) as (app, _):
        lean = _lean_routes(app)
        hot = {r.name for r in lean}
        assert {"fallocate", "get_lock_pfn", "put_unlock_pfn", "fault", "pages", "file"} <= hot
        assert len(lean) > 40
        for route in app.router.routes:
            if isinstance(route, LeanRoute) and route not in lean:
                # what stays on FastAPI's handler has a reason to
                assert (
                    route.response_field is None
                    or route.path.endswith("/stream")
                    or (route.dependant.dependencies or route.dependant.header_params)
                ), route.path


@pytest.mark.anyio
async def test_hostile_requests_answer_alike(tmp_path: Path) -> None:
    async with _pair(tmp_path) as (app, pair):
        statuses: set[int] = set()
        for route in _lean_routes(app):
            for method in sorted(route.methods or ()):
                for value in PATH_VALUES[: 3 if "{" not in route.path.replace("{sid}", "") else 8]:
                    path = _fill(route.path, value)
                    if method == "GET":
                        for q in QUERIES:
                            statuses.add(await pair.send(method, path, params=q))
                    else:
                        for content, headers in HOSTILE_BODIES:
                            statuses.add(
                                await pair.send(method, path, content=content, headers=headers)
                            )
                # an unknown session
                statuses.add(
                    await pair.send(method, _fill(route.path, "3").replace("{SID}", "nope"))
                )
        # (FastAPI's 400 for a body it cannot parse is the app's 422 EINVAL)
        assert {200, 201, 404, 409, 422} <= statuses, statuses
        assert pair.compared > 2000


def _cases(op: Any) -> list[tuple[Any, bool]]:
    """schemathesis's cases for `op` (bounded, the same each run but when soaking), each
    with whether to aim it at the live fd, owner and mapping."""
    out: list[tuple[Any, bool]] = []

    @settings(
        max_examples=examples(12),
        deadline=None,
        derandomize=DERANDOMIZE,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(), live=st.booleans())
    def draw(case: Any, live: bool) -> None:
        out.append((case, live))

    draw()
    return out


@pytest.mark.anyio
async def test_generated_requests_answer_alike(tmp_path: Path) -> None:
    """schemathesis's cases for each lean operation, valid and not, sent to both apps."""
    schemathesis = pytest.importorskip("schemathesis")

    async with _pair(tmp_path) as (app, pair):
        schema = schemathesis.openapi.from_dict(app.openapi())
        lean = {(m.upper(), r.path) for r in _lean_routes(app) for m in (r.methods or ())}
        ops = [op.ok() for op in schema.get_all_operations()]
        ops = [op for op in ops if (op.method.upper(), op.path) in lean]
        assert len(ops) > 40
        statuses: set[int] = set()
        for op in ops:
            cases = _cases(op)
            for case, live in cases:
                path_params = dict(case.path_parameters or {})
                if "sid" in path_params:
                    path_params["sid"] = "{SID}"
                if live:
                    for k, v in {"fd": 3, "owner_id": "0", "map_id": 1}.items():
                        if k in path_params:
                            path_params[k] = v
                path = op.path
                for k, v in path_params.items():
                    value = str(v) if v == "{SID}" else re.sub(r"[/?#%]", "_", str(v))
                    path = path.replace("{" + k + "}", value)
                content = None
                headers: dict[str, str] = {}
                if isinstance(case.body, (dict, list, str, int, float, bool)):
                    content = json.dumps(case.body).encode()
                    headers["content-type"] = "application/json"
                query = {k: str(v) for k, v in (case.query or {}).items()}
                statuses.add(
                    await pair.send(
                        op.method.upper(),
                        path,
                        content=content,
                        headers=headers,
                        params=query or None,
                    )
                )
        assert {200, 201, 404, 409, 422} <= statuses, statuses
        assert pair.compared > 40 * 8


class Body(BaseModel):
    n: int


class Out(BaseModel):
    n: int


def _corners() -> FastAPI:
    """Routes of the shapes the API does not have, each twice: lean and FastAPI's."""

    def routes(router: APIRouter) -> None:
        @router.post("/created", status_code=201)
        async def created(body: Body) -> Out:
            return Out(n=body.n)

        @router.post("/optional")
        async def optional(body: Body | None = None) -> Out:
            return Out(n=-1 if body is None else body.n)

        @router.get("/alias/{x}")
        async def alias(
            request: Request, x: int, q: Annotated[int, Query(alias="q-q", ge=0)] = 7
        ) -> Out:
            return Out(n=x + q + len(request.method))

        @router.get("/broken")
        async def broken() -> Out:
            return {"n": "not a number"}  # type: ignore[return-value]

    app = FastAPI()
    lean, plain = APIRouter(prefix="/lean", route_class=LeanRoute), APIRouter(prefix="/plain")
    routes(lean)
    routes(plain)
    app.router.routes.extend(lean.routes + plain.routes)  # as create_app does
    return app


@pytest.mark.anyio
async def test_route_shapes_beyond_the_api_answer_alike() -> None:
    from fastapi.exceptions import ResponseValidationError

    app = _corners()
    made = [r for r in app.router.routes if isinstance(r, LeanRoute)]
    assert len(made) == 4 and all(r.app is not r.fastapi_app for r in made)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        cases: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/created", {"json": {"n": 3}}),
            ("POST", "/created", {"json": {"n": "x"}}),
            ("POST", "/created", {}),
            ("POST", "/optional", {}),
            ("POST", "/optional", {"json": {"n": 4}}),
            (
                "POST",
                "/optional",
                {"content": b"{", "headers": {"content-type": "application/json"}},
            ),
            ("GET", "/alias/5", {}),
            ("GET", "/alias/5", {"params": {"q-q": "2"}}),
            ("GET", "/alias/5", {"params": {"q": "2", "q-q": "-1"}}),
            ("GET", "/alias/x", {"params": {"q-q": "y"}}),
        ]
        for method, path, kw in cases:
            a = await c.request(method, "/lean" + path, **kw)
            b = await c.request(method, "/plain" + path, **kw)
            assert (a.status_code, a.headers.get("content-type")) == (
                b.status_code,
                b.headers.get("content-type"),
            ), (method, path, kw)
            assert a.text.replace("/lean", "/plain") == b.text or "alias" in path, (path, kw)
            if "alias" in path and a.status_code == 200:
                assert a.json()["n"] == b.json()["n"]
        errors = []
        for prefix in ("/lean", "/plain"):
            with pytest.raises(ResponseValidationError) as info:
                await c.get(prefix + "/broken")
            errors.append(info.value.errors())
        assert errors[0] == errors[1] and errors[0]
