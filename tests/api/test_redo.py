"""Redo: ops a rewind took out replay as new ops of the log until a new op is made."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"
PUNCH = ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
OPS: list[dict[str, Any]] = [
    {"op": "memfd_create", "args": {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}},
    {"op": "ftruncate", "args": {"fd": 3, "length": 65536}},
    {"op": "fallocate", "args": {"fd": 3, "mode": [], "offset": 0, "len": 16384}},
    {"op": "fallocate", "args": {"fd": 3, "mode": PUNCH, "offset": 4096, "len": 4096}},
    {"op": "pread", "args": {"fd": 3, "offset": 1 << 20, "count": 8}},
]


async def session(client: httpx.AsyncClient) -> str:
    r = await client.post(API, json={"trace": {"ops": OPS}})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_undo_then_redo_gives_the_same_log_and_state(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    before = (await client.get(f"{API}/{sid}")).json()
    trace = (await client.get(f"{API}/{sid}/trace")).json()
    r = await client.post(f"{API}/{sid}/rewind", json={"seq": 2})
    assert r.json()["seq"] == 2 and r.json()["redo"] == 3
    r = await client.post(f"{API}/{sid}/redo", json={})
    assert r.status_code == 200, r.text
    assert r.json()["seq"] == 3 and r.json()["redo"] == 2
    assert r.json()["files"][0]["nr_pages"] == 4
    r = await client.post(f"{API}/{sid}/redo", json={"count": 2})
    assert r.json() == before
    assert (await client.get(f"{API}/{sid}/trace")).json() == trace
    # the redone ops are events again, with the same seqs as before
    events = (await client.get(f"{API}/{sid}/events")).json()["events"]
    assert [e["op_seq"] for e in events][-1] == 5


async def test_redo_is_refused_when_empty_or_too_many(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    r = await client.post(f"{API}/{sid}/redo")
    assert r.status_code == 409 and r.json()["errno"] == "ERANGE"
    assert "nothing to redo" in r.json()["message"]
    await client.post(f"{API}/{sid}/rewind", json={"seq": 4})
    r = await client.post(f"{API}/{sid}/redo", json={"count": 2})
    assert r.status_code == 409 and "only 1 ops to redo" in r.json()["message"]
    for bad in ({"count": 0}, {"count": "1"}, {"count": -1}):
        assert (await client.post(f"{API}/{sid}/redo", json=bad)).status_code == 422
    r = await client.post(f"{API}/nosuchsession0000/redo")
    assert r.status_code == 404


async def test_a_new_op_ends_the_redo_stack(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await client.post(f"{API}/{sid}/rewind", json={"seq": 3})
    r = await client.post(f"{API}/{sid}/files/3/ftruncate", json={"length": 8192})
    assert r.status_code == 200
    assert (await client.get(f"{API}/{sid}")).json()["redo"] == 0
    assert (await client.post(f"{API}/{sid}/redo")).status_code == 409
    # a request refused before the engine is no op: the stack stays
    await client.post(f"{API}/{sid}/rewind", json={"seq": 3})
    r = await client.post(f"{API}/{sid}/files/3/ftruncate", json={"length": "big"})
    assert r.status_code == 422
    assert (await client.get(f"{API}/{sid}")).json()["redo"] == 1


async def test_a_redone_pwrite_keeps_its_data(client: httpx.AsyncClient) -> None:
    """The log keeps light copies of stored ops (a pwrite's data is read back from the
    store); a rewind drops the rows, so the redo stack must keep the real payload."""
    sid = await session(client)
    data = base64.b64encode(b"sealscope" * 100).decode()
    r = await client.post(f"{API}/{sid}/files/3/pwrite", json={"offset": 100, "data_b64": data})
    assert r.status_code == 200, r.text
    trace = (await client.get(f"{API}/{sid}/trace")).json()
    await client.post(f"{API}/{sid}/rewind", json={"seq": 5})
    r = await client.post(f"{API}/{sid}/redo")
    assert r.status_code == 200, r.text
    assert (await client.get(f"{API}/{sid}/trace")).json() == trace
    r = await client.post(f"{API}/{sid}/files/3/pread", json={"offset": 100, "count": 900})
    assert base64.b64decode(r.json()["data_b64"]) == b"sealscope" * 100
