"""The history screen (/history) and its JSON twin (/api/v1/history): one guest story
played in each design, where they part, and the review argument per change."""

from __future__ import annotations

import httpx
import pytest

from tests.pages.conftest import HX

pytestmark = pytest.mark.anyio


def cell(h: dict, chapter: str, design: str) -> dict:  # type: ignore[type-arg]
    ch = next(c for c in h["chapters"] if c["key"] == chapter)
    return next(c for c in ch["cells"] if c["design"] == design)  # type: ignore[no-any-return]


async def test_the_story_in_each_design(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/history")
    assert r.status_code == 200
    h = r.json()
    keys = [d["key"] for d in h["designs"]]
    assert keys == ["rfc-v2", "rfc-v2-review", "gmem-6.8", "gmem-6.18", "in-place"]
    assert [c["key"] for c in h["chapters"]] == [
        "boot", "to-shared", "use", "to-private", "punch", "close"
    ]  # fmt: skip
    # the RFC as posted refuses a second owner; the review's multi_owner lets it in
    boot = cell(h, "boot", "rfc-v2")["ops"]
    assert [o["errno"] for o in boot if o["op"] == "register_guest"] == ["EPERM"]
    again = cell(h, "boot", "rfc-v2-review")
    assert again["parts"] and [o["errno"] for o in again["ops"] if o["op"] == "register_guest"] == [
        None
    ]
    # the RFC converts by an exit and a punch; 6.8 by the attribute and a discard
    rfc = cell(h, "to-shared", "rfc-v2")["ops"]
    assert rfc[0]["answer"] == "KVM_EXIT_MEM_MAP_SHARED"
    g68 = cell(h, "to-shared", "gmem-6.8")
    assert g68["parts"] and g68["ops"][0]["op"] == "set_memory_attributes"
    # 6.18 shares in place: nothing to convert, the host reads the guest's byte
    assert cell(h, "to-shared", "gmem-6.18")["ops"] == []
    use = cell(h, "use", "gmem-6.18")["ops"]
    assert use[-1]["op"] == "mapping_access" and use[-1]["answer"] == "value 66"
    # the RFC as posted forbids the host's mmap of the private file; mmap_shared allows it
    assert cell(h, "use", "rfc-v2")["ops"][-1]["errno"] == "EPERM"
    assert cell(h, "use", "rfc-v2-review")["ops"][-1]["errno"] is None
    # closing: 6.8's next access exits MEMORY_FAULT
    assert cell(h, "close", "gmem-6.8")["ops"][-1]["answer"] == "KVM_EXIT_MEMORY_FAULT"
    # each change of design says the argument behind it; the proposal's column is reserved
    why = {d["key"]: d["why"] for d in h["designs"]}
    assert why["rfc-v2"] is None and "Hugh Dickins" in why["gmem-6.8"]
    assert "Gunthorpe" in why["rfc-v2-review"]
    inplace = next(d for d in h["designs"] if d["key"] == "in-place")
    assert inplace["available"] is False and cell(h, "boot", "in-place")["note"] == "reserved"


async def test_the_page_and_its_shareable_chapter(client: httpx.AsyncClient) -> None:
    r = await client.get("/history?chapter=use")
    assert r.status_code == 200 and "<html" in r.text
    assert r.headers["link"].startswith("</api/v1/history>")
    assert 'id="ch-use" class="chapter parts marked"' in r.text
    assert "KVM_EXIT_MEM_MAP_SHARED" in r.text and "the designs part" in r.text
    assert "Reserved: lands with the confidential-VM ops" in r.text
    r = await client.get("/history?chapter=%3Cx%3E")  # unknown: nothing marked
    assert r.status_code == 200 and "marked" not in r.text
    home = await client.get("/")
    assert 'href="/history"' in home.text
    r = await client.get("/history", headers=HX)
    assert r.status_code == 200
