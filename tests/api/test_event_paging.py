"""A punch of many present pages makes one event with many callbacks: the
event carries the first 4096 and the totals; the rest come a page at a time."""

from __future__ import annotations

import httpx
import pytest

PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]


@pytest.mark.anyio
async def test_big_event_is_capped_and_pageable(client: httpx.AsyncClient) -> None:
    sid = (await client.post("/api/v1/sessions", json={"phys_pages": 16384})).json()["id"]
    base = f"/api/v1/sessions/{sid}"
    fd = (await client.post(f"{base}/memfds", json={"name": "big"})).json()["fd"]
    owner = (await client.post(f"{base}/owners", json={"name": "r", "kind": "recorder"})).json()
    r = await client.post(f"{base}/files/{fd}/register_guest", json={"owner_id": owner["owner_id"]})
    assert r.status_code == 200
    n = 5000
    body = {"mode": [], "offset": 0, "len": n * 4096}
    assert (await client.post(f"{base}/files/{fd}/fallocate", json=body)).status_code == 200
    body = {"mode": PUNCH, "offset": 0, "len": n * 4096}
    assert (await client.post(f"{base}/files/{fd}/fallocate", json=body)).status_code == 200
    events = (await client.get(f"{base}/events")).json()["events"]
    punch = events[-1]
    assert punch["callbacks_total"] == n and len(punch["callbacks"]) == 4096
    page = (
        await client.get(f"{base}/events/{punch['seq']}/callbacks", params={"first": 4090})
    ).json()
    assert page["total"] == n and page["first"] == 4090
    assert [c["start"] for c in page["callbacks"]] == list(range(4090, n))
    assert all(c["end"] == c["start"] and c["end_inclusive"] for c in page["callbacks"])
    missing = await client.get(f"{base}/events/999999/callbacks")
    assert missing.status_code == 404
