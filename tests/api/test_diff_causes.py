"""Side by side: a divergence from alike states is a root cause; later ones follow it."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio
API = "/api/v1/sessions"


async def test_root_causes_and_what_follows(client: httpx.AsyncClient) -> None:
    ops = [
        {"op": "memfd_create", "args": {"name": "vm0", "flags": ["MFD_ALLOW_SEALING"]}},
        {"op": "fcntl", "args": {"fd": 3, "cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]}},
        {"op": "ftruncate", "args": {"fd": 3, "length": 65536}},
        {"op": "pread", "args": {"fd": 3, "offset": 0, "count": 8}},
    ]
    sid = (await client.post(API, json={"trace": {"ops": ops}})).json()["id"]
    r = await client.post(f"{API}/{sid}/diff", json={"variant": "guest-memfd", "base": "rfc-v2"})
    assert r.status_code == 200, r.text
    d = r.json()
    by_n = {row["n"]: row for row in d["rows"]}
    assert by_n[1]["cause"] is None and by_n[1]["differs"] == []
    assert by_n[2]["cause"] == "root" and by_n[2]["follows"] is None
    assert by_n[4]["cause"] == "follows" and by_n[4]["follows"] == 2  # EPERM: the seal's
    assert d["roots"] == 1 and d["diverging"] >= 2
    # the same design twice: nothing differs, nothing is a cause
    r = await client.post(f"{API}/{sid}/diff", json={"variant": "rfc-v2", "base": "rfc-v2"})
    assert r.json()["roots"] == 0 and all(row["cause"] is None for row in r.json()["rows"])
