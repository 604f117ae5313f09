"""POST /api/v1/sessions/{sid}/ops: a batch of ops, each answered and logged as if sent
alone; validated whole first; limits; stop_on_error."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.service import batch
from app.settings import Settings
from tests.api.helpers import new_session, running, with_

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]

# (op, args, the single request: method, path with {fd}/{owner} filled from args)
OPS: list[dict[str, Any]] = [
    {"op": "memfd_create", "args": {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}},
    {"op": "ftruncate", "args": {"fd": 3, "length": 8192}},
    {"op": "fcntl", "args": {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}},  # EBUSY
    {"op": "pwrite", "args": {"fd": 3, "offset": 0, "data_b64": "aGVsbG8="}},
    {"op": "pread", "args": {"fd": 3, "offset": 0, "count": 5}},
    {"op": "fallocate", "args": {"fd": 3, "mode": [], "offset": 0, "len": 16384}},
    {"op": "fallocate", "args": {"fd": 3, "mode": PUNCH, "offset": 0, "len": 4096}},
    {"op": "close", "args": {"fd": 9}},  # EBADF: 404
    {"op": "owner_create", "args": {"name": "kvm0", "kind": "recorder"}},
    {"op": "memslot_create", "args": {"owner_id": "7", "fd": 3, "gfn": 0, "npages": 1}},
    {
        "op": "mmap",
        "args": {
            "fd": 3,
            "offset": 0,
            "length": 4096,
            "prot": ["PROT_READ"],
            "flags": ["MAP_SHARED"],
        },
    },
    {"op": "munmap", "args": {"map_id": 1}},
    {"op": "close", "args": {"fd": 3}},
]


def _single(op: dict[str, Any]) -> tuple[str, str, dict[str, Any] | None]:
    a = dict(op["args"])
    name = op["op"]
    if name in ("memfd_create", "owner_create"):
        return "POST", "/" + ("memfds" if name == "memfd_create" else "owners"), a
    if name == "memslot_create":
        return "POST", f"/owners/{a.pop('owner_id')}/memslots", a
    if name == "munmap":
        return "DELETE", f"/mappings/{a['map_id']}", None
    fd = a.pop("fd")
    return "POST", f"/files/{fd}/{name}", (a or None)


async def test_each_op_answers_as_if_sent_alone(settings: Settings) -> None:
    async with running(settings) as (_, c):
        alone, batched = await new_session(c), await new_session(c)
        singles = []
        for op in OPS:
            method, path, body = _single(op)
            r = await c.request(method, f"{API}/{alone}{path}", json=body)
            singles.append((r.status_code, r.json() if r.content else None))
        r = await c.post(f"{API}/{batched}/ops", json={"ops": OPS})
        assert r.status_code == 200, r.text
        out = r.json()
        got = [(x["status"], x["answer"]) for x in out["results"]]
        assert got == singles
        assert [x["errno"] for x in out["results"]] == [
            (a or {}).get("errno") if s >= 400 else None for s, a in singles
        ]
        assert {s for s, _ in singles} >= {200, 201, 204, 404, 409}
        ta = (await c.get(f"{API}/{alone}/trace")).json()
        tb = (await c.get(f"{API}/{batched}/trace")).json()
        assert ta["ops"] == tb["ops"]
        # the memslot of an unknown owner was refused before the engine: no seq, not logged
        assert out["results"][9]["seq"] is None and out["results"][9]["status"] == 404
        assert out["seq"] == len(tb["ops"]) == len(OPS) - 1
        seqs = [x["seq"] for x in out["results"] if x["seq"] is not None]
        assert seqs == list(range(1, out["seq"] + 1))
        ea = (await c.get(f"{API}/{alone}/events")).json()["events"]
        eb = (await c.get(f"{API}/{batched}/events")).json()["events"]
        assert ea == eb and out["event_seq"] == len(eb)


async def test_a_malformed_op_is_named_and_nothing_runs(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    ops = [OPS[0], {"op": "ftruncate", "args": {"fd": 3, "length": "big"}}]
    r = await client.post(f"{API}/{sid}/ops", json={"ops": ops})
    assert r.status_code == 422
    body = r.json()
    assert body["errno"] == "EINVAL" and body["message"].startswith("ops[1] (ftruncate)")
    r = await client.post(f"{API}/{sid}/ops", json={"ops": [OPS[0], {"op": "nope"}]})
    assert r.status_code == 422 and "ops[1] (nope): unknown op" in r.json()["message"]
    r = await client.post(f"{API}/{sid}/ops", json={"ops": [{"args": {}}]})
    assert r.status_code == 422 and r.json()["errno"] == "EINVAL"
    assert (await client.get(f"{API}/{sid}")).json()["seq"] == 0


async def test_stop_on_error(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    r = await client.post(f"{API}/{sid}/ops", json={"ops": OPS, "stop_on_error": True})
    out = r.json()
    assert out["stopped_at"] == 2 and len(out["results"]) == 3
    assert out["results"][2]["errno"] == "EBUSY" and out["seq"] == 3  # the failed op is logged
    r = await client.post(f"{API}/{sid}/ops", json={"ops": OPS[3:5]})
    assert r.json()["stopped_at"] is None and r.json()["seq"] == 5


async def test_limits(settings: Settings) -> None:
    async with running(with_(settings, max_ops=20, max_read_bytes=100)) as (_, c):
        sid = await new_session(c)
        r = await c.post(f"{API}/{sid}/ops", json={"ops": [OPS[0]] * 10_001})
        assert r.status_code == 413 and r.json()["limit"] == "max_batch_ops"
        r = await c.post(f"{API}/{sid}/ops", json={"ops": [OPS[0]] * 21})
        assert r.status_code == 429 and r.json()["limit"] == "max_ops"
        assert (await c.get(f"{API}/{sid}")).json()["seq"] == 0
        big = {"op": "pread", "args": {"fd": 3, "offset": 0, "count": 200}}
        grow = {"op": "ftruncate", "args": {"fd": 3, "length": 4096}}
        r = await c.post(f"{API}/{sid}/ops", json={"ops": [OPS[0], grow, big]})
        item = r.json()["results"][2]
        assert item["status"] == 413 and item["seq"] is None
        assert item["errno"] == "E2BIG" and item["answer"]["limit"] == "max_read_bytes"
        r = await c.post(f"{API}/nope/ops", json={"ops": [OPS[0]]})
        assert r.status_code == 404 and r.json()["errno"] == "ENOENT"
    async with running(with_(settings, max_body_bytes=1000)) as (_, c):
        sid = await new_session(c)
        r = await c.post(f"{API}/{sid}/ops", json={"ops": [OPS[0]] * 50})
        assert r.status_code == 413 and r.json()["limit"] == "max_body_bytes"


async def test_a_big_batch_replays_and_rewinds(settings: Settings) -> None:
    async with running(with_(settings, snapshot_every=100)) as (_, c):
        sid = await new_session(c)
        ops = OPS[:2] + [
            {
                "op": "fallocate",
                "args": {
                    "fd": 3,
                    "mode": PUNCH if i % 2 else [],
                    "offset": (i % 64) * 4096,
                    "len": 4096,
                },
            }
            for i in range(3000)
        ]
        r = await c.post(f"{API}/{sid}/ops", json={"ops": ops})
        assert r.json()["seq"] == 3002 and all(x["errno"] is None for x in r.json()["results"])
        trace = (await c.get(f"{API}/{sid}/trace")).json()
        r = await c.post(API, json={"trace": trace})
        assert r.status_code == 201 and r.json()["seq"] == 3002
        r = await c.post(f"{API}/{sid}/rewind", json={"seq": 1500})
        assert r.status_code == 200 and r.json()["seq"] == 1500


async def test_other_sessions_answer_while_a_batch_runs(settings: Settings) -> None:
    async with running(settings) as (app, c):
        busy, other = await new_session(c), await new_session(c)
        ops = OPS[:2] + [
            {"op": "fallocate", "args": {"fd": 3, "mode": [], "offset": i % 2 * 4096, "len": 4096}}
            for i in range(9_998)
        ]
        batch = asyncio.create_task(c.post(f"{API}/{busy}/ops", json={"ops": ops}))
        lock = app.state.registry.sessions[busy].lock
        while not lock.locked():  # the batch is running (validated, in the engine)
            await asyncio.sleep(0.001)
        for _ in range(3):
            r = await c.post(f"{API}/{other}/memfds", json={})
            assert r.status_code == 201
        assert not batch.done()  # another session's ops came and went meanwhile
        r = await batch
        assert r.status_code == 200 and r.json()["seq"] == 10_000


async def test_a_batch_not_stored_is_undone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(settings) as (app, c):
        sid = await new_session(c)
        await c.post(f"{API}/{sid}/ops", json={"ops": OPS[:2]})

        async def broken(*args: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(app.state.registry.store, "append_many", broken)
        r = await c.post(f"{API}/{sid}/ops", json={"ops": OPS[3:7]})
        assert r.status_code == 503 and r.json()["errno"] == "EIO"
        monkeypatch.undo()
        detail = (await c.get(f"{API}/{sid}")).json()
        assert detail["seq"] == 2 and detail["files"][0]["nr_pages"] == 0
        # a failure of the service itself half way: the ops run so far are undone too
        calls = []

        real = batch.StoredOp

        def bad_op(*args: Any) -> Any:
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("bug")
            return real(*args)

        monkeypatch.setattr(batch, "StoredOp", bad_op)
        # the last-resort handler answers a bug as 409 EIO and keeps the connection
        r = await c.post(f"{API}/{sid}/ops", json={"ops": OPS[3:7]})
        assert r.status_code == 409 and r.json()["errno"] == "EIO"
        monkeypatch.undo()
        assert (await c.get(f"{API}/{sid}")).json()["seq"] == 2
        assert len((await c.get(f"{API}/{sid}/trace")).json()["ops"]) == 2
