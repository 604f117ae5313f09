"""Views: page runs, frame runs, owners, the event log."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import guest_file, new_session

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


async def test_pages_are_runs_not_pages(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    await guest_file(client, s, size=1 << 40)
    b = f"{API}/{s}/files/3"
    await client.post(f"{b}/fallocate", json={"mode": [], "offset": 4096, "len": 8192})
    r = await client.get(f"{b}/pages")
    assert r.status_code == 200
    ext = r.json()["extents"]
    assert [(e["start"], e["end"], e["state"]) for e in ext] == [
        (0, 1, "hole"),
        (1, 3, "present"),
        (3, 1 << 28, "hole"),
    ]
    present = ext[1]
    assert present["order"] == 0 and present["locked"] is False and present["mapped_by"] == []
    r = await client.get(f"{b}/pages", params={"start": 2, "end": 10})
    assert [(e["start"], e["end"]) for e in r.json()["extents"]] == [(2, 3), (3, 10)]
    r = await client.get(f"{b}/pages", params={"limit": 1})
    assert len(r.json()["extents"]) == 1 and r.json()["next"] == 1
    for params in ({"start": -1}, {"end": 2**64}, {"limit": 0}, {"start": "x"}):
        assert (await client.get(f"{b}/pages", params=params)).status_code == 422


async def test_phys(client: httpx.AsyncClient) -> None:
    s = await new_session(client, phys_pages=4096)
    await guest_file(client, s)
    await client.post(f"{API}/{s}/files/3/fallocate", json={"mode": [], "offset": 0, "len": 8192})
    p = (await client.get(f"{API}/{s}/phys")).json()
    assert (p["total"], p["used"], p["free"]) == (4096, 2, 4094)
    assert sum((1 << int(k)) * v for k, v in p["free_by_order"].items()) == 4094
    cache = [e for e in p["extents"] if e["state"] == "cache"]
    assert sum(e["end"] - e["start"] for e in cache) == 2 and cache[0]["fd"] == 3
    r = await client.get(f"{API}/{s}/phys", params={"start": 1, "end": 2})
    assert [(e["start"], e["end"]) for e in r.json()["extents"]] == [(1, 2)]


async def test_events_name_their_op(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    await guest_file(client, s)
    pfn = (
        await client.post(f"{API}/{s}/files/3/get_lock_pfn", json={"index": 0, "alloc": True})
    ).json()["pfn"]
    await client.post(
        f"{API}/{s}/files/3/fallocate", json={"mode": PUNCH, "offset": 0, "len": 4096}
    )
    await client.post(f"{API}/{s}/put_unlock_pfn", json={"pfn": pfn})
    r = await client.get(f"{API}/{s}/events")
    evs = r.json()["events"]
    assert r.json()["last_seq"] == len(evs) == 9
    assert [e["seq"] for e in evs] == list(range(1, 10))
    assert [e["op_seq"] for e in evs] == [1, 2, 3, 4, 5, 6, 7, 8, 8]
    assert [e["op"] for e in evs][-4:] == ["get_lock_pfn", "fallocate", "put_unlock_pfn", "wake"]
    assert evs[6]["pending"] is True and evs[8]["wakes_seq"] == 7
    assert all(set(e) >= {"seq", "op", "args", "ok", "errno", "result", "callbacks"} for e in evs)
    r = await client.get(f"{API}/{s}/events", params={"after": 7, "limit": 1})
    assert [e["seq"] for e in r.json()["events"]] == [8]
    r = await client.get(f"{API}/{s}/events", params={"after": 100})
    assert r.json()["events"] == []


async def test_failed_ops_are_events(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    await client.post(f"{API}/{s}/files/5/ftruncate", json={"length": 0})
    evs = (await client.get(f"{API}/{s}/events")).json()["events"]
    assert [(e["op"], e["ok"], e["errno"]) for e in evs] == [("ftruncate", False, "EBADF")]


async def test_scenarios(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/scenarios")
    names = [s["name"] for s in r.json()["scenarios"]]
    assert "punch-waits-on-locked-page" in names
    for name in names:
        sc = (await client.get(f"/api/v1/scenarios/{name}")).json()
        assert len(sc["steps"]) == len(sc["trace"]["ops"]) > 0
        r = await client.post(API, json={"trace": sc["trace"]})
        assert r.status_code == 201, (name, r.text)
        assert r.json()["seq"] == len(sc["steps"])
    assert (await client.get("/api/v1/scenarios/nope")).status_code == 404
