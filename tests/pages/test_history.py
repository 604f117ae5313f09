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
    # closing: 6.8's next access exits MEMORY_FAULT, then the VM fd's close destroys it
    g68_close = cell(h, "close", "gmem-6.8")["ops"]
    assert g68_close[-2]["answer"] == "KVM_EXIT_MEMORY_FAULT" and g68_close[-1]["op"] == "vm_close"
    # the RFC's destroyed VM stays the files' owner (vm_is_dead): the next VM is refused;
    # with the review's multi_owner the slot's deletion dropped its registration
    rfc_reg = [o for o in cell(h, "close", "rfc-v2")["ops"] if o["op"] == "set_user_memory_region"]
    assert [o["errno"] for o in rfc_reg] == ["EPERM"] and "destroyed VM" in rfc_reg[0]["answer"]
    multi = cell(h, "close", "rfc-v2-review")
    assert [o["errno"] for o in multi["ops"] if o["op"] == "set_user_memory_region"] == [None]
    # each change of design says the argument behind it
    why = {d["key"]: d["why"] for d in h["designs"]}
    assert why["rfc-v2"] is None and "Hugh Dickins" in why["gmem-6.8"]
    assert "Gunthorpe" in why["rfc-v2-review"]
    assert "[PATCH v8 00/46] guest_memfd: In-place conversion support" in why["in-place"]
    assert all(d["available"] for d in h["designs"])


# the in-place proposal's story, op by op: (op, errno, answer) each as expected
INPLACE = {
    "boot": [
        ("vm_create", None, "ok"),
        ("vcpu_create", None, "ok"),
        ("vm_guest_memfd", None, "fd 3, nr_pages 0"),
        ("mmap", None, "fd 3"),
        ("set_user_memory_region", None, "deleted False"),
        ("set_memory_attributes2", None, "ok"),
        ("vcpu_access", None, "backing private, fd 3, index 5, value 1"),
        ("mapping_access", None, "signal SIGBUS"),
    ],
    "to-shared": [("set_memory_attributes2", None, "ok")],
    "use": [
        ("vcpu_access", None, "backing shared, fd 3, index 5, value 66"),
        ("mapping_access", None, "value 66"),
        ("mapping_pin", None, "pin_id 1"),
    ],
    "to-private": [
        ("vcpu_access", None, "KVM_EXIT_MEMORY_FAULT"),
        ("set_memory_attributes2", "EAGAIN", "error_offset=0x5000"),
        ("mapping_unpin", None, "ok"),
        ("set_memory_attributes2", None, "ok"),
        ("vcpu_access", None, "backing private, fd 3, index 5, value 66"),
        ("mapping_access", None, "signal SIGBUS"),
    ],
    "punch": [
        ("fallocate", None, "fd 3, nr_pages 0"),
        ("vcpu_access", None, "backing private, fd 3, index 5, value 0"),
    ],
    "close": [
        ("close", None, "ok"),
        ("munmap", None, "ok"),
        ("vcpu_access", None, "KVM_EXIT_MEMORY_FAULT"),
        ("vm_close", None, "ok"),
    ],
}


async def test_the_in_place_proposal_column(client: httpx.AsyncClient) -> None:
    """KVM_SET_MEMORY_ATTRIBUTES2 on a guest_memfd (MMAP | INIT_SHARED) that is the only
    memory: every op of the story answers as the proposal does, and the column parts
    from 6.18 in every chapter (6.18 has no private memory to convert)."""
    h = (await client.get("/api/v1/history")).json()
    d = next(d for d in h["designs"] if d["key"] == "in-place")
    assert (d["profile"], d["variants"]) == ("guest-memfd", ["inplace_conversion"])
    for chapter, want in INPLACE.items():
        c = cell(h, chapter, "in-place")
        got = c["ops"]
        assert [(o["op"], o["errno"]) for o in got] == [(w[0], w[1]) for w in want], chapter
        for o, (_op, errno, answer) in zip(got, want, strict=True):
            assert (answer in o["answer"]) if errno else o["answer"] == answer, (chapter, o)
        assert c["parts"], chapter
    # conversions are the file's ioctl on fd 3; never the VM's attribute, never a discard
    ops = [o for ch in h["chapters"] for c in ch["cells"] if c["design"] == "in-place"
           for o in c["ops"]]  # fmt: skip
    conv = [o for o in ops if o["op"] == "set_memory_attributes2"]
    assert {o["args"]["fd"] for o in conv} == {3} and len(conv) == 4
    assert not [o for o in ops if o["op"] == "set_memory_attributes"]
    punches = [o for o in ops if o["op"] == "fallocate"]
    assert [(p["args"]["offset"], p["args"]["len"]) for p in punches] == [(0, 1 << 20)]


async def test_the_page_and_its_shareable_chapter(client: httpx.AsyncClient) -> None:
    r = await client.get("/history?chapter=use")
    assert r.status_code == 200 and "<html" in r.text
    assert r.headers["link"].startswith("</api/v1/history>")
    assert 'id="ch-use" class="chapter parts marked"' in r.text
    assert "KVM_EXIT_MEM_MAP_SHARED" in r.text and "the designs part" in r.text
    assert "Reserved: lands with" not in r.text
    assert "KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd: all private" in r.text
    assert "set_memory_attributes2(" in r.text and "In-place conversion (proposal)" in r.text
    r = await client.get("/history?chapter=%3Cx%3E")  # unknown: nothing marked
    assert r.status_code == 200 and "marked" not in r.text
    home = await client.get("/")
    assert 'href="/history"' in home.text
    r = await client.get("/history", headers=HX)
    assert r.status_code == 200
