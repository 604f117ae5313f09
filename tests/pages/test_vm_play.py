"""Play the guest in the in-place conversion proposal (KVM_SET_MEMORY_ATTRIBUTES2 on
the guest_memfd) and a SW_PROTECTED VM's request to convert back to shared, which no
exit makes (the hypercall's request, offered directly): over the page's htmx routes,
checked against the JSON API."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.pages.conftest import HX, api, session
from tests.pages.test_vm import sw_vm

pytestmark = pytest.mark.anyio
PRIVATE = "KVM_MEMORY_ATTRIBUTE_PRIVATE"
MiB = 1 << 20
FLAGS = ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]


async def inplace_vm(c: httpx.AsyncClient) -> tuple[str, int]:
    """The in-place proposal's VM: a MMAP | INIT_SHARED guest_memfd (fd 3), mapped by
    the VMM, the only memory of slot 0. Returns (sid, map id)."""
    sid = await session(c, profile="guest-memfd", variants=["inplace_conversion"])
    b = f"/sessions/{sid}"
    await api(c, "POST", f"{b}/vms", name="vm0", type="KVM_X86_SW_PROTECTED_VM")
    await api(c, "POST", f"{b}/vms/0/vcpus")
    g = (await api(c, "POST", f"{b}/vms/0/guest_memfd", size=2 * MiB, flags=FLAGS))["fd"]
    mp = await api(
        c, "POST", f"{b}/files/{g}/mmap", offset=0, length=2 * MiB,
        prot=["PROT_READ", "PROT_WRITE"], flags=["MAP_SHARED"],
    )  # fmt: skip
    await api(
        c, "POST", f"{b}/vms/0/memory_regions", slot=0, flags=["KVM_MEM_GUEST_MEMFD"],
        guest_phys_addr=0, memory_size=2 * MiB, userspace_addr=mp["addr"], guest_memfd=g,
    )  # fmt: skip
    return sid, int(mp["map_id"])


async def post(c: httpx.AsyncClient, sid: str, what: str, **form: str) -> httpx.Response:
    return await c.post(f"/s/{sid}/vm/{what}", data=form, headers=HX)


def retry_of(text: str) -> dict[str, str]:
    return dict(
        re.findall(r'<input type="hidden" name="(gpa|private|write|value)" value="([^"]*)"', text)
    )


def answer_form(text: str) -> dict[str, str]:
    return dict(re.findall(r'name="(retry_\w+)" value="([^"]*)"', text))


async def ops(c: httpx.AsyncClient, sid: str) -> list[str]:
    return [o["op"] for o in (await api(c, "GET", f"/sessions/{sid}/trace"))["ops"]]


async def test_the_vmm_answers_with_attributes2_in_place(client: httpx.AsyncClient) -> None:
    sid, map_id = await inplace_vm(client)
    r = await post(client, sid, "access", gpa="0x5000", write="1", value="9", private="0")
    assert "served from a shared page: fd 3 page 5" in r.text
    r = await post(client, sid, "access", gpa="0x5000", private="1")
    assert "the guest asks for gpa 0x5000 as private memory" in r.text
    assert "Answer as the VMM does (KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd" in r.text
    r = await post(client, sid, "answer", gpa="0x5000", to="private", **answer_form(r.text))
    assert r.status_code == 200, r.text
    assert "KVM_SET_MEMORY_ATTRIBUTES2(fd 3, offset 0x5000, 4 KiB, [&#39;" in r.text
    assert "no discard: a guest_memfd-only slot has one copy, converted in place" in r.text
    r = await post(client, sid, "access", **retry_of(r.text))
    # the same page, private now: the guest's byte is still there, the host's touch SIGBUS
    assert "served from a private page: fd 3 page 5" in r.text and "the byte is 9" in r.text
    b = f"/sessions/{sid}"
    h = await api(client, "POST", f"{b}/mappings/{map_id}/access", offset=0x5000)
    assert h["signal"] == "SIGBUS"
    attrs = await api(client, "GET", f"{b}/vms/0/memory_attributes?start=5&end=6")
    assert attrs["extents"] == [{"start": 5, "end": 6, "attributes": [PRIVATE]}]
    done = await ops(client, sid)
    assert done.count("set_memory_attributes2") == 1
    assert "set_memory_attributes" not in done and "fallocate" not in done


async def test_sw_protected_asks_for_shared_by_hypercall(client: httpx.AsyncClient) -> None:
    """The in-place VM is SW_PROTECTED: back to shared needs the guest's request."""
    sid, map_id = await inplace_vm(client)
    b = f"/sessions/{sid}"
    await api(client, "POST", f"{b}/files/3/memory_attributes2", offset=0x5000, size=4096,
              attributes=[PRIVATE])  # fmt: skip
    await api(client, "POST", f"{b}/vms/0/vcpus/0/access", gpa=0x5000, write=True, value=7)
    page = await client.get(f"/s/{sid}")
    assert 'id="vm-ask-shared"' in page.text and "never exits" in page.text
    # a shared access to the private gfn: served privately, no exit, nothing to answer
    r = await post(client, sid, "access", gpa="0x5000", private="0")
    assert "served from a private page: fd 3 page 5" in r.text and 'id="vmm-answer"' not in r.text
    r = await post(client, sid, "request", gpa="0x5000", to="shared")
    assert r.status_code == 200, r.text
    assert "KVM_EXIT_HYPERCALL KVM_HC_MAP_GPA_RANGE(gpa 0x5000" in r.text
    assert "the guest asks for gpa 0x5000 as shared memory" in r.text
    assert "not an op of the log" in r.text and 'id="vmm-answer"' in r.text
    assert "hypercall" not in " ".join(await ops(client, sid))  # no op for the request
    r = await post(client, sid, "answer", gpa="0x5000", to="shared", **answer_form(r.text))
    assert "KVM_SET_MEMORY_ATTRIBUTES2(fd 3, offset 0x5000, 4 KiB, [])" in r.text
    r = await post(client, sid, "access", **retry_of(r.text))
    assert "served from a shared page: fd 3 page 5" in r.text and "the byte is 7" in r.text
    h = await api(client, "POST", f"{b}/mappings/{map_id}/access", offset=0x5000)
    assert (h["signal"], h["value"]) == (None, 7)


async def test_sw_protected_request_in_68(client: httpx.AsyncClient) -> None:
    """6.8's VMM answers the hypercall's request with the attribute and the discard."""
    sid, g, fd = await sw_vm(client)
    b = f"/sessions/{sid}/vms/0"
    await api(client, "POST", f"{b}/memory_attributes", address=0x5000, size=4096,
              attributes=[PRIVATE])  # fmt: skip
    await api(client, "POST", f"{b}/vcpus/0/access", gpa=0x5000, write=True, value=3)
    r = await post(client, sid, "access", gpa="0x5000", private="0")
    assert f"served from a private page: fd {g} page 5" in r.text
    r = await post(client, sid, "request", gpa="0x5000")  # to: shared by default
    assert "Answer as the VMM does (set the attribute, discard the other copy)" in r.text
    r = await post(client, sid, "answer", gpa="0x5000", to="shared", **answer_form(r.text))
    assert "KVM_SET_MEMORY_ATTRIBUTES(gpa 0x5000, 4 KiB, [])" in r.text
    assert f"fallocate(fd {g}, page 5, punch)" in r.text  # the private copy discarded
    r = await post(client, sid, "access", **retry_of(r.text))
    assert f"served from a shared page: fd {fd} page 5" in r.text


async def test_the_request_form_and_its_errors(client: httpx.AsyncClient) -> None:
    sid = await session(client, profile="guest-memfd")
    await api(client, "POST", f"/sessions/{sid}/vms", name="d", type="KVM_X86_DEFAULT_VM")
    await api(client, "POST", f"/sessions/{sid}/vms/0/vcpus")
    page = await client.get(f"/s/{sid}")
    assert 'id="vm-access"' in page.text and 'id="vm-ask-shared"' not in page.text
    sid, _g, _fd = await sw_vm(client)
    for form, words in (
        ({"gpa": "zz"}, "gpa"),
        ({"gpa": "0x5000", "to": "sideways"}, "private or shared"),
    ):
        r = await post(client, sid, "request", **form)
        assert r.status_code in (400, 409, 422) and words in r.text, (form, r.text[:300])
    r = await post(client, sid, "answer", gpa="0x40000000", to="shared")
    assert r.status_code != 500 and "in no memslot" in r.text
    r = await client.post("/s/nope/vm/request", data={"gpa": "0"}, headers=HX)
    assert r.status_code == 404
