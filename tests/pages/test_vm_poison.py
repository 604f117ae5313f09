"""The VM panel's poisoned gfns: a memory_failure of a guest_memfd page draws its gfn
poisoned (legend, count, detail with its page and frame), exact at any width (from
the engine's list of poisoned frames), and gone once the page is punched."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.pages.conftest import HX, PUNCH, api, session
from tests.pages.test_vm import panel, sw_vm

pytestmark = pytest.mark.anyio
PRIVATE = "KVM_MEMORY_ATTRIBUTE_PRIVATE"
POISONED = "poisoned: its guest_memfd page is hwpoisoned (EHWPOISON)"


async def test_a_memory_failure_shows_the_gfn_poisoned(client: httpx.AsyncClient) -> None:
    sid, g, _fd = await sw_vm(client)
    b = f"/sessions/{sid}"
    await api(client, "POST", f"{b}/vms/0/memory_attributes", address=0x5000, size=0x2000,
              attributes=[PRIVATE])  # fmt: skip
    got = await api(client, "POST", f"{b}/vms/0/vcpus/0/access", gpa=0x5000, write=True, value=1)
    await api(client, "POST", f"{b}/vms/0/vcpus/0/access", gpa=0x6000, write=True, value=2)
    r = await panel(client, sid)
    assert "poison" not in r.text  # nothing poisoned yet: no bar, no legend entry
    mf = await api(client, "POST", f"{b}/memory_failure", pfn=got["pfn"])
    assert (mf["fd"], mf["index"]) == (g, 5)
    r = await panel(client, sid, gfn=5)
    assert f'class="b poison" style="left:0.977%;width:0.195%" title="gfn 5: {POISONED}"' in r.text
    assert "gfn 6: a private page of the guest_memfd" in r.text  # its neighbour is fine
    assert f'<li><i class="sw poison"></i>{POISONED}</li>' in r.text
    assert '<strong class="poisoned-count">1 poisoned gfn</strong>' in r.text
    detail = r.text[r.text.index('id="gfn-detail"') :]
    assert POISONED in detail and f'class="gfn-page">page 5 of fd {g}<' in detail
    frame = re.search(r'class="gfn-frame">frame (\d+)<', detail)
    assert frame and int(frame.group(1)) == got["pfn"]
    # the JSON twin says the same; the guest's access fails with EHWPOISON
    runs = (await api(client, "GET", f"{b}/vms/0/gfns?start=5&end=6"))["runs"]
    assert [(x["source"], x["fd"], x["index"]) for x in runs] == [("poisoned", g, 5)]
    a = await api(client, "POST", f"{b}/vms/0/vcpus/0/access", gpa=0x5000, private=True)
    assert a["exit"]["errno"] == "EHWPOISON"
    # played from the panel: the exit is no conversion request, nothing to answer
    r = await client.post(f"/s/{sid}/vm/access", data={"gpa": "0x5000"}, headers=HX)
    assert "KVM_RUN fails with EHWPOISON" in r.text and 'id="vmm-answer"' not in r.text
    assert "no conversion serves it: the page is hwpoisoned" in r.text
    # punching the page drops it: the gfn is a private page again, nothing poisoned
    await api(client, "POST", f"{b}/files/{g}/fallocate", mode=PUNCH, offset=0x5000, len=4096)
    r = await panel(client, sid)
    assert "poison" not in r.text and 'title="gfn 5: a private page of the guest_memfd"' in r.text


async def test_poisoned_is_exact_at_one_tib(client: httpx.AsyncClient) -> None:
    """A wide window samples each column's first gfn, but a poisoned gfn in the middle
    of a column is drawn anyway (from the poisoned runs) and its bar selects it."""
    size = 1 << 40
    sid = await session(client, profile="guest-memfd")
    b = f"/sessions/{sid}"
    await api(client, "POST", f"{b}/vms", name="big", type="KVM_X86_SW_PROTECTED_VM")
    await api(client, "POST", f"{b}/vms/0/vcpus")
    g = (await api(client, "POST", f"{b}/vms/0/guest_memfd", size=size))["fd"]
    await api(client, "POST", f"{b}/vms/0/memory_regions", slot=0, flags=["KVM_MEM_GUEST_MEMFD"],
              guest_phys_addr=0, memory_size=size, guest_memfd=g)  # fmt: skip
    gfn = 1_000_003  # inside column 1 of 400 (671,088 gfns each), not its first gfn
    await api(client, "POST", f"{b}/vms/0/memory_attributes", address=gfn * 4096, size=4096,
              attributes=[PRIVATE])  # fmt: skip
    got = await api(client, "POST", f"{b}/vms/0/vcpus/0/access", gpa=gfn * 4096, write=True)
    await api(client, "POST", f"{b}/memory_failure", pfn=got["pfn"])
    r = await panel(client, sid)
    assert "each column: its first gfn, a sample" in r.text
    bars = re.findall(r'<a class="b poison"[^>]*title="([^"]+)" href="([^"]+)"', r.text)
    assert len(bars) == 1
    title, href = bars[0]
    assert title == f"gfn 671,088\u20131,342,176: {POISONED} (1 gfn(s) here)"
    assert href.endswith(f"gfn={gfn}")
    assert '<strong class="poisoned-count">1 poisoned gfn</strong>' in r.text
