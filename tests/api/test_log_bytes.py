"""The op log's bytes (issue 10, item 2): a session's log is limited in bytes (413 for
one op past the limit, 429 when the log is full, both naming max_log_bytes), payloads
(pwrite data) are not kept in memory once stored but read back for replays and the
trace, and the trace is streamed, the same JSON as before."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.settings import Settings
from tests.api.helpers import new_session, running, with_

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"


def _pwrite(n: int, offset: int = 0, seed: int = 0) -> dict[str, object]:
    data = bytes((seed + i) % 251 for i in range(n))
    return {"offset": offset, "data_b64": base64.b64encode(data).decode()}


async def test_the_log_has_a_byte_limit(settings: Settings) -> None:
    async with running(with_(settings, max_log_bytes=100_000)) as (_, c):
        sid = await new_session(c)
        await c.post(f"{API}/{sid}/memfds", json={})
        r = await c.post(f"{API}/{sid}/files/3/pwrite", json=_pwrite(80_000))  # 107 kB of b64
        assert r.status_code == 413, r.text
        assert r.json()["limit"] == "max_log_bytes" and "max_log_bytes" in r.json()["message"]
        codes = [
            (
                await c.post(f"{API}/{sid}/files/3/pwrite", json=_pwrite(20_000, 4096 * i))
            ).status_code
            for i in range(5)
        ]
        assert codes[:3] == [200, 200, 200] and codes[4] == 429, codes
        r = await c.post(f"{API}/{sid}/files/3/pwrite", json=_pwrite(20_000))
        assert r.json()["limit"] == "max_log_bytes" and r.headers["retry-after"]
        seq = (await c.get(f"{API}/{sid}")).json()["seq"]
        assert (await c.post(f"{API}/{sid}/rewind", json={"seq": 1})).status_code == 200
        r = await c.post(f"{API}/{sid}/files/3/pwrite", json=_pwrite(20_000))
        assert r.status_code == 200  # a rewind gives the room back
        assert seq > 2


async def test_an_imported_trace_is_held_to_the_limit(settings: Settings) -> None:
    ops = [{"op": "memfd_create", "args": {}}] + [
        {"op": "pwrite", "args": {"fd": 3, **_pwrite(30_000, 4096 * i)}} for i in range(4)
    ]
    async with running(with_(settings, max_log_bytes=100_000)) as (_, c):
        r = await c.post(API, json={"trace": {"ops": ops}})
        assert r.status_code == 413 and r.json()["limit"] == "max_log_bytes", r.text
        r = await c.post(API, json={"trace": {"ops": ops[:3]}})
        assert r.status_code == 201, r.text


async def test_payloads_stay_on_disk_and_come_back(settings: Settings) -> None:
    async with running(with_(settings, snapshot_every=1000)) as (app, c):
        sid = await new_session(c)
        await c.post(f"{API}/{sid}/memfds", json={"name": "é"})
        writes = [_pwrite(50_000 + i, 4096 * i, seed=i) for i in range(6)]
        for w in writes:
            assert (await c.post(f"{API}/{sid}/files/3/pwrite", json=w)).status_code == 200
        s = app.state.registry.sessions[sid]
        assert sum(len(o.args) for o in s.ops) < 2000  # no payload in memory
        r = await c.get(f"{API}/{sid}/trace")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        trace = r.json()
        # the same JSON as the model gave: compact, the ops as sent
        assert r.content == json.dumps(trace, ensure_ascii=False, separators=(",", ":")).encode()
        assert list(trace) == ["profile", "phys_pages", "thp", "variants", "ops"]
        assert trace["ops"][0] == {
            "op": "memfd_create",
            "args": {"name": "é", "flags": []},
            "errno": None,
        }
        assert [o["args"]["data_b64"] for o in trace["ops"][1:]] == [w["data_b64"] for w in writes]
        # replays read them back: rewind, a preview, a copy of the trace
        before = await c.post(f"{API}/{sid}/files/3/pread", json={"offset": 0, "count": 4096 * 6})
        assert (await c.post(f"{API}/{sid}/rewind", json={"seq": 7})).status_code == 200
        again = await c.post(f"{API}/{sid}/files/3/pread", json={"offset": 0, "count": 4096 * 6})
        assert again.json()["data_b64"] == before.json()["data_b64"]
        r = await c.post(API, json={"trace": trace})
        copy = r.json()["id"]
        mine = await c.post(f"{API}/{copy}/files/3/pread", json={"offset": 0, "count": 4096 * 6})
        assert mine.json()["data_b64"] == before.json()["data_b64"]
        diff = await c.post(f"{API}/{sid}/diff", json={"variant": "multi_owner"})
        assert diff.status_code == 200 and not diff.json()["diverging"]
        final = (await c.get(f"{API}/{sid}/trace")).json()
    async with running(settings) as (app, c):  # and after a restart
        assert sum(len(o.args) for o in app.state.registry.sessions[sid].ops) < 2000
        assert (await c.get(f"{API}/{sid}/trace")).json() == final
        r = await c.post(f"{API}/{sid}/files/3/pread", json={"offset": 0, "count": 4096 * 6})
        assert r.json()["data_b64"] == before.json()["data_b64"]


async def _get_raw(app: FastAPI, path: str) -> list[dict[str, Any]]:
    """The ASGI messages the app sends for GET path (httpx's transport joins them)."""
    sent: list[dict[str, Any]] = []
    asked = asyncio.Event()

    async def receive() -> dict[str, Any]:
        if asked.is_set():
            await asyncio.Event().wait()  # no disconnect: the answer is read to its end
        asked.set()
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
        "state": {},
    }
    await app(scope, receive, send)
    return sent


async def test_a_long_trace_streams_in_chunks(settings: Settings) -> None:
    async with running(settings) as (app, c):
        sid = await new_session(c)
        await c.post(f"{API}/{sid}/memfds", json={})
        for i in range(1100):
            body = {"mode": [], "offset": 4096 * (i % 64), "len": 4096}
            await c.post(f"{API}/{sid}/files/3/fallocate", json=body)
        sent = await _get_raw(app, f"{API}/{sid}/trace")
        assert sent[0]["status"] == 200
        chunks = [m.get("body", b"") for m in sent[1:]]
        assert len([x for x in chunks if x]) >= 3
        trace = json.loads(b"".join(chunks))
        assert len(trace["ops"]) == 1101
        assert (await c.post(API, json={"trace": trace})).status_code == 201


async def test_unknown_session_trace_is_404(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{API}/{'x' * 32}/trace")
    assert r.status_code == 404 and r.json()["errno"] == "ENOENT"
