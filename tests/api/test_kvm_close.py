"""close(vm_fd) over REST (DELETE …/vms/{vm_id}): a guest_memfd keeps its VM alive,
ioctls on the closed VM are 404 EBADF (API.md: an unknown fd), the last guest_memfd's
close destroys it (404 after); rfc-v2 destroys at once and leaves its registrations
(the dead_owner hazard). The close is an op of the log: trace, replay, rewind carry it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.api.kvm_helpers import API, GM, PAGE, Kvm, MiB, kvm_session

pytestmark = pytest.mark.anyio
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
KEEP = ["FALLOC_FL_KEEP_SIZE"]
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in kvm_session(tmp_path, profile="guest-memfd"):
        yield x


@pytest.fixture
async def rfc(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in kvm_session(tmp_path, profile="rfc-v2"):
        yield x


async def _delete(k: Kvm, path: str, status: int = 204) -> dict[str, object]:
    r = await k.c.delete(k.b + path)
    k.check()
    assert r.status_code == status, r.text
    return {} if status == 204 else dict(r.json())


async def _private_vm(k: Kvm) -> tuple[str, int]:
    vm = await k.vm()
    g = await k.gmem(vm)
    _fd, _map, addr = await k.shared()
    await k.region(vm, slot=0, flags=GM, memory_size=2 * MiB, userspace_addr=addr, guest_memfd=g)
    await k.post(
        f"/vms/{vm}/memory_attributes", {"address": 0, "size": 2 * PAGE, "attributes": PRIV}
    )
    got = await k.access(vm, 0, write=True, value=7)
    assert got["backing"] == "private"
    return vm, g


async def test_guest_memfd_keeps_the_closed_vm(k: Kvm) -> None:
    vm, g = await _private_vm(k)
    await _delete(k, f"/vms/{vm}")
    v = await k.get(f"/vms/{vm}")
    assert v["closed"] is True and len(v["memslots"]) == 1
    assert v["mapped"], "the mapping stays while the VM lives"
    for path, body in (
        (f"/vms/{vm}/vcpus", {}),
        (f"/vms/{vm}/guest_memfd", {"size": PAGE, "flags": []}),
        (f"/vms/{vm}/vcpus/0/access", {"gpa": 0}),
        (f"/vms/{vm}/memory_attributes", {"address": 0, "size": PAGE, "attributes": []}),
    ):
        e = await k.errno(path, body, 404)
        assert e["errno"] == "EBADF" and "closed" in e["message"], (path, e)
    e = await _delete(k, f"/vms/{vm}", 404)
    assert e["errno"] == "EBADF"
    # the file still works, and its punch still zaps the VM's mapping
    await k.post(f"/files/{g}/fallocate", {"mode": KEEP, "offset": 8 * PAGE, "len": PAGE})
    await k.post(f"/files/{g}/fallocate", {"mode": PUNCH, "offset": 0, "len": PAGE})
    assert not (await k.get(f"/vms/{vm}"))["mapped"]
    # the last close of the guest_memfd destroys the VM
    await k.close(g)
    r = await k.c.get(f"{k.b}/vms/{vm}")
    assert r.status_code == 404, r.text
    assert vm not in [x["vm_id"] for x in (await k.get("/vms"))["vms"]]
    ev = (await k.get("/events"))["events"][-1]
    assert ev["op"] == "close" and any(t["what"] == "vm_destroy" for t in ev["touches"])
    await _delete(k, f"/vms/{vm}", 404)


async def test_close_without_guest_memfd_destroys_at_once(k: Kvm) -> None:
    vm = await k.vm(type="KVM_X86_DEFAULT_VM")
    _fd, _map, addr = await k.shared()
    await k.region(vm, slot=0, flags=[], memory_size=2 * MiB, userspace_addr=addr)
    assert (await k.access(vm, 0x1000, write=True, value=9))["backing"] == "shared"
    await _delete(k, f"/vms/{vm}")
    assert (await k.c.get(f"{k.b}/vms/{vm}")).status_code == 404
    ev = (await k.get("/events"))["events"][-1]
    assert ev["op"] == "vm_close" and any(t["what"] == "vm_destroy" for t in ev["touches"])
    # the VMM's own memory is untouched: what the guest wrote is in the memfd
    got = await k.post(f"/mappings/{_map}/access", {"offset": 0x1000, "write": False})
    assert got["value"] == 9


async def test_unknown_and_malformed_vm_ids(k: Kvm) -> None:
    for bad in ("7", "x", "-1", "99999999999999999999"):
        e = await _delete(k, f"/vms/{bad}", 404)
        assert "no VM" in str(e["message"])


async def test_rfc_v2_dead_owner_keeps_the_memfds(rfc: Kvm) -> None:
    vm = await rfc.vm(type="KVM_X86_DEFAULT_VM")
    fds = []
    for name, flags in (("shared", []), ("private", ["MFD_ALLOW_SEALING"])):
        fd = (await rfc.post("/memfds", {"name": name, "flags": flags}, 201))["fd"]
        fds.append(fd)
    sh, pr = fds
    await rfc.post(f"/files/{pr}/fcntl", {"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]})
    for fd in fds:
        await rfc.post(f"/files/{fd}/ftruncate", {"length": MiB})
    region = {"slot": 0, "flags": ["KVM_MEM_FD"], "guest_phys_addr": 0, "memory_size": MiB}
    region |= {"userspace_addr": 0, "fd": sh, "private_fd": pr}
    await rfc.region(vm, **region)
    await rfc.post(f"/files/{pr}/fallocate", {"mode": [], "offset": 0, "len": PAGE})
    await _delete(rfc, f"/vms/{vm}")
    assert (await rfc.c.get(f"{rfc.b}/vms/{vm}")).status_code == 404
    # the next VM cannot have the files: the dead VM is still their owner
    vm2 = await rfc.vm(type="KVM_X86_DEFAULT_VM")
    e = await rfc.region(vm2, status=409, **region)
    assert e["errno"] == "EPERM" and e["hazard"] == "dead_owner", e


async def test_close_is_an_op_of_the_log(k: Kvm) -> None:
    vm, g = await _private_vm(k)
    await _delete(k, f"/vms/{vm}")
    await k.close(g)
    trace = await k.get("/trace")
    assert [o["op"] for o in trace["ops"]].count("vm_close") == 1
    r = await k.c.post(API, json={"trace": trace})
    assert r.status_code == 201, r.text
    twin = r.json()["id"]
    assert (await k.c.get(f"{API}/{twin}/vms/{vm}")).status_code == 404
    # rewind to before the close: the VM is back, open, mapped
    seq = [o["op"] for o in trace["ops"]].index("vm_close")
    r = await k.c.post(f"{k.b}/rewind", json={"seq": seq})
    assert r.status_code == 200, r.text
    k.check()
    v = await k.get(f"/vms/{vm}")
    assert v["closed"] is False and v["mapped"]
