"""The review's alternatives as switches: a session's `variants` (multi_owner,
mmap_shared) and profile change what the same ops answer; POST …/diff replays one log
under two designs and says, op by op, where they part."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.settings import Settings
from tests.api.helpers import guest_file, new_session, running, with_

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


async def two_owners(c: httpx.AsyncClient, **session: Any) -> tuple[str, httpx.Response]:
    """A guest file with owner 0 registered; owner 1 (a recorder) tries to register."""
    sid = await new_session(c, **session)
    await guest_file(c, sid)
    await c.post(f"{API}/{sid}/owners", json={"name": "vfio0", "kind": "recorder"})
    r = await c.post(f"{API}/{sid}/files/3/register_guest", json={"owner_id": "1"})
    return sid, r


async def callbacks_of_last_op(c: httpx.AsyncClient, sid: str, before: int) -> list[tuple]:
    evs = (await c.get(f"{API}/{sid}/events", params={"after": before})).json()["events"]
    return [
        (cb["fn"], cb["owner_id"], cb["start"], cb["end"]) for e in evs for cb in e["callbacks"]
    ]


async def test_the_rfc_as_posted_takes_one_owner(client: httpx.AsyncClient) -> None:
    sid, r = await two_owners(client)
    assert r.status_code == 409 and r.json()["errno"] == "EPERM"
    r = await client.post(f"{API}/{sid}/files/3/unregister_guest", json={"owner_id": "0"})
    assert r.status_code == 409 and r.json()["errno"] == "EINVAL"  # the RFC has no unregister


async def test_multi_owner_fans_out_and_counts_users(client: httpx.AsyncClient) -> None:
    sid, r = await two_owners(client, variants=["multi_owner"])
    assert r.status_code == 200 and r.json()["owners"] == ["0", "1"]
    s = (await client.get(f"{API}/{sid}")).json()
    assert s["variants"] == ["multi_owner"]
    before = s["event_seq"]
    body = {"mode": [], "offset": 0, "len": 8192}
    assert (await client.post(f"{API}/{sid}/files/3/fallocate", json=body)).status_code == 200
    assert await callbacks_of_last_op(client, sid, before) == [
        ("fallocate", "0", 0, 2),
        ("fallocate", "1", 0, 2),
    ]
    # a second registration of owner 1 counts; two unregisters take it away
    await client.post(f"{API}/{sid}/files/3/register_guest", json={"owner_id": "1"})
    for owners in (["0", "1"], ["0"]):
        r = await client.post(f"{API}/{sid}/files/3/unregister_guest", json={"owner_id": "1"})
        assert r.status_code == 200 and r.json()["owners"] == owners
    before = (await client.get(f"{API}/{sid}")).json()["event_seq"]
    body = {"mode": PUNCH, "offset": 0, "len": 4096}
    assert (await client.post(f"{API}/{sid}/files/3/fallocate", json=body)).status_code == 200
    assert await callbacks_of_last_op(client, sid, before) == [("invalidate_page_range", "0", 0, 0)]


@pytest.mark.parametrize(("variants", "status"), [([], 409), (["mmap_shared"], 201)])
async def test_mmap_shared_maps_a_guest_file(
    client: httpx.AsyncClient, variants: list[str], status: int
) -> None:
    sid = await new_session(client, variants=variants)
    await guest_file(client, sid, 8192)
    body = {"offset": 0, "length": 4096, "prot": ["PROT_READ"], "flags": ["MAP_SHARED"]}
    r = await client.post(f"{API}/{sid}/files/3/mmap", json=body)
    assert r.status_code == status, r.text
    # reads stay refused either way
    r = await client.post(f"{API}/{sid}/files/3/pread", json={"offset": 0, "count": 4})
    assert r.json()["errno"] == "EPERM"


async def test_variants_travel_with_the_trace(client: httpx.AsyncClient) -> None:
    sid = await new_session(client, variants=["mmap_shared", "multi_owner"], thp="always")
    await guest_file(client, sid)
    trace = (await client.get(f"{API}/{sid}/trace")).json()
    assert trace["variants"] == ["mmap_shared", "multi_owner"] and trace["thp"] == "always"
    r = await client.post(API, json={"trace": trace})
    assert r.status_code == 201 and r.json()["variants"] == ["mmap_shared", "multi_owner"]
    r = await client.post(API, json={"variants": ["nope"]})
    assert r.status_code == 422
    default = (await client.post(API, json={})).json()
    assert default["variants"] == [] and default["profile"] == "rfc-v2"


async def test_diff_says_where_the_designs_part(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/scenarios/multi-owner-fanout/sessions", json={"steps": None})
    sid = r.json()["id"]
    seq = r.json()["seq"]
    d = (await client.post(f"{API}/{sid}/diff", json={"variant": "rfc-v2"})).json()
    assert d["a"]["variants"] == ["multi_owner"] and d["b"]["design"] == "rfc-v2"
    assert d["ops"] == d["compared"] == seq == len(d["rows"])
    assert d["first_divergence"] == 7
    row = d["rows"][6]
    assert row["op"] == "register_guest" and row["differs"] == ["result"]
    assert row["a"]["ok"] and row["b"]["errno"] == "EPERM"
    fan = d["rows"][8]  # the fallocate: one callback on the RFC, two with multi_owner
    assert fan["differs"] == ["callbacks"]
    assert fan["a"]["callbacks_total"] == 2 and fan["b"]["callbacks_total"] == 1
    assert fan["a"]["frames"] == fan["b"]["frames"] == 4
    only = (
        await client.post(f"{API}/{sid}/diff", json={"variant": "rfc-v2", "only_diverging": True})
    ).json()
    assert [r["n"] for r in only["rows"]] == [r["n"] for r in d["rows"] if r["differs"]]
    page = (
        await client.post(f"{API}/{sid}/diff", json={"variant": "rfc-v2", "first": 3, "limit": 2})
    ).json()
    assert [r["n"] for r in page["rows"]] == [3, 4] and page["next"] == 5
    # the session itself did not change
    assert (await client.get(f"{API}/{sid}")).json()["seq"] == seq


async def test_diff_against_today_and_between_two_designs(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/scenarios/rfc-lifecycle/sessions", json={"steps": None})
    sid = r.json()["id"]
    d = (await client.post(f"{API}/{sid}/diff", json={"variant": "guest-memfd"})).json()
    seal = d["rows"][1]
    assert seal["b"]["result"].startswith("not run: unknown seal 'F_SEAL_GUEST'")
    d = (
        await client.post(f"{API}/{sid}/diff", json={"base": "rfc-v2", "variant": "mmap_shared"})
    ).json()
    assert d["diverging"] == 0 and d["first_divergence"] is None
    for bad in ({"variant": "nope"}, {}, {"variant": "rfc-v2", "limit": 0}):
        assert (await client.post(f"{API}/{sid}/diff", json=bad)).status_code == 422
    assert (await client.post(f"{API}/nope/diff", json={"variant": "rfc-v2"})).status_code == 404


async def test_diff_counts_its_machines_against_the_limit(settings: Settings) -> None:
    async with running(with_(settings, max_total_phys_pages=2 * 1024)) as (_, c):
        sid = await new_session(c, phys_pages=1024)
        r = await c.post(f"{API}/{sid}/diff", json={"variant": "rfc-v2"})
        assert r.status_code == 429 and r.json()["limit"] == "max_total_phys_pages"
