"""Op A vs op B (/s/{sid}/versus): both states and what changed between them."""

from __future__ import annotations

import httpx
import pytest

from app.pages.maps import DASH
from tests.pages.conftest import api, guest_file, session

pytestmark = pytest.mark.anyio


async def test_versus(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)  # 5 ops
    await api(client, "POST", f"/sessions/{sid}/files/3/fallocate", mode=[], offset=0, len=16384)
    r = await client.get(f"/s/{sid}/versus?a=2&b=6")
    assert r.status_code == 200
    text = r.text.replace("&gt;", ">")
    assert "vm0 (fd 3): size 0 → 65,536 bytes" in text
    assert "vm0 (fd 3): 0 → 4 pages resident" in text and "frames in use: 0 → 4" in text
    assert "owner kvm0 (owner 0): made" in text
    assert f'Pages of vm0 (fd 3) <span class="muted small">0{DASH}15' in r.text
    # defaults and bounds: a = 0, b = the live state; out of range reads as the default
    r = await client.get(f"/s/{sid}/versus?a=99&b=x")
    assert "after op 0" in r.text and "after op 6" in r.text
    r = await client.get(f"/s/{sid}/versus?a=6&b=6")
    assert "Nothing differs" in r.text
    assert (await client.get("/s/nosuchsession000000/versus")).status_code == 404
