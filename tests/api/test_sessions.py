"""Sessions: create, read, delete, trace export and replay, rewind, isolation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.api.helpers import guest_file, new_session, running, with_

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


async def test_create_defaults(client: httpx.AsyncClient) -> None:
    r = await client.post(API, json={})
    assert r.status_code == 201
    body = r.json()
    assert {k: body[k] for k in ("profile", "phys_pages", "thp", "seq")} == {
        "profile": "rfc-v2",
        "phys_pages": 262144,
        "thp": "never",
        "seq": 0,
    }
    assert len(body["id"]) >= 32


async def test_create_without_body(client: httpx.AsyncClient) -> None:
    assert (await client.post(API)).status_code == 201


@pytest.mark.parametrize("profile", ["rfc-v2", "guest-memfd"])
@pytest.mark.parametrize("thp", ["never", "always", "within_size"])
async def test_create_each_profile_and_thp(
    client: httpx.AsyncClient, profile: str, thp: str
) -> None:
    r = await client.post(API, json={"profile": profile, "phys_pages": 4096, "thp": thp})
    assert r.status_code == 201
    assert (r.json()["profile"], r.json()["thp"], r.json()["phys_pages"]) == (profile, thp, 4096)


@pytest.mark.parametrize(
    "body",
    [
        {"profile": "rfc-v3"},
        {"thp": "sometimes"},
        {"phys_pages": 1000},
        {"phys_pages": 0},
        {"phys_pages": -1024},
        {"phys_pages": 2**27},
        {"phys_pages": "1024"},
        {"phys_pages": 2**70},
        {"variants": ["nope"]},
    ],
    ids=lambda b: str(b),
)
async def test_create_bad_config_is_422(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    r = await client.post(API, json=body)
    assert r.status_code == 422
    assert r.json()["errno"] == "EINVAL" and r.json()["message"]


async def test_get_detail(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    owner = await guest_file(client, sid)
    r = await client.get(f"{API}/{sid}")
    assert r.status_code == 200
    d = r.json()
    assert d["id"] == sid and d["seq"] == 5 and d["event_seq"] == 5
    assert [f["fd"] for f in d["files"]] == [3]
    assert d["files"][0]["owners"] == [owner]
    assert d["owners"] == [{"owner_id": owner, "name": "kvm0", "kind": "kvm"}]
    assert d["phys"] == {"free": 262144, "used": 0, "total": 262144}


async def test_delete(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    assert (await client.delete(f"{API}/{sid}")).status_code == 204
    r = await client.get(f"{API}/{sid}")
    assert r.status_code == 404 and r.json()["errno"] == "ENOENT"
    assert (await client.delete(f"{API}/{sid}")).status_code == 404


@pytest.mark.parametrize("path", ["", "/trace", "/events", "/phys", "/files/3", "/owners/0"])
async def test_unknown_session_is_404(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(f"{API}/not-a-session{path}")
    assert r.status_code == 404
    assert set(r.json()) >= {"errno", "errno_value", "op", "message"}


async def test_sessions_are_isolated(client: httpx.AsyncClient) -> None:
    a, b = await new_session(client), await new_session(client)
    await guest_file(client, a)
    r = await client.get(f"{API}/{b}")
    assert r.json()["files"] == [] and r.json()["seq"] == 0
    r = await client.get(f"{API}/{b}/files/3")
    assert r.status_code == 404 and r.json()["errno"] == "EBADF"
    assert (await client.get(f"{API}/{a}/files/3")).status_code == 200


async def _workload(c: httpx.AsyncClient, sid: str) -> None:
    b = f"{API}/{sid}"
    owner = await guest_file(c, sid)
    await c.post(f"{b}/owners/{owner}/memslots", json={"fd": 3, "gfn": 0, "npages": 16})
    await c.post(f"{b}/files/3/fallocate", json={"mode": [], "offset": 0, "len": 16384})
    await c.post(f"{b}/owners/{owner}/fault", json={"gfn": 5})
    pfn = (await c.post(f"{b}/files/3/get_lock_pfn", json={"index": 1, "alloc": True})).json()
    await c.post(f"{b}/files/3/fallocate", json={"mode": PUNCH, "offset": 0, "len": 8192})
    await c.post(f"{b}/put_unlock_pfn", json={"pfn": pfn["pfn"]})
    await c.post(f"{b}/files/3/fcntl", json={"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_WRITE"]})
    await c.post(f"{b}/files/9/ftruncate", json={"length": 1})  # EBADF: logged too


async def _state(c: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    b = f"{API}/{sid}"
    detail = (await c.get(b)).json()
    detail.pop("id")
    return {
        "detail": detail,
        "events": (await c.get(f"{b}/events")).json(),
        "pages": (await c.get(f"{b}/files/3/pages")).json(),
        "phys": (await c.get(f"{b}/phys")).json(),
        "owner": (await c.get(f"{b}/owners/0")).json(),
    }


async def test_trace_replays_to_the_same_state_and_events(client: httpx.AsyncClient) -> None:
    sid = await new_session(client, thp="always")
    await _workload(client, sid)
    trace = (await client.get(f"{API}/{sid}/trace")).json()
    assert trace["thp"] == "always" and len(trace["ops"]) == 13
    assert trace["ops"][-1] == {
        "op": "ftruncate",
        "args": {"fd": 9, "length": 1},
        "errno": "EBADF",
    }
    r = await client.post(API, json={"trace": trace})
    assert r.status_code == 201, r.text
    twin = r.json()["id"]
    assert await _state(client, twin) == await _state(client, sid)
    # and the twin's trace is the same trace
    assert (await client.get(f"{API}/{twin}/trace")).json() == trace


@pytest.mark.parametrize(
    ("ops", "status", "words"),
    [
        ([{"op": "memfd_create", "args": {}}, {"op": "nope", "args": {}}], 422, "ops[1] (nope)"),
        ([{"op": "ftruncate", "args": {"fd": 3}}], 422, "ops[0] (ftruncate): length"),
        ([{"op": "ftruncate", "args": {"fd": 3, "length": 2**64}}], 422, "ops[0]"),
        ([{"op": "mmap", "args": {"fd": 3, "length": 1, "prot": ["PROT_X"]}}], 422, "prot"),
        (
            [{"op": "memfd_create", "args": {}, "errno": "EINVAL"}],
            409,
            "ops[0] (memfd_create): ended with success, the trace says EINVAL",
        ),
        ([{"op": "fault", "args": {"owner_id": "x", "gfn": 0}}], 409, "ops[0] (fault)"),
    ],
    ids=["unknown-op", "missing-arg", "huge-arg", "bad-enum", "other-errno", "unknown-owner"],
)
async def test_bad_trace_is_refused_whole(
    client: httpx.AsyncClient, ops: list[dict[str, Any]], status: int, words: str
) -> None:
    r = await client.post(API, json={"trace": {"ops": ops}})
    assert r.status_code == status, r.text
    assert words in r.json()["message"]
    assert (await client.get("/api/v1/scenarios")).status_code == 200


async def test_trace_too_long_is_413(settings: Settings) -> None:
    async with running(with_(settings, max_ops=3)) as (_, c):
        ops = [{"op": "memfd_create", "args": {}}] * 4
        r = await c.post(API, json={"trace": {"ops": ops}})
        assert r.status_code == 413 and r.json()["limit"] == "max_ops"


async def test_rewind_is_time_travel_and_undo(settings: Settings) -> None:
    async with running(with_(settings, snapshot_every=4)) as (_, c):
        sid = await new_session(c)
        states = [await _state_light(c, sid)]  # states[n]: after op n
        for i in range(10):
            await c.post(f"{API}/{sid}/memfds", json={"name": f"f{i}"})
            states.append(await _state_light(c, sid))
            await c.post(f"{API}/{sid}/files/{3 + i}/ftruncate", json={"length": 4096 * i})
            states.append(await _state_light(c, sid))
        for n in (17, 8, 3, 0):
            r = await c.post(f"{API}/{sid}/rewind", json={"seq": n})
            assert r.status_code == 200 and r.json()["seq"] == n
            assert await _state_light(c, sid) == states[n]
            assert len((await c.get(f"{API}/{sid}/trace")).json()["ops"]) == n
        # the log goes on from there
        r = await c.post(f"{API}/{sid}/memfds", json={"name": "again"})
        assert r.status_code == 201 and r.json()["fd"] == 3
        assert (await c.get(f"{API}/{sid}")).json()["seq"] == 1


async def _state_light(c: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    d = (await c.get(f"{API}/{sid}")).json()
    return {"seq": d["seq"], "files": d["files"], "event_seq": d["event_seq"]}


async def test_rewind_matches_the_state_at_that_op(client: httpx.AsyncClient) -> None:
    sid = await new_session(client)
    await _workload(client, sid)
    seen = {}
    for n in range(14):
        r = await client.get(f"{API}/{sid}/at/{n}")
        assert r.status_code == 200 and r.json()["seq"] == n
        seen[n] = r.json()
    assert (await client.get(f"{API}/{sid}")).json()["seq"] == 13
    for n in (11, 6, 2):
        r = await client.post(f"{API}/{sid}/rewind", json={"seq": n})
        assert r.json() | {"redo": 0} == seen[n]
        assert r.json()["redo"] == 13 - n  # the ops it took out (tests/api/test_redo.py)


@pytest.mark.parametrize("body", [{"seq": 99}, {"seq": -1}, {"seq": "1"}, {}])
async def test_rewind_out_of_range(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    sid = await new_session(client)
    r = await client.post(f"{API}/{sid}/rewind", json=body)
    assert r.status_code == (409 if body.get("seq") == 99 else 422)
    assert (await client.get(f"{API}/{sid}/at/5")).status_code == 409


async def test_session_limits(settings: Settings) -> None:
    async with running(with_(settings, max_sessions=2, max_phys_pages=8192)) as (_, c):
        r = await c.post(API, json={"phys_pages": 9216})
        assert r.status_code == 413 and "max_phys_pages" in r.json()["message"]
        await new_session(c, phys_pages=8192)
        await new_session(c, phys_pages=8192)
        r = await c.post(API, json={"phys_pages": 8192})
        assert r.status_code == 429 and r.json()["limit"] == "max_sessions"
        assert r.headers["retry-after"] == "1"


async def test_total_frames_limit(settings: Settings) -> None:
    async with running(with_(settings, max_total_phys_pages=4096)) as (_, c):
        await new_session(c, phys_pages=3072)
        r = await c.post(API, json={"phys_pages": 2048})
        assert r.status_code == 429 and r.json()["limit"] == "max_total_phys_pages"


async def test_ops_limit(settings: Settings) -> None:
    async with running(with_(settings, max_ops=2)) as (_, c):
        sid = await new_session(c)
        await c.post(f"{API}/{sid}/memfds", json={})
        await c.post(f"{API}/{sid}/files/7/close")
        r = await c.post(f"{API}/{sid}/memfds", json={})
        assert r.status_code == 429 and r.json()["limit"] == "max_ops"
        assert "max_ops=2" in r.json()["message"]


async def test_a_long_op_does_not_hold_up_other_sessions(client: httpx.AsyncClient) -> None:
    import asyncio
    import time

    big = await new_session(client, phys_pages=1 << 22)
    small = await new_session(client)
    await client.post(f"{API}/{big}/memfds", json={})
    await client.post(f"{API}/{small}/memfds", json={})
    done: dict[str, float] = {}

    async def long_op() -> None:
        body = {"mode": [], "offset": 0, "len": (1 << 22) * 4096 - (1 << 24)}
        r = await client.post(f"{API}/{big}/files/3/fallocate", json=body)
        assert r.status_code == 200, r.text
        done["big"] = time.monotonic()

    async def short_ops() -> None:
        await asyncio.sleep(0.05)
        for i in range(20):
            r = await client.post(f"{API}/{small}/files/3/ftruncate", json={"length": i})
            assert r.status_code == 200
        done["small"] = time.monotonic()

    await asyncio.gather(long_op(), short_ops())
    assert done["small"] < done["big"]
    assert (await client.get(f"{API}/{big}/files/3")).json()["nr_pages"] > 4_000_000


async def test_engine_calls_in_threads_give_the_same_answers(settings: Settings) -> None:
    async with running(settings) as (_, c):
        sid = await new_session(c)
        await _workload(c, sid)
        inline = await _state(c, sid)
    async with running(with_(settings, engine_threads=True, data=settings.data / "t")) as (_, c):
        sid = await new_session(c)
        await _workload(c, sid)
        assert await _state(c, sid) == inline
