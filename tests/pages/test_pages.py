"""Every page and fragment: status, key content, whole page vs htmx fragment, the Vary
and Link headers, escaping, and unknown sessions."""

from __future__ import annotations

import re

import httpx
import pytest

from app.pages.session import PARTS
from tests.pages.conftest import HX, api, guest_file, session

pytestmark = pytest.mark.anyio
XSS = "<script>alert(1)</script>"


def whole(r: httpx.Response) -> bool:
    return r.text.lstrip().lower().startswith("<!doctype html>")


def twin(r: httpx.Response) -> str:
    """The JSON twin named by the Link header."""
    m = re.fullmatch(r'<([^>]+)>; rel="alternate"; type="application/json"', r.headers["link"])
    assert m, r.headers["link"]
    return m.group(1)


async def test_home(client: httpx.AsyncClient) -> None:
    r = await client.get("/")
    assert r.status_code == 200 and whole(r)
    assert r.headers["vary"] == "HX-Request"
    assert "text/html" in r.headers["content-type"]
    assert "script-src 'self'" in r.headers["content-security-policy"]
    for text in ("New session", "rfc-v2", "guest-memfd", "Guided walkthroughs", "Import a trace"):
        assert text in r.text
    assert 'action="/walk/guest-seal-refused"' in r.text
    assert "/static/vendor/htmx.min.js" in r.text and "//unpkg" not in r.text
    assert (await client.get(twin(r))).json()["scenarios"]


async def test_new_session_form_redirects_to_it(client: httpx.AsyncClient) -> None:
    form = {"profile": "guest-memfd", "memory": str(2**26), "thp": "always"}
    r = await client.post("/new", data=form)
    assert r.status_code == 303
    sid = r.headers["location"].removeprefix("/s/")
    detail = await api(client, "GET", f"/sessions/{sid}")
    config = (detail["profile"], detail["phys_pages"], detail["thp"])
    assert config == ("guest-memfd", 16384, "always")


@pytest.mark.parametrize(
    "form",
    [{"profile": "rfc-v3"}, {"memory": "1000"}, {"memory": "lots"}, {"thp": "sometimes"}],
    ids=["profile", "memory", "memory-text", "thp"],
)
async def test_new_session_bad_form_says_why(client: httpx.AsyncClient, form: dict) -> None:
    r = await client.post("/new", data=form)
    assert r.status_code == 422 and whole(r)
    assert "EINVAL" in r.text and 'class="refusal"' in r.text


async def test_session_page_whole_and_fragment(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await client.get(f"/s/{sid}")
    assert r.status_code == 200 and whole(r)
    assert r.headers["vary"] == "HX-Request"
    for part in ("view", "files", "pagemap", "framemap", "owners", "timeline", "actions", "result"):
        assert f'id="{part}"' in r.text
    assert f'sse-connect="/api/v1/sessions/{sid}/events/stream?after=5"' in r.text
    assert twin(r) == f"/api/v1/sessions/{sid}"
    assert "sealscope_recent" in r.headers["set-cookie"]
    ids = re.findall(r'\sid="([^"]+)"', r.text)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    frag = await client.get(f"/s/{sid}", headers=HX)
    assert frag.status_code == 200 and not whole(frag)
    assert frag.text.startswith('<section id="view"')
    assert frag.headers["vary"] == "HX-Request" and twin(frag) == twin(r)
    assert 'id="act-file" hx-swap-oob="true"' in frag.text  # the actions panel follows
    restore = await client.get(f"/s/{sid}", headers=HX | {"HX-History-Restore-Request": "true"})
    assert whole(restore)


@pytest.mark.parametrize("part", sorted(PARTS))
async def test_each_fragment(client: httpx.AsyncClient, part: str) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    r = await client.get(f"/s/{sid}/{part}", headers=HX)
    assert r.status_code == 200 and not whole(r), r.text[:300]
    assert r.text.lstrip().startswith(f'<section id="{part}"')
    assert r.headers["vary"] == "HX-Request"
    j = await client.get(twin(r))
    assert j.status_code == 200 and j.headers["content-type"].startswith("application/json")
    page = await client.get(f"/s/{sid}/{part}")  # no htmx: the whole page, same state
    assert page.status_code == 200 and whole(page) and f'id="{part}"' in page.text


async def test_names_are_text_never_markup(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    s = f"/sessions/{sid}"
    await api(client, "POST", f"{s}/memfds", name=XSS, flags=["MFD_ALLOW_SEALING"])
    await api(client, "POST", f"{s}/files/3/ftruncate", length=8192)
    await api(client, "POST", f"{s}/files/3/fallocate", mode=[], offset=0, len=4096)
    await api(client, "POST", f"{s}/owners", name=XSS, kind="kvm")
    await api(client, "POST", f"{s}/files/3/register_guest", owner_id="0")
    for url in (f"/s/{sid}", f"/s/{sid}?page=0", f"/s/{sid}?at=1"):
        for headers in ({}, HX):
            r = await client.get(url, headers=headers)
            assert r.status_code == 200
            assert XSS not in r.text, url
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    r = await client.post(
        f"/s/{sid}/do/memfd_create", data={"name": XSS, "flags": "MFD_ALLOW_SEALING"}, headers=HX
    )
    assert r.status_code == 200 and XSS not in r.text and "fd 4" in r.text


@pytest.mark.parametrize(
    "url", ["/s/nope", "/s/nope/pagemap", "/s/nope/why/1", "/s/{sid}/nothing", "/s/{sid}/why/99"]
)
async def test_unknown_is_404_page(client: httpx.AsyncClient, url: str) -> None:
    sid = await session(client)
    url = url.format(sid=sid)
    r = await client.get(url)
    assert r.status_code == 404 and whole(r) and "ENOENT" in r.text
    frag = await client.get(url, headers=HX)
    assert frag.status_code == 404 and not whole(frag) and 'class="refusal"' in frag.text


async def test_bad_query_values_are_ignored(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid)
    bad = "fd=zz&start=-4&end=abc&page=1e9&frame=x&at=-1&walk=%3Cx%3E&log=0x"
    r = await client.get(f"/s/{sid}?{bad}")
    assert r.status_code == 200 and "vm0 (fd 3)" in r.text


async def test_static_assets_are_served(client: httpx.AsyncClient) -> None:
    for path in ("sealscope.js", "sealscope.css", "favicon.svg"):
        assert (await client.get(f"/static/{path}")).status_code == 200
    assert (await client.get("/static/../app/main.py")).status_code == 404


async def test_home_lists_this_browsers_recent_sessions(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    gone = await session(client)
    assert sid[:8] not in (await client.get("/")).text  # never listed to others
    await client.get(f"/s/{gone}")
    await client.get(f"/s/{sid}")
    await api(client, "DELETE", f"/sessions/{gone}")
    home = await client.get("/")
    assert f'href="/s/{sid}"' in home.text and f"/s/{gone}" not in home.text
