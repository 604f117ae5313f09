"""The walkthrough panel (narration, expected vs got, jumps), the side-by-side screen
(two designs, one log) and the kernel comparison screen."""

from __future__ import annotations

import re

import httpx
import pytest

from app import oracle
from tests.pages.conftest import HX, api, guest_file, session

pytestmark = pytest.mark.anyio
MEMFD_OK, MEMFD_WHY = oracle.available()


async def walk(client: httpx.AsyncClient, name: str) -> tuple[str, str]:
    r = await client.post(f"/walk/{name}")
    assert r.status_code == 303, r.text
    loc = r.headers["location"]
    return loc.split("/s/")[1].split("?")[0], loc


async def test_a_step_says_what_to_expect_and_what_came(client: httpx.AsyncClient) -> None:
    sid, _ = await walk(client, "guest-seal-refused")
    r = await client.get(f"/s/{sid}?walk=guest-seal-refused&at=3")
    text = r.text
    assert "Step 3:</strong> refused: the file has a size" in text
    now = text.split('class="walk-now"')[1].split("</div>")[0]
    assert "EBUSY" in now and "✓" in now and "Rule" in now and "Look at" in now
    assert "POST /api/v1/sessions/…/files/3/fcntl" in now
    # every step is a jump; the last one is the live state
    jumps = re.findall(r'<li class="[^"]*"[^>]*>\s*<a href="([^"]+)"', text)
    assert len(jumps) == 9 and "at=1&" in jumps[0] and "at=" not in jumps[-1]
    assert 'aria-current="step"' in text


async def test_step_links_show_the_file_the_step_names(client: httpx.AsyncClient) -> None:
    """guest-pages-stay-put works on fd 3, then on fd 4 (from step 5): a link to a step
    shows that step's file, its page window reset."""
    sid, _ = await walk(client, "guest-pages-stay-put")
    r = await client.get(f"/s/{sid}?walk=guest-pages-stay-put&at=4&fd=3&start=0&end=4")
    text = r.text.replace("&amp;", "&")
    nav = text.split('class="walk-nav"')[1].split("</nav>")[0]
    nxt = re.search(r'href="([^"]+)"[^>]*>Next step', nav)
    back = re.search(r'href="([^"]+)"[^>]*>◀ Back', nav)
    assert nxt and back
    assert "fd=4" in nxt.group(1) and "at=5" in nxt.group(1) and "start=" not in nxt.group(1)
    assert "fd=3&start=0&end=4" in back.group(1) and "at=3" in back.group(1)
    jumps = re.findall(r'<li class="[^"]*"[^>]*>\s*<a href="([^"]+)"', text)
    assert len(jumps) == 13
    assert all("fd=3" in j for j in jumps[:4]) and all("fd=4" in j for j in jumps[4:12])
    assert "fd=3" in jumps[12]  # the last step moves fd 3's page again
    # the page map of the step shown is fd 4's
    r = await client.get(nxt.group(1))
    assert "Pages of vm0 (fd 4)" in r.text


async def test_a_walk_with_settings_and_a_twin(client: httpx.AsyncClient) -> None:
    sid, loc = await walk(client, "huge-pages-split")
    s = await api(client, "GET", f"/sessions/{sid}")
    assert s["thp"] == "within_size"
    sid, loc = await walk(client, "guest-memfd-lifecycle")
    r = await client.get(loc)
    assert 'action="/walk/rfc-lifecycle"' in r.text and f"/s/{sid}/diff" in r.text
    sid, loc = await walk(client, "multi-owner-fanout")
    r = await client.get(loc)
    assert '<span class="badge variant"' in r.text and "multi_owner" in r.text


async def test_home_makes_a_session_with_variants(client: httpx.AsyncClient) -> None:
    home = (await client.get("/")).text
    assert 'name="variants" value="multi_owner"' in home and "thp within_size" in home
    form = {"profile": "rfc-v2", "memory": str(2**30), "variants": ["mmap_shared"]}
    r = await client.post("/new", data=form)
    sid = r.headers["location"].split("/s/")[1]
    assert (await api(client, "GET", f"/sessions/{sid}"))["variants"] == ["mmap_shared"]


async def test_side_by_side_shows_where_they_part(client: httpx.AsyncClient) -> None:
    sid, _ = await walk(client, "multi-owner-fanout")
    r = await client.get(f"/s/{sid}/diff")
    assert r.status_code == 200
    assert r.headers["link"].startswith(f"</api/v1/sessions/{sid}/diff>")
    assert "7 of 16 ops differ" in r.text and 'href="#d-7"' in r.text
    assert 'id="d-7" class="differs root"' in r.text and 'id="d-1" class="same"' in r.text
    frag = await client.get(f"/s/{sid}/diff?a=session&b=mmap_shared&only=1", headers=HX)
    assert frag.text.lstrip().startswith('<section id="diff"')
    assert 'id="d-1"' not in frag.text and 'id="d-7"' in frag.text
    bad = await client.get(f"/s/{sid}/diff?a=nonsense&b=also")  # ignored: the defaults
    assert bad.status_code == 200 and "the RFC as posted" in bad.text
    assert (await client.get("/s/nope-nope-nope-nope/diff")).status_code == 404


async def test_an_empty_log_side_by_side(client: httpx.AsyncClient) -> None:
    sid = await session(client, profile="guest-memfd")
    r = await client.get(f"/s/{sid}/diff")
    assert "The log is empty" in r.text


@pytest.mark.skipif(not MEMFD_OK, reason=f"no memfd here: {MEMFD_WHY}")
async def test_the_kernel_screen(client: httpx.AsyncClient) -> None:
    sid = await session(client)
    await guest_file(client, sid, 8192)
    await client.post(f"/api/v1/sessions/{sid}/files/3/pread", json={"offset": 0, "count": 4})
    r = await client.get(f"/s/{sid}/kernel")
    assert r.status_code == 200 and "No unexpected divergence" in r.text
    assert 'class="st-intended"' in r.text and "F_SEAL_GUEST is the RFC" in r.text
    assert "not asked" in r.text and "no userspace twin" in r.text
    assert r.headers["link"].startswith(f"</api/v1/sessions/{sid}/compare>")
    page = (await client.get(f"/s/{sid}")).text
    assert f'href="/s/{sid}/kernel"' in page and f'href="/s/{sid}/diff"' in page


@pytest.mark.skipif(not oracle.kvm_available()[0], reason="no usable /dev/kvm here")
async def test_the_kernel_screen_shows_kvm_ops(client: httpx.AsyncClient) -> None:
    """A VM's ops on the kernel screen: a real guest's byte, an exit with its fields, and
    what this machine cannot answer, intended with the reason."""
    sid = await session(client, profile="guest-memfd")
    b = f"/api/v1/sessions/{sid}"
    assert (
        await client.post(f"{b}/vms", json={"name": "v", "type": "KVM_X86_DEFAULT_VM"})
    ).status_code == 201
    assert (await client.post(f"{b}/vms/0/vcpus", json={})).status_code == 201
    for gpa in (0x10000, 0x20000):
        r = await client.post(
            f"{b}/vms/0/vcpus/0/access",
            json={"gpa": gpa, "write": False, "private": None, "value": 0},
        )
        assert r.status_code == 200, r.text
    body = {"address": 0, "size": 4096, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"], "flags": 0}
    await client.post(f"{b}/vms/0/memory_attributes", json=body)
    r = await client.get(f"/s/{sid}/kernel")
    assert r.status_code == 200 and "No unexpected divergence" in r.text, r.text
    assert "KVM_EXIT_MMIO at 0x10000" in r.text and "size 1" in r.text
    assert "KVM_SET_MEMORY_ATTRIBUTES is ENOTTY here" in r.text
