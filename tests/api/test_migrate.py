"""Page migration over REST: an ordinary memfd page moves to new frames with
its data; a guest-sealed page refuses with ENOTSUPP (the RFC's pinning)."""

from __future__ import annotations

import base64

import httpx
import pytest


@pytest.mark.anyio
async def test_migrate_moves_ordinary_pages_and_refuses_guest_pages(
    client: httpx.AsyncClient,
) -> None:
    sid = (await client.post("/api/v1/sessions", json={"phys_pages": 4096})).json()["id"]
    base = f"/api/v1/sessions/{sid}"
    fd = (await client.post(f"{base}/memfds", json={"name": "plain"})).json()["fd"]
    data = base64.b64encode(b"hello").decode()
    r = await client.post(f"{base}/files/{fd}/pwrite", json={"offset": 0, "data_b64": data})
    assert r.status_code == 200
    old = (await client.get(f"{base}/files/{fd}/pages")).json()["extents"][0]["pfn"]
    r = await client.post(f"{base}/migrate_page", json={"pfn": old})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["from_pfn"] == old and moved["pfn"] != old
    assert (moved["fd"], moved["index"]) == (fd, 0)
    now = (await client.get(f"{base}/files/{fd}/pages")).json()["extents"][0]["pfn"]
    assert now == moved["pfn"]
    r = await client.post(f"{base}/files/{fd}/pread", json={"offset": 0, "count": 5})
    assert base64.b64decode(r.json()["data_b64"]) == b"hello"
    gone = await client.post(f"{base}/migrate_page", json={"pfn": old})
    assert (gone.status_code, gone.json()["errno"]) == (404, "ENOENT")  # no such page

    g = await client.post(f"{base}/memfds", json={"name": "vm", "flags": ["MFD_ALLOW_SEALING"]})
    gfd = g.json()["fd"]
    seal = {"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}
    assert (await client.post(f"{base}/files/{gfd}/fcntl", json=seal)).status_code == 200
    assert (await client.post(f"{base}/files/{gfd}/ftruncate", json={"length": 4096})).is_success
    body = {"mode": [], "offset": 0, "len": 4096}
    assert (await client.post(f"{base}/files/{gfd}/fallocate", json=body)).is_success
    pfn = (await client.get(f"{base}/files/{gfd}/pages")).json()["extents"][0]["pfn"]
    r = await client.post(f"{base}/migrate_page", json={"pfn": pfn})
    assert r.status_code == 409
    err = r.json()
    assert err["errno"] == "ENOTSUPP" and err["op"] == "migrate_page"
    assert "F_SEAL_GUEST" in err["message"]
    trace = (await client.get(f"{base}/trace")).json()
    assert [op["op"] for op in trace["ops"]].count("migrate_page") == 3
    replayed = await client.post("/api/v1/sessions", json={"trace": trace})
    assert replayed.status_code == 201, replayed.text


@pytest.mark.anyio
async def test_migrating_a_huge_page_names_the_4k_page_asked_for(
    client: httpx.AsyncClient,
) -> None:
    body = {"phys_pages": 4096, "thp": "always"}
    sid = (await client.post("/api/v1/sessions", json=body)).json()["id"]
    base = f"/api/v1/sessions/{sid}"
    fd = (await client.post(f"{base}/memfds", json={"name": "huge"})).json()["fd"]
    await client.post(f"{base}/files/{fd}/ftruncate", json={"length": 2 << 20})
    r = await client.post(f"{base}/files/{fd}/fallocate", json={"offset": 0, "len": 2 << 20})
    assert r.status_code == 200, r.text
    head = (await client.get(f"{base}/files/{fd}/pages")).json()["extents"][0]
    assert head["order"] == 9
    r = await client.post(f"{base}/migrate_page", json={"pfn": head["pfn"] + 5})
    assert r.status_code == 200, r.text
    moved = r.json()
    assert (moved["fd"], moved["index"]) == (fd, 5)
    now = (await client.get(f"{base}/files/{fd}/pages")).json()["extents"][0]
    assert now["order"] == 9 and moved["pfn"] == now["pfn"] + 5 and now["pfn"] != head["pfn"]
