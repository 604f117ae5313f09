"""The guest interface and the simulated owners."""

from __future__ import annotations

import httpx
import pytest

from tests.api.helpers import guest_file, new_session

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


async def test_owner_create_and_get(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    r = await client.post(f"{API}/{s}/owners", json={"name": "kvm0", "kind": "kvm"})
    assert r.status_code == 201
    assert r.json() == {"owner_id": "0", "name": "kvm0", "kind": "kvm"}
    r = await client.post(f"{API}/{s}/owners", json={"name": "rec", "kind": "recorder"})
    assert r.json()["owner_id"] == "1"
    r = await client.get(f"{API}/{s}/owners/1")
    assert r.status_code == 200
    assert r.json() | {"memslots": [], "mapped": []} == r.json()
    assert r.json()["kind"] == "recorder"
    r = await client.post(f"{API}/{s}/owners", json={"kind": "xen"})
    assert r.status_code == 422


@pytest.mark.parametrize("owner", ["7", "abc", "01", "-1", "99999999999999999999"])
async def test_unknown_owner_is_404(client: httpx.AsyncClient, owner: str) -> None:
    s = await new_session(client)
    await guest_file(client, s)
    r = await client.get(f"{API}/{s}/owners/{owner}")
    assert r.status_code == 404
    r = await client.post(f"{API}/{s}/owners/{owner}/fault", json={"gfn": 0})
    assert r.status_code == 404
    r = await client.post(f"{API}/{s}/files/3/register_guest", json={"owner_id": owner})
    assert r.status_code == 404 and r.json()["errno"] == "ENOENT"


async def test_register_guest(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    owner = await guest_file(client, s)
    r = await client.get(f"{API}/{s}/files/3")
    assert r.json()["owners"] == [owner]
    r = await client.post(f"{API}/{s}/files/3/register_guest", json={"owner_id": None})
    assert r.status_code == 409 and r.json()["errno"] == "EINVAL"
    r = await client.post(f"{API}/{s}/owners", json={"name": "other"})
    r = await client.post(f"{API}/{s}/files/3/register_guest", json={"owner_id": "1"})
    assert r.status_code == 409 and r.json()["errno"] == "EPERM"
    r = await client.post(f"{API}/{s}/files/3/register_guest", json={"owner_id": 0})
    assert r.status_code == 200  # the same owner again; a JSON int is taken too


async def test_lock_punch_waits_then_unlock_wakes(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    await guest_file(client, s)
    r = await client.post(f"{API}/{s}/files/3/get_lock_pfn", json={"index": 0, "alloc": True})
    assert r.status_code == 200
    pfn = r.json()
    assert pfn["order"] == 0 and pfn["pending"] is False and isinstance(pfn["pfn"], int)
    r = await client.post(
        f"{API}/{s}/files/3/fallocate", json={"mode": PUNCH, "offset": 0, "len": 4096}
    )
    assert r.status_code == 200 and r.json()["pending"] is True
    punch_seq = r.json()["seq"]
    assert (await client.get(f"{API}/{s}")).json()["waiters"][0]["seq"] == punch_seq
    r = await client.post(f"{API}/{s}/files/3/get_lock_pfn", json={"index": 0, "alloc": True})
    assert r.json()["pending"] is False or r.json()["pfn"] is None
    r = await client.post(f"{API}/{s}/put_unlock_pfn", json={"pfn": pfn["pfn"]})
    assert r.status_code == 200
    assert punch_seq in r.json()["wakes"]
    events = (await client.get(f"{API}/{s}/events", params={"after": r.json()["seq"]})).json()
    wake = next(e for e in events["events"] if e["op"] == "wake")
    assert wake["wakes_seq"] == punch_seq
    assert wake["callbacks"][0] == {
        "fn": "invalidate_page_range",
        "owner_id": "0",
        "start": 0,
        "end": 0,
        "end_inclusive": True,
    }


async def test_null_page_hazard(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    await guest_file(client, s)
    r = await client.post(f"{API}/{s}/files/3/get_lock_pfn", json={"index": 1, "alloc": False})
    assert r.status_code == 409
    assert r.json()["hazard"] == "null_page"
    r = await client.post(f"{API}/{s}/files/3/get_lock_pfn", json={"index": 2**64 - 1})
    assert r.status_code == 409 and r.json()["errno"] == "EINVAL"


async def test_put_unlock_unlocked_page(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    r = await client.post(f"{API}/{s}/put_unlock_pfn", json={"pfn": 5})
    assert r.status_code == 409
    r = await client.post(f"{API}/{s}/put_unlock_pfn", json={"pfn": 2**64})
    assert r.status_code == 422


async def test_invalidate_reports_callbacks(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    owner = await guest_file(client, s, kind="recorder")
    await client.post(f"{API}/{s}/files/3/fallocate", json={"mode": [], "offset": 0, "len": 8192})
    r = await client.post(f"{API}/{s}/files/3/invalidate", json={"start": 0, "end": 5})
    assert r.status_code == 200
    cbs = r.json()["callbacks"]
    assert [(c["fn"], c["owner_id"], c["start"], c["end"]) for c in cbs] == [
        ("invalidate_page_range", owner, 0, 0),
        ("invalidate_page_range", owner, 1, 1),
    ]


async def test_memslot_fault_and_owner_view(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    owner = await guest_file(client, s)
    body = {"fd": 3, "gfn": 256, "index": 0, "npages": 16}
    r = await client.post(f"{API}/{s}/owners/{owner}/memslots", json=body)
    assert r.status_code == 201
    assert r.json() | body == r.json() and r.json()["owner_id"] == owner
    r = await client.post(f"{API}/{s}/owners/{owner}/fault", json={"gfn": 257})
    assert r.status_code == 200
    f = r.json()
    assert f["gfn"] == 257 and f["order"] == 0 and f["pending"] is False
    o = (await client.get(f"{API}/{s}/owners/{owner}")).json()
    assert o["memslots"] == [{"slot": o["memslots"][0]["slot"], "owner_id": owner, **body}]
    assert o["mapped"] == [{"gfn": 257, "npages": 1, "pfn": f["pfn"], "order": 0}]
    pages = (await client.get(f"{API}/{s}/files/3/pages")).json()["extents"]
    assert any(e["mapped_by"] == [owner] for e in pages)
    r = await client.post(f"{API}/{s}/owners/{owner}/fault", json={"gfn": 4})
    assert r.status_code in (404, 409)  # no memslot there
