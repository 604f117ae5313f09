"""The VM panel (app/pages/vm.py, templates/_vm.html) and playing the guest
(app/pages/guest_play.py): the gfn map from runs, its links gfn -> page -> frame and
back, a vCPU exit answered as the VMM of each design does, then the retry."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.pages.conftest import HX, api, session

pytestmark = pytest.mark.anyio
PRIVATE = "KVM_MEMORY_ATTRIBUTE_PRIVATE"
MiB = 1 << 20


async def sw_vm(
    c: httpx.AsyncClient, size: int = 2 * MiB, vcpu: bool = True
) -> tuple[str, int, int]:
    """A SW_PROTECTED VM: guest_memfd (fd 3) behind slot 0, a shared memfd (fd 4) at
    userspace_addr. Returns (sid, guest_memfd fd, shared fd)."""
    sid = await session(c, profile="guest-memfd")
    b = f"/sessions/{sid}"
    vm = (await api(c, "POST", f"{b}/vms", name="vm0", type="KVM_X86_SW_PROTECTED_VM"))["vm_id"]
    if vcpu:
        await api(c, "POST", f"{b}/vms/{vm}/vcpus")
    g = (await api(c, "POST", f"{b}/vms/{vm}/guest_memfd", size=size))["fd"]
    fd = (await api(c, "POST", f"{b}/memfds", name="shared"))["fd"]
    await api(c, "POST", f"{b}/files/{fd}/ftruncate", length=size)
    mp = await api(
        c, "POST", f"{b}/files/{fd}/mmap", offset=0, length=size,
        prot=["PROT_READ", "PROT_WRITE"], flags=["MAP_SHARED"],
    )  # fmt: skip
    await api(
        c, "POST", f"{b}/vms/{vm}/memory_regions", slot=0, flags=["KVM_MEM_GUEST_MEMFD"],
        guest_phys_addr=0, memory_size=size, userspace_addr=mp["addr"], guest_memfd=g,
    )  # fmt: skip
    return sid, g, fd


async def panel(c: httpx.AsyncClient, sid: str, **q: Any) -> httpx.Response:
    r = await c.get(f"/s/{sid}/vm", params=q, headers=HX)
    assert r.status_code == 200, r.text
    return r


async def test_no_vm_no_panel(client: httpx.AsyncClient) -> None:
    sid = await session(client, profile="guest-memfd")
    r = await client.get(f"/s/{sid}")
    assert 'id="vm-title"' not in r.text
    r = await client.get(f"/s/{sid}/vm", headers=HX)
    assert r.status_code == 200 and "No VM in this session" in r.text


async def test_panel_draws_slots_attributes_and_sources(client: httpx.AsyncClient) -> None:
    sid, _g, _fd = await sw_vm(client)
    b = f"/sessions/{sid}/vms/0"
    await api(client, "POST", f"{b}/memory_attributes", address=0x10000, size=0x10000,
              attributes=[PRIVATE])  # fmt: skip
    await api(client, "POST", f"{b}/vcpus/0/access", gpa=0x10000, write=True, value=7)
    r = await panel(client, sid)
    assert '<section id="vm"' in r.text
    assert f"/api/v1/sessions/{sid}/vms/0" in r.headers["link"]  # its JSON twin
    assert "slot 0: gfn 0\u2013511" in r.text
    assert (
        'class="b priv" style="left:3.125%;width:3.125%" title="gfn 16\u201331: private"' in r.text
    )
    assert "gfn 16: a private page of the guest_memfd, mapped by the MMU" in r.text
    assert "gfn 32\u2013511: shared, the VMM&#39;s page at userspace_addr" in r.text
    assert "16 private gfns here" in r.text
    twin = await api(client, "GET", f"/sessions/{sid}/vms/0")
    assert twin["attributes"] == [{"start": 16, "end": 32, "attributes": [PRIVATE]}]


async def test_gfn_to_page_to_frame_and_back(client: httpx.AsyncClient) -> None:
    sid, g, fd = await sw_vm(client)
    b = f"/sessions/{sid}/vms/0"
    await api(client, "POST", f"{b}/memory_attributes", address=0x10000, size=0x1000,
              attributes=[PRIVATE])  # fmt: skip
    got = await api(client, "POST", f"{b}/vcpus/0/access", gpa=0x10000, write=True, value=1)
    r = await panel(client, sid, gfn=16)
    page = re.search(r'href="([^"]+)"[^>]*class="gfn-page">page 16 of fd 3<', r.text)
    frame = re.search(r'href="([^"]+)"[^>]*class="gfn-frame">frame (\d+)<', r.text)
    assert page and frame and int(frame.group(2)) == got["pfn"]
    # the page link selects page 16 of the guest_memfd; the panel names its gfn (back)
    r = await client.get(page.group(1).replace("&amp;", "&"))
    assert "page 16 of fd 3 serves gfn 16 of vm0 (slot 0)" in r.text
    # the frame link: the frame map's selection, its page, and back to the gfn
    r = await client.get(frame.group(1).replace("&amp;", "&"))
    assert f"Frame {got['pfn']}" in r.text
    assert "page 16 of fd 3 serves gfn 16 of vm0" in r.text
    # the shared memfd behind userspace_addr: its page 17 serves gfn 17
    r = await client.get(f"/s/{sid}", params={"fd": fd, "page": 17})
    assert "page 17 of fd 4 serves gfn 17 of vm0 (slot 0)" in r.text
    # page 17 is shared (no attribute): the guest_memfd's page 17 could serve it only
    r = await client.get(f"/s/{sid}", params={"fd": g, "page": 17})
    assert "page 17 of fd 3 could serve (the guest" in r.text


async def test_one_tib_renders_from_runs(client: httpx.AsyncClient) -> None:
    size = 1 << 40
    sid = await session(client, profile="guest-memfd")
    b = f"/sessions/{sid}"
    vm = await api(client, "POST", f"{b}/vms", name="big", type="KVM_X86_SW_PROTECTED_VM")
    g = (await api(client, "POST", f"{b}/vms/{vm['vm_id']}/guest_memfd", size=size))["fd"]
    await api(client, "POST", f"{b}/vms/0/memory_regions", slot=0, flags=["KVM_MEM_GUEST_MEMFD"],
              guest_phys_addr=0, memory_size=size, guest_memfd=g)  # fmt: skip
    for i in range(32):  # 32 private runs of 1 GiB each, every 32 GiB
        await api(client, "POST", f"{b}/vms/0/memory_attributes",
                  address=i * (size // 32), size=1 << 30, attributes=[PRIVATE])  # fmt: skip
    r = await panel(client, sid)
    assert "gfns 0\u2013268,435,455 of 268,435,456" in r.text
    assert "each column: its first gfn, a sample" in r.text
    # each 1 GiB run falls in one or two columns of 2.5 GiB: drawn, never lost
    assert 32 <= r.text.count('class="b mixed"') <= 64
    assert "8,388,608 private gfns here" in r.text  # 32 GiB, exact from the runs
    # zoomed in to one private run: every gfn read, the run whole
    r = await panel(client, sid, gstart=0, gend=1 << 18)
    assert "every gfn" in r.text and "gfn 0\u2013262,143: private" in r.text


async def post(c: httpx.AsyncClient, sid: str, what: str, **form: str) -> httpx.Response:
    r = await c.post(f"/s/{sid}/vm/{what}", data=form, headers=HX)
    return r


async def test_conversion_by_hand_guest_memfd(client: httpx.AsyncClient) -> None:
    sid, _g, _fd = await sw_vm(client)
    # shared first: the guest writes gpa 0x5000 through userspace_addr (fd 4's page 5)
    r = await post(client, sid, "access", gpa="0x5000", write="1", value="9", private="0")
    assert "served from a shared page: fd 4 page 5" in r.text
    # a private access: the exit is the guest's request
    r = await post(client, sid, "access", gpa="0x5000", private="1")
    assert "KVM_EXIT_MEMORY_FAULT at gpa 0x5000" in r.text
    assert "the guest asks for gpa 0x5000 as private memory" in r.text
    assert 'id="vmm-answer"' in r.text and "set the attribute, discard the other copy" in r.text
    form = dict(re.findall(r'name="(retry_\w+)" value="([^"]*)"', r.text))
    r = await post(client, sid, "answer", gpa="0x5000", to="private", **form)
    assert "KVM_SET_MEMORY_ATTRIBUTES(gpa 0x5000" in r.text
    assert "fallocate(fd 4, page 5, punch)" in r.text  # the shared copy discarded
    assert 'id="vm-retry"' in r.text
    retry = dict(
        re.findall(r'<input type="hidden" name="(gpa|private|write|value)" value="([^"]*)"', r.text)
    )
    r = await post(client, sid, "access", **retry)
    assert "served from a private page: fd 3 page 5" in r.text
    attrs = await api(client, "GET", f"/sessions/{sid}/vms/0/memory_attributes?start=5&end=6")
    assert attrs["extents"] == [{"start": 5, "end": 6, "attributes": [PRIVATE]}]
    f4 = await api(client, "GET", f"/sessions/{sid}/files/4")
    assert f4["nr_pages"] == 0  # no double memory: the shared copy is gone
    # a shared access to a private gfn of SW_PROTECTED is private (the attribute ORs in):
    # no exit; the guest asks by hypercall, the VMM converts back (punches the guest_memfd)
    r = await post(client, sid, "access", gpa="0x5000", private="0")
    assert "served from a private page" in r.text
    r = await post(client, sid, "answer", gpa="0x5000", to="shared")
    assert "fallocate(fd 3, page 5, punch)" in r.text
    assert (await api(client, "GET", f"/sessions/{sid}/files/3"))["nr_pages"] == 0


async def test_conversion_by_hand_rfc_v2(client: httpx.AsyncClient) -> None:
    sid = await session(client, profile="rfc-v2")
    b = f"/sessions/{sid}"
    vm = (await api(client, "POST", f"{b}/vms", name="vm0"))["vm_id"]
    for name in ("shared", "private"):
        await api(client, "POST", f"{b}/memfds", name=name, flags=["MFD_ALLOW_SEALING"])
    await api(client, "POST", f"{b}/files/4/fcntl", cmd="F_ADD_SEALS", seals=["F_SEAL_GUEST"])
    for fd in (3, 4):
        await api(client, "POST", f"{b}/files/{fd}/ftruncate", length=MiB)
    await api(client, "POST", f"{b}/vms/{vm}/memory_regions", slot=0, flags=["KVM_MEM_FD"],
              guest_phys_addr=0, memory_size=MiB, fd=3, private_fd=4)  # fmt: skip
    r = await client.get(f"/s/{sid}", headers=HX)
    assert 'id="vm-vcpu"' in r.text  # no vCPU yet: make one
    r = await post(client, sid, "vcpu")
    assert "vCPU 0" in r.text
    r = await post(client, sid, "access", gpa="0x3000", private="1")
    assert "KVM_EXIT_MEMORY_ERROR" in r.text and "as private memory" in r.text
    assert "fallocate private_fd, punch the shared fd" in r.text
    r = await post(client, sid, "answer", gpa="0x3000", to="private")
    assert "fallocate(fd 4, page 3, allocate); fallocate(fd 3, page 3, punch)" in r.text
    r = await post(client, sid, "access", gpa="0x3000", private="1")
    assert "served from a private page: fd 4 page 3" in r.text


async def test_bad_input_is_an_error_not_a_500(client: httpx.AsyncClient) -> None:
    sid, _g, _fd = await sw_vm(client)
    r = await post(client, sid, "access", gpa="banana")
    assert r.status_code == 422 and "gpa" in r.text
    r = await post(client, sid, "answer", gpa="0x1000", to="sideways")
    assert r.status_code == 422
    r = await post(client, sid, "answer", gpa="0x40000000", to="private")
    assert r.status_code == 422 and "in no memslot" in r.text
    r = await client.post("/s/nope/vm/access", data={"gpa": "0"}, headers=HX)
    assert r.status_code == 404


async def test_timeline_rows_for_exits_conversions_and_zaps(client: httpx.AsyncClient) -> None:
    sid, _g, _fd = await sw_vm(client)
    b = f"/sessions/{sid}/vms/0"
    await api(client, "POST", f"{b}/vcpus/0/access", gpa=0x5000, write=True, value=1)
    await api(client, "POST", f"{b}/vcpus/0/access", gpa=0x5000, private=True)
    await api(
        client, "POST", f"{b}/memory_attributes", address=0x5000, size=0x1000,
        attributes=[PRIVATE],
    )  # fmt: skip
    r = await client.get(f"/s/{sid}/timeline", headers=HX)
    text = r.text
    assert 'class="cb kvm-row kind-exit"' in text and "KVM_EXIT_MEMORY_FAULT" in text
    assert 'class="cb kvm-row kind-conversion"' in text
    assert "gfn 5 now private (zapped)" in text and "[5, 6)" in text
    assert 'class="cb kvm-row kind-zap"' in text and "vm0 zaps gfn 5" in text
