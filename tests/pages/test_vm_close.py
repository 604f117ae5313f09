"""close(vm_fd) from the VM panel (POST /s/{sid}/vm/close): a guest_memfd keeps the VM,
the panel says so; its close ends the VM; the page never closes another VM than named."""

from __future__ import annotations

import httpx
import pytest

from tests.pages.conftest import api
from tests.pages.test_vm_play import inplace_vm, post

pytestmark = pytest.mark.anyio


async def test_close_from_the_panel(client: httpx.AsyncClient) -> None:
    sid, map_id = await inplace_vm(client)
    panel = (await client.get(f"/s/{sid}/vm")).text
    assert 'id="vm-close"' in panel and "kept alive by its guest_memfd" not in panel
    r = await post(client, sid, "close", vm="0")
    assert r.status_code == 200, r.text
    assert "close(vm_fd) of VM 0" in r.text and "it lives on until that file" in r.text
    assert "fd closed, kept alive by its guest_memfd" in r.text and 'id="vm-close"' not in r.text
    vm = await api(client, "GET", f"/sessions/{sid}/vms/0")
    assert vm["closed"] is True
    r = await post(client, sid, "access", vm="0", gpa="0x1000")
    assert "EBADF" in r.text  # the vCPU went with the VM fd
    # the guest_memfd's last references: its fd, then the mapping
    await client.post(f"/api/v1/sessions/{sid}/files/3/close")
    assert (await client.get(f"/api/v1/sessions/{sid}/vms/0")).status_code == 200
    assert (await client.delete(f"/api/v1/sessions/{sid}/mappings/{map_id}")).status_code == 204
    assert (await client.get(f"/api/v1/sessions/{sid}/vms/0")).status_code == 404
    page = (await client.get(f"/s/{sid}/vm")).text
    assert "No VM in this session" in page
    r = await post(client, sid, "close", vm="0")
    assert "no VM" in r.text and r.status_code in (404, 409, 422), r.status_code


async def test_close_names_its_vm(client: httpx.AsyncClient) -> None:
    sid, _ = await inplace_vm(client)
    await api(client, "POST", f"/sessions/{sid}/vms", name="vm1", type="KVM_X86_DEFAULT_VM")
    for bad in ("7", "", "x", "9" * 40):
        r = await post(client, sid, "close", vm=bad)
        assert r.status_code != 500 and "no VM" in r.text, (bad, r.status_code)
    for vm in ("0", "1"):
        assert not (await api(client, "GET", f"/sessions/{sid}/vms/{vm}"))["closed"]
    r = await client.post(f"/s/{sid}/vm/close", data={"vm": "1"})  # no htmx: a redirect
    assert r.status_code == 303
    assert (await client.get(f"/api/v1/sessions/{sid}/vms/1")).status_code == 404


async def test_a_sleeping_access_says_so(client: httpx.AsyncClient) -> None:
    """rfc-v2: Play the guest's access to a page another holder locked answers that the
    vCPU sleeps until the holder's put_unlock_pfn."""
    from tests.pages.conftest import session

    sid = await session(client, profile="rfc-v2")
    b = f"/sessions/{sid}"
    await api(client, "POST", f"{b}/vms", name="vm0", type="KVM_X86_DEFAULT_VM")
    await api(client, "POST", f"{b}/vms/0/vcpus")
    sh = (await api(client, "POST", f"{b}/memfds", name="shared"))["fd"]
    await api(client, "POST", f"{b}/files/{sh}/ftruncate", length=1 << 20)
    await api(
        client, "POST", f"{b}/vms/0/memory_regions", slot=0, flags=["KVM_MEM_FD"],
        guest_phys_addr=0, memory_size=1 << 20, userspace_addr=0, fd=sh, private_fd=-1,
    )  # fmt: skip
    await api(client, "POST", f"{b}/files/{sh}/get_lock_pfn", index=2, alloc=True)
    r = await post(client, sid, "access", vm="0", gpa="0x2000", private="0")
    assert r.status_code == 200 and "the vCPU sleeps" in r.text, r.text[-2000:]
    assert "served from a None page" not in r.text
