"""Find a pfn, a gfn or a page (/s/{sid}/find): fragment for htmx, a page without."""

from __future__ import annotations

import httpx
import pytest

from tests.pages.conftest import HX, api, guest_file, private_copy, session

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("q", "words"),
    [
        ("pfn 0", "frame 0 holds page 0 of vm0 (fd 3)"),
        ("frame 99999999", "no frame 99,999,999"),
        ("page 2", "page 2 of vm0 (fd 3): present"),
        ("page 9", "page 9 of vm0 (fd 3): a hole"),
        ("0x2", "page 2 of vm0 (fd 3)"),
        ("gfn 3", "no memslot of kvm0 holds gfn 3"),
        ("page -1", "-1 is no pfn"),
        ("pfn lots", "is not a number"),
        ("", "type a pfn"),
        ("page 99999", "nothing found"),
    ],
)
async def test_find(client: httpx.AsyncClient, q: str, words: str) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    await api(client, "POST", f"/sessions/{sid}/files/3/fallocate", mode=[], offset=0, len=16384)
    r = await client.get(f"/s/{sid}/find", params={"q": q}, headers=HX)
    assert r.status_code == 200 and r.text.startswith('<div id="find-results"')
    assert words in r.text.replace("&#39;", "'")


async def test_find_in_a_preview_and_without_htmx(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    await api(client, "POST", f"/sessions/{sid}/files/3/fallocate", mode=[], offset=0, len=16384)
    r = await client.get(f"/s/{sid}/find", params={"q": "page 1", "at": "1"})
    assert r.status_code == 200 and "<!doctype html>" in r.text
    assert "nothing found" in r.text  # after op 1 the file has no size yet
    r = await client.get(f"/s/{sid}/find", params={"q": "page 1"})
    assert "present, pfn 1" in r.text and "show page 1 of vm0 (fd 3)" in r.text
    assert (await client.get("/s/nosuchsession000000/find?q=1")).status_code == 404


async def test_find_names_a_private_mappings_copy(client: httpx.AsyncClient) -> None:
    sid, pfn = await private_copy(client, 4097)
    r = await client.get(f"/s/{sid}/find", params={"q": f"pfn {pfn}"}, headers=HX)
    assert r.status_code == 200
    assert "is mapping 1's MAP_PRIVATE copy of page 1 of ram (fd 3)" in r.text.replace("&#39;", "'")
