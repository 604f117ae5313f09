"""The KVM side over REST: VMs, capabilities, guest_memfd, KVM_SET_USER_MEMORY_REGION2
binding rules and which errno wins when two rules break (the kernel's order of checks)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.api.helpers import running
from tests.api.kvm_helpers import API, Kvm, MiB

pytestmark = pytest.mark.anyio
U64 = 2**64 - 1
GM = ["KVM_MEM_GUEST_MEMFD"]


async def _kvm(tmp_path: Path, profile: str) -> AsyncIterator[Kvm]:
    settings = Settings(data=tmp_path / "data", log_requests=False, rate=0)
    async with running(settings) as (app, c):
        r = await c.post(API, json={"profile": profile})
        assert r.status_code == 201, r.text
        yield Kvm(app, c, r.json()["id"])


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in _kvm(tmp_path, "guest-memfd"):
        yield x


@pytest.fixture
async def rfc(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in _kvm(tmp_path, "rfc-v2"):
        yield x


async def test_vm_create_types_and_capabilities(k: Kvm) -> None:
    vm = await k.post("/vms", {"name": "vm0", "type": "KVM_X86_SW_PROTECTED_VM"}, 201)
    assert vm == {
        "vm_id": "0",
        "name": "vm0",
        "type": "KVM_X86_SW_PROTECTED_VM",
        "memslots": [],
        "vcpus": 0,
        "closed": False,
    }
    d = await k.post("/vms", {"name": "d"}, 201)
    assert d["type"] == "KVM_X86_DEFAULT_VM" and d["vm_id"] == "1"
    for bad in ("KVM_X86_SEV_VM", "nope"):
        e = await k.errno("/vms", {"type": bad})
        assert e["errno"] == "EINVAL" and e["op"] == "KVM_CREATE_VM"
    caps = await k.get("/vms/0/capabilities")
    assert caps["KVM_CAP_NR_MEMSLOTS"] == 32764 and caps["KVM_CAP_GUEST_MEMFD"] == 1
    assert caps["KVM_CAP_GUEST_MEMFD_FLAGS"] == 1 and caps["KVM_CAP_MEMORY_ATTRIBUTES"] == 8
    caps = await k.get("/vms/1/capabilities")
    assert caps["KVM_CAP_GUEST_MEMFD_FLAGS"] == 3 and caps["KVM_CAP_MEMORY_ATTRIBUTES"] == 0
    # a VM is an owner: the owner endpoints work on it
    assert (await k.get("/owners/0"))["kind"] == "kvm"
    assert [v["vm_id"] for v in (await k.get("/vms"))["vms"]] == ["0", "1"]


async def test_rfc_takes_the_default_vm_only(rfc: Kvm) -> None:
    assert (await rfc.errno("/vms", {"type": "KVM_X86_TDX_VM"}))["errno"] == "EINVAL"
    vm = await rfc.vm("KVM_X86_DEFAULT_VM")
    e = await rfc.errno(f"/vms/{vm}/guest_memfd", {"size": 4096})
    assert e["errno"] == "ENOTTY"
    e = await rfc.errno(f"/vms/{vm}/memory_attributes", {"address": 0, "size": 4096})
    assert e["errno"] == "ENOTTY"


async def test_guest_memfd_flags_per_vm_and_u64_sizes(k: Kvm) -> None:
    p, d = await k.vm(), await k.vm("KVM_X86_DEFAULT_VM")
    f = await k.post(
        f"/vms/{p}/guest_memfd", {"size": 8192, "flags": ["GUEST_MEMFD_FLAG_MMAP"]}, 201
    )
    assert f["vm_id"] == p and f["kind"] == "guest_memfd" and f["size"] == 8192
    e = await k.errno(
        f"/vms/{p}/guest_memfd", {"size": 4096, "flags": ["GUEST_MEMFD_FLAG_INIT_SHARED"]}
    )
    assert e["errno"] == "EINVAL" and "INIT_SHARED" in e["message"]
    await k.post(
        f"/vms/{d}/guest_memfd", {"size": 4096, "flags": ["GUEST_MEMFD_FLAG_INIT_SHARED"]}, 201
    )
    for size in (0, 4095, 2**63, U64):
        e = await k.errno(f"/vms/{p}/guest_memfd", {"size": size})
        assert e["errno"] == "EINVAL", size
    assert (await k.post(f"/vms/{p}/guest_memfd", {"size": 2**64}, 422))["errno"] == "EINVAL"
    await k.post("/vms/7/guest_memfd", {"size": 4096}, 404)


@pytest.mark.parametrize(
    ("body", "errno", "words"),
    [
        ({"guest_memfd_offset": 4097}, "EINVAL", "guest_memfd_offset"),
        ({"guest_memfd_offset": MiB + 4096}, "EINVAL", "past the guest_memfd's end"),
        ({"guest_memfd_offset": 2 * MiB, "memory_size": 4096}, "EINVAL", "past the guest_memfd"),
        ({"guest_memfd_offset": U64 - 4095}, "EINVAL", "wraps"),
        ({"flags": [*GM, "KVM_MEM_LOG_DIRTY_PAGES"]}, "EINVAL", "check_memory_region_flags"),
        ({"flags": [*GM, "KVM_MEM_READONLY"]}, "EINVAL", "check_memory_region_flags"),
        ({"flags": [*GM, "KVM_MEM_BOGUS"]}, "EINVAL", "check_memory_region_flags"),
        ({"slot": 32764}, "EINVAL", "KVM_USER_MEM_SLOTS"),
        ({"slot": 1 << 16}, "EINVAL", "address space"),
        ({"userspace_addr": 0x1001}, "EINVAL", "userspace_addr"),
        ({"userspace_addr": 0x7FFFFFFFF000}, "EINVAL", "access_ok"),
        ({"userspace_addr": U64 - 4095}, "EINVAL", "access_ok"),
        ({"guest_phys_addr": 0x800}, "EINVAL", "guest_phys_addr"),
        ({"guest_phys_addr": U64 - 4095}, "EINVAL", "wraps"),
        ({"memory_size": 4097}, "EINVAL", "memory_size"),
        ({"memory_size": U64 - 4095}, "EINVAL", "userspace_addr"),
        ({"guest_phys_addr": (1 << 52) - 4096, "memory_size": 8192}, "EINVAL", "largest gfn"),
        ({"guest_memfd": 99}, "EBADF", "not open"),
        ({"guest_memfd": -1}, "EBADF", "not open"),
        ({"memory_size": 0}, "EINVAL", "does not exist"),
    ],
)
async def test_binding_rules(k: Kvm, body: dict[str, Any], errno: str, words: str) -> None:
    vm = await k.vm()
    g = await k.gmem(vm, 2 * MiB)
    full = {"slot": 0, "flags": GM, "memory_size": MiB, "guest_memfd": g, **body}
    status = 404 if errno == "EBADF" else 409
    e = await k.region(vm, status, **full)
    assert e["errno"] == errno and words in e["message"], e
    assert e["op"] == "KVM_SET_USER_MEMORY_REGION2"
    assert (await k.get(f"/vms/{vm}"))["memslots"] == []


async def test_binding_ok_cases_immutability_and_delete(k: Kvm) -> None:
    vm, other = await k.vm(), await k.vm()
    g, og = await k.gmem(vm, 4 * MiB), await k.gmem(other)
    mfd = (await k.post("/memfds", {"name": "plain"}, 201))["fd"]
    e = await k.region(vm, 409, slot=0, flags=GM, memory_size=MiB, guest_memfd=og)
    assert "another VM" in e["message"]
    e = await k.region(vm, 409, slot=0, flags=GM, memory_size=MiB, guest_memfd=mfd)
    assert "not a guest_memfd" in e["message"]
    # a range ending exactly at the end; userspace_addr 0 is fine
    s = await k.region(
        vm, slot=0, flags=GM, memory_size=2 * MiB, guest_memfd=g, guest_memfd_offset=2 * MiB
    )
    assert s["guest_memfd"] == g and s["guest_memfd_offset"] == 2 * MiB and not s["deleted"]
    e = await k.region(
        vm,
        409,
        slot=1,
        flags=GM,
        guest_phys_addr=4 * MiB,
        memory_size=4096,
        guest_memfd=g,
        guest_memfd_offset=3 * MiB,
    )
    assert "bound by another memslot" in e["message"]
    # one guest_memfd, two slots
    await k.region(vm, slot=1, flags=GM, guest_phys_addr=4 * MiB, memory_size=MiB, guest_memfd=g)
    # immutable: same again, new offset, moved gpa, without the flag
    for change in ({}, {"guest_memfd_offset": MiB}, {"guest_phys_addr": 8 * MiB}):
        body = {
            "slot": 1,
            "flags": GM,
            "guest_phys_addr": 4 * MiB,
            "memory_size": MiB,
            "guest_memfd": g,
            **change,
        }
        assert "immutable" in (await k.region(vm, 409, **body))["message"]
    e = await k.region(vm, 409, slot=1, guest_phys_addr=4 * MiB, memory_size=MiB)
    assert "modify" in e["message"]
    # a guest_memfd fd without the flag is ignored
    await k.region(vm, slot=2, guest_phys_addr=64 * MiB, memory_size=MiB, guest_memfd=g)
    gone = await k.region(vm, slot=1, memory_size=0)
    assert gone["deleted"] and gone["memory_size"] == MiB and gone["guest_memfd"] == g
    assert "does not exist" in (await k.region(vm, 409, slot=1, memory_size=0))["message"]
    assert [s["slot"] for s in (await k.get(f"/vms/{vm}"))["memslots"]] == [0, 2]


@pytest.mark.parametrize(
    ("body", "errno", "words"),
    [
        # slot id first, before the flags and everything else
        ({"slot": 40000, "flags": ["NOPE"], "memory_size": 1}, "EINVAL", "KVM_USER_MEM_SLOTS"),
        # flags before alignment
        (
            {"flags": [*GM, "KVM_MEM_READONLY"], "memory_size": 1},
            "EINVAL",
            "check_memory_region_flags",
        ),
        # size alignment before gpa alignment
        ({"memory_size": 1, "guest_phys_addr": 1}, "EINVAL", "memory_size"),
        # the gpa overlap (EEXIST) before kvm_gmem_bind's EBADF
        ({"guest_phys_addr": MiB, "guest_memfd": 99}, "EEXIST", "overlaps"),
        # an unaligned offset (EINVAL) before the closed fd (EBADF)
        ({"guest_memfd_offset": 1, "guest_memfd": 99}, "EINVAL", "guest_memfd_offset"),
        # kvm_gmem_bind: the fd (EBADF) before the range past the end (EINVAL)
        ({"guest_memfd": 99, "guest_memfd_offset": 64 * MiB}, "EBADF", "not open"),
        # another VM's guest_memfd before the range past its end
        ({"guest_memfd": "other", "guest_memfd_offset": 64 * MiB}, "EINVAL", "another VM"),
        # the bind (EINVAL past the end) before the arch's max-gfn check
        (
            {"guest_phys_addr": 1 << 52 - 12 << 12, "guest_memfd_offset": 64 * MiB},
            "EINVAL",
            "past the guest_memfd's end",
        ),
    ],
)
async def test_which_errno_wins(k: Kvm, body: dict[str, Any], errno: str, words: str) -> None:
    vm, other = await k.vm(), await k.vm()
    g, og = await k.gmem(vm), await k.gmem(other)
    await k.region(vm, slot=5, flags=GM, guest_phys_addr=0, memory_size=2 * MiB, guest_memfd=g)
    full = {
        "slot": 0,
        "flags": GM,
        "guest_phys_addr": 16 * MiB,
        "memory_size": MiB,
        "guest_memfd": g,
        **body,
    }
    if full["guest_memfd"] == "other":
        full["guest_memfd"] = og
    e = await k.region(vm, 404 if errno == "EBADF" else 409, **full)
    assert e["errno"] == errno and words in e["message"], e


async def test_closing_a_bound_guest_memfd(k: Kvm) -> None:
    vm = await k.vm()
    g = await k.gmem(vm)
    await k.region(vm, slot=0, flags=GM, memory_size=2 * MiB, guest_memfd=g)
    await k.post(
        f"/vms/{vm}/memory_attributes",
        {"address": 0, "size": 2 * MiB, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]},
    )
    a = await k.access(vm, 0x10, write=True, value=1)
    assert a["backing"] == "private" and a["fd"] == g
    await k.post(f"/files/{g}/close", {}, 204) if False else await k.c.post(
        f"{k.b}/files/{g}/close"
    )
    k.check()
    slot = (await k.get(f"/vms/{vm}"))["memslots"][0]
    assert slot["gmem_closed"] and slot["guest_memfd"] is None
    a = await k.access(vm, 0x10)
    assert a["exit"] == {
        "reason": "KVM_EXIT_MEMORY_FAULT",
        "flags": ["KVM_MEMORY_EXIT_FLAG_PRIVATE"],
        "gpa": 0,
        "size": 4096,
        "errno": "EFAULT",
        "type": None,
    }
    e = await k.region(vm, 409, slot=1, memory_size=4096)
    assert e["errno"] == "EEXIST"
    assert (await k.get("/phys"))["used"] == 0


async def test_rfc_fd_based_regions(rfc: Kvm) -> None:
    vm, vm2 = await rfc.vm("KVM_X86_DEFAULT_VM"), await rfc.vm("KVM_X86_DEFAULT_VM")
    sh = (await rfc.post("/memfds", {"name": "shared"}, 201))["fd"]
    pr = (await rfc.post("/memfds", {"name": "private", "flags": ["MFD_ALLOW_SEALING"]}, 201))["fd"]
    await rfc.post(f"/files/{pr}/fcntl", {"cmd": "F_ADD_SEALS", "seals": ["F_SEAL_GUEST"]})
    for fd in (sh, pr):
        await rfc.post(f"/files/{fd}/ftruncate", {"length": 2 * MiB})
    body = {"slot": 0, "flags": ["KVM_MEM_FD"], "memory_size": 2 * MiB, "fd": sh, "private_fd": pr}
    s = await rfc.region(vm, **body)
    assert (s["fd"], s["private_fd"], s["guest_memfd"]) == (sh, pr, None)
    assert (await rfc.get(f"/files/{pr}"))["owners"] == [vm]
    e = await rfc.region(vm2, 409, **{**body, "slot": 1})
    assert e["errno"] == "EPERM" and "another owner" in e["message"]
    e = await rfc.region(vm, 409, **body)
    assert "immutable" in e["message"]
    assert (await rfc.region(vm, **{**body, "memory_size": 0}))["deleted"]
    assert (await rfc.get(f"/files/{pr}"))["owners"] == [vm]  # no unregister in patch 01
    e = await rfc.region(vm, 404, **{**body, "fd": 2**40})
    assert e["errno"] == "EBADF"
