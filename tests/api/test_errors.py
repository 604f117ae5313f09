"""One error shape; no input, however malformed, answers 5xx; the limits of the service."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest

from app.models.common import ErrorBody
from app.settings import Settings
from tests.api.helpers import guest_file, new_session, running, with_

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
SHAPE = {"errno", "errno_value", "op", "message"}

GARBAGE: list[bytes] = [
    b"",
    b"{bad",
    b"null",
    b"[]",
    b'"x"',
    b"1e400",
    b'{"offset": 1e400, "len": 1, "length": -1e400}',
    b'{"offset": 1180591620717411303424, "len": -1180591620717411303424}',
    b'{"index": -1, "gfn": 18446744073709551616, "pfn": -5, "start": 3, "end": "x"}',
    b'{"mode": ["FALLOC_FL_NOPE"], "flags": [1, 2], "seals": {"a": 1}, "prot": "PROT_READ"}',
    b'{"data_b64": "!!!", "offset": 0, "count": 99999999999999999999}',
    b'{"owner_id": {"x": 1}, "name": "\\ud800", "kind": null, "size": true}',
    b'{"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST", 32]}',
    b'{"name": "' + b"a" * 5000 + b'"}',
    b'{"fd": 3, "gfn": 0, "npages": 18446744073709551615, "index": 18446744073709551615}',
    b"\xff\xfe\x00garbage",
    b'{"trace": {"ops": [{"op": "fallocate", "args": 5}]}}',
    b'{"trace": {"ops": [{"op": "memslot_create", "args": {"owner_id": "0"}}]}}',
    b'{"seq": 18446744073709551616}',
    b"[" * 100_000,
    b'{"a": ' * 5000 + b"1" + b"}" * 5000,
]


async def _paths(c: httpx.AsyncClient, sid: str) -> list[tuple[str, str]]:
    spec = (await c.get("/openapi.json")).json()
    out = []
    for path, ops in spec["paths"].items():
        concrete = (
            path.replace("{sid}", sid)
            .replace("{fd}", "3")
            .replace("{owner_id}", "0")
            .replace("{map_id}", "1")
            .replace("{n}", "1")
            .replace("{name}", "x")
        )
        out += [(m.upper(), concrete) for m in ops if not path.endswith("/stream")]
    return out


@pytest.fixture
async def busy(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with running(settings) as (_, c):
        sid = await new_session(c)
        await guest_file(c, sid)
        body = {"offset": 0, "length": 4096, "prot": ["PROT_READ"], "flags": ["MAP_SHARED"]}
        await c.post(f"{API}/{sid}/memfds", json={})
        await c.post(f"{API}/{sid}/files/4/mmap", json=body)
        yield c, sid


async def test_no_input_answers_5xx(busy: tuple[httpx.AsyncClient, str]) -> None:
    c, sid = busy
    paths = await _paths(c, sid)
    assert len(paths) > 25
    for method, path in paths:
        if method == "DELETE" and path.endswith(sid):
            continue  # the session stays, for the check at the end
        for body in GARBAGE:
            r = await c.request(
                method, path, content=body, headers={"content-type": "application/json"}
            )
            assert r.status_code < 500, (method, path, body[:60], r.text)
            if r.status_code >= 400:
                assert set(r.json()) >= SHAPE, (method, path, r.text)
    # and the session still works
    assert (await c.get(f"{API}/{sid}")).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/sessions/x/files/abc",
        "/api/v1/sessions/x/files/99999999999999999999",
        "/api/v1/sessions/x/at/-1",
        "/api/v1/nope",
        "/api/v1/sessions/" + "x" * 200,
    ],
)
async def test_odd_paths(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code in (404, 422)
    assert set(r.json()) >= SHAPE


async def test_wrong_method_has_the_shape(client: httpx.AsyncClient) -> None:
    r = await client.put("/api/v1/sessions")
    assert r.status_code == 405 and set(r.json()) >= SHAPE


async def test_broken_json_is_422_with_a_message(client: httpx.AsyncClient) -> None:
    r = await client.post(API, content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 422
    body = r.json()
    assert body["errno"] == "EINVAL" and "JSON" in body["message"]
    assert body["detail"][0]["type"] == "json_invalid"
    ErrorBody.model_validate(body)


async def test_body_limit_by_content_length(settings: Settings) -> None:
    async with running(with_(settings, max_body_bytes=1000)) as (_, c):
        r = await c.post(API, content=b" " * 1001, headers={"content-type": "application/json"})
        assert r.status_code == 413
        assert r.json()["limit"] == "max_body_bytes" and "max_body_bytes" in r.json()["message"]


async def test_body_limit_when_streamed(settings: Settings) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100

    async with running(with_(settings, max_body_bytes=1000)) as (_, c):
        r = await c.post(API, content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["limit"] == "max_body_bytes"
        r = await c.post(API, content=b" {} ", headers={"content-type": "application/json"})
        assert r.status_code == 201


async def test_rate_limit(settings: Settings) -> None:
    async with running(with_(settings, rate=1, burst=3)) as (_, c):
        codes = [(await c.get("/api/v1/scenarios")).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
        r = await c.get("/api/v1/scenarios")
        assert r.json()["limit"] == "rate" and r.headers["retry-after"] == "1"


async def test_last_resort_is_not_500(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.service import ops

    def boom(m: object, a: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setitem(ops.OPS, "close", ops.OPS["close"].__class__("close", ops.FdArgs, boom))
    async with running(settings) as (app, _):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            sid = await new_session(c)
            r = await c.post(f"{API}/{sid}/files/3/close")
            assert r.status_code == 409
            assert r.json()["errno"] == "EIO" and "RuntimeError" in r.json()["message"]
            assert (await c.get(f"{API}/{sid}")).status_code == 200


async def test_access_log_is_one_json_line(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(with_(settings, log_requests=True)) as (_, c):
        with caplog.at_level(logging.INFO, logger="sealscope.access"):
            sid = await new_session(c)
            await c.get(f"{API}/{sid}/files/9")
            await c.get("/api/v1/x%22%5C%0A%C3%A9%00")  # quote, backslash, newline, é, NUL
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sealscope.access"]
    assert all("\n" not in r.getMessage() for r in caplog.records)  # one line each
    assert [(x["method"], x["status"]) for x in lines] == [
        ("POST", 201),
        ("GET", 404),
        ("GET", 404),
    ]
    assert lines[2]["path"] == '/api/v1/x"\\\né\x00' and lines[2]["session"] is None
    assert lines[1]["session"] == sid[:8] and lines[0]["session"] == sid[:8]
    assert all(isinstance(x["ms"], float) for x in lines)


async def test_openapi_is_complete(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    missing = [
        n
        for n, s in schemas.items()
        if "examples" not in s and s.get("type") == "object" and "Validation" not in n
    ]
    assert missing == []
    for path in [
        "/api/v1/sessions",
        "/api/v1/sessions/{sid}",
        "/api/v1/sessions/{sid}/trace",
        "/api/v1/sessions/{sid}/rewind",
        "/api/v1/sessions/{sid}/memfds",
        "/api/v1/sessions/{sid}/guest_memfds",
        "/api/v1/sessions/{sid}/files/{fd}",
        "/api/v1/sessions/{sid}/files/{fd}/ftruncate",
        "/api/v1/sessions/{sid}/files/{fd}/fcntl",
        "/api/v1/sessions/{sid}/files/{fd}/fallocate",
        "/api/v1/sessions/{sid}/files/{fd}/pread",
        "/api/v1/sessions/{sid}/files/{fd}/pwrite",
        "/api/v1/sessions/{sid}/files/{fd}/mmap",
        "/api/v1/sessions/{sid}/mappings/{map_id}",
        "/api/v1/sessions/{sid}/files/{fd}/close",
        "/api/v1/sessions/{sid}/owners",
        "/api/v1/sessions/{sid}/files/{fd}/register_guest",
        "/api/v1/sessions/{sid}/files/{fd}/get_lock_pfn",
        "/api/v1/sessions/{sid}/put_unlock_pfn",
        "/api/v1/sessions/{sid}/files/{fd}/invalidate",
        "/api/v1/sessions/{sid}/owners/{owner_id}/memslots",
        "/api/v1/sessions/{sid}/owners/{owner_id}/fault",
        "/api/v1/sessions/{sid}/owners/{owner_id}",
        "/api/v1/sessions/{sid}/files/{fd}/pages",
        "/api/v1/sessions/{sid}/phys",
        "/api/v1/sessions/{sid}/events",
        "/api/v1/sessions/{sid}/events/stream",
        "/api/v1/scenarios",
        "/api/v1/scenarios/{name}",
        "/api/v1/scenarios/{name}/sessions",
        "/api/v1/sessions/{sid}/diff",
        "/api/v1/sessions/{sid}/compare",
    ]:
        assert path in spec["paths"], path
    r = await client.get("/docs")
    assert r.status_code == 200
