"""A page on another site cannot post the forms (issue 10, item 10): every
state-changing form refuses a cross-site post; same-origin posts keep working."""

from __future__ import annotations

import httpx
import pytest

from tests.pages.conftest import guest_file, session

pytestmark = pytest.mark.anyio

EVIL = [
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://evil.example", "Content-Type": "text/plain"},
]
SAME = [{"Sec-Fetch-Site": "same-origin", "Origin": "http://test"}, {"Origin": "http://test"}, {}]


def _forms(sid: str) -> list[tuple[str, dict[str, str]]]:
    return [
        ("/new", {"profile": "rfc-v2"}),
        ("/import", {"trace": '{"ops": []}'}),
        ("/walk/rfc-lifecycle", {}),
        (f"/s/{sid}/do/memfd_create", {"name": "x"}),
        (f"/s/{sid}/do/fallocate", {"fd": "3", "offset": "0", "len": "4096"}),
        (f"/s/{sid}/rewind", {"seq": "1"}),
        (f"/s/{sid}/delete", {}),
    ]


@pytest.mark.parametrize("headers", EVIL, ids=["cross-site", "same-site", "origin", "null", "text"])
async def test_cross_site_form_posts_are_refused(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    before = (await client.get(f"/api/v1/sessions/{sid}")).json()
    count = len((await client.get("/api/v1/sessions/" + sid + "/trace")).json()["ops"])
    for path, form in _forms(sid):
        r = await client.post(path, data=form, headers=headers)
        assert r.status_code == 403, (path, r.status_code, r.text[:200])
        assert r.json()["errno"] == "EPERM" and "cross-site" in r.json()["message"]
    r = await client.delete(f"/api/v1/sessions/{sid}", headers=headers)
    assert r.status_code == 403
    assert (await client.get(f"/api/v1/sessions/{sid}")).json() == before
    assert len((await client.get(f"/api/v1/sessions/{sid}/trace")).json()["ops"]) == count


@pytest.mark.parametrize("headers", SAME, ids=["fetch-metadata", "origin", "no-browser"])
async def test_same_origin_posts_work(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    sid = await session(client)
    for path, form in _forms(sid):
        r = await client.post(path, data=form, headers=headers)
        assert r.status_code in (200, 204, 303), (path, r.status_code, r.text[:200])
    assert (await client.get(f"/api/v1/sessions/{sid}")).status_code == 404  # deleted


async def test_reads_are_never_refused(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    r = await client.get(f"/s/{sid}", headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 200  # a link from elsewhere still opens the page
