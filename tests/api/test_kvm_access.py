"""The KVM side over REST: guest and host access, conversions, attributes, views, and
the ioctls as ops of the log (trace, replay, rewind, preview)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.settings import Settings
from tests.api.helpers import running
from tests.api.kvm_helpers import API, Kvm, MiB

pytestmark = pytest.mark.anyio
GM = ["KVM_MEM_GUEST_MEMFD"]
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]


async def _kvm(tmp_path: Path, **body: Any) -> AsyncIterator[Kvm]:
    settings = Settings(data=tmp_path / "data", log_requests=False, rate=0)
    async with running(settings) as (app, c):
        r = await c.post(API, json=body)
        assert r.status_code == 201, r.text
        yield Kvm(app, c, r.json()["id"])


@pytest.fixture
async def k(tmp_path: Path) -> AsyncIterator[Kvm]:
    async for x in _kvm(tmp_path, profile="guest-memfd"):
        yield x


async def _sw_vm(k: Kvm) -> tuple[str, int, int, int, int]:
    """A SW_PROTECTED VM with one 2 MiB slot: guest_memfd g, shared memfd at addr."""
    vm = await k.vm()
    g = await k.gmem(vm)
    fd, map_id, addr = await k.shared()
    await k.region(vm, slot=0, flags=GM, memory_size=2 * MiB, userspace_addr=addr, guest_memfd=g)
    return vm, g, fd, map_id, addr


async def test_mmap_answers_addresses(k: Kvm) -> None:
    _, _map1, addr1 = await k.shared(8192)
    _, map2, addr2 = await k.shared(4096 + 1)
    assert addr1 == 0x7F0000000000 - 8192
    assert addr2 == addr1 - 8192  # lengths round up to pages, addresses never come back
    assert (await k.c.delete(f"{k.b}/mappings/{map2}")).status_code == 204
    _, _, addr3 = await k.shared(4096)
    assert addr3 == addr2 - 4096
    assert (await k.get("/files/3"))["mappings"] == 1


async def test_conversion_round_trip(k: Kvm) -> None:
    vm, g, fd, map_id, _addr = await _sw_vm(k)
    a = await k.access(vm, 0x1234, write=True, value=0x5A)
    assert a == {
        "exit": None,
        "backing": "shared",
        "fd": fd,
        "index": 1,
        "pfn": a["pfn"],
        "order": 0,
        "value": 0x5A,
        "pending": False,
        "seq": a["seq"],
    }
    # the host reads the guest's byte through its mapping, and the reverse
    h = await k.post(f"/mappings/{map_id}/access", {"offset": 0x1234})
    assert h == {"signal": None, "value": 0x5A, "seq": h["seq"]}
    await k.post(f"/mappings/{map_id}/access", {"offset": 0x1235, "write": True, "value": 7})
    assert (await k.access(vm, 0x1235))["value"] == 7
    # to private: the attribute zaps the shared mapping; the access is private
    r = await k.post(
        f"/vms/{vm}/memory_attributes",
        {"address": 0x1000, "size": 4096, "attributes": PRIV, "flags": 0},
    )
    assert r["extents"] == [{"start": 1, "end": 2, "attributes": PRIV}]
    ev = (await k.get("/events"))["events"]
    zap = [t for t in ev[-1]["touches"] if t["what"] == "zap"]
    assert zap and zap[0]["index"] == 1 and zap[0]["owner_id"] == vm
    a = await k.access(vm, 0x1234)
    assert (a["backing"], a["fd"], a["value"], a["exit"]) == ("private", g, 0, None)
    await k.access(vm, 0x1234, write=True, value=9)
    # the VMM discards the shared copy; the private byte stays
    await k.post(
        f"/files/{fd}/fallocate",
        {"mode": ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], "offset": 0x1000, "len": 4096},
    )
    assert (await k.access(vm, 0x1234))["value"] == 9
    # back to shared: discard the private copy; the shared page is a new one
    await k.post(
        f"/vms/{vm}/memory_attributes", {"address": 0x1000, "size": 4096, "attributes": []}
    )
    await k.post(
        f"/files/{g}/fallocate",
        {"mode": ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], "offset": 0x1000, "len": 4096},
    )
    a = await k.access(vm, 0x1234)
    assert (a["backing"], a["fd"], a["value"]) == ("shared", fd, 0)
    attrs = await k.get(f"/vms/{vm}/memory_attributes?start=0&end=512")
    assert attrs["extents"] == [{"start": 0, "end": 512, "attributes": []}]


async def test_exits(k: Kvm) -> None:
    vm, _g, _fd, map_id, _addr = await _sw_vm(k)
    a = await k.access(vm, 0x2000, private=True)
    assert a["exit"] == {
        "reason": "KVM_EXIT_MEMORY_FAULT",
        "flags": ["KVM_MEMORY_EXIT_FLAG_PRIVATE"],
        "gpa": 0x2000,
        "size": 4096,
        "errno": "EFAULT",
        "type": None,
    }
    assert a["backing"] is None and a["value"] is None
    ev = (await k.get("/events"))["events"][-1]
    assert ev["op"] == "vcpu_access" and ev["touches"][0]["what"] == "exit"
    a = await k.access(vm, 64 * MiB + 5)
    assert a["exit"]["reason"] == "KVM_EXIT_MMIO" and a["exit"]["gpa"] == 64 * MiB + 5
    await k.post(
        f"/vms/{vm}/memory_attributes", {"address": 64 * MiB, "size": 4096, "attributes": PRIV}
    )
    a = await k.access(vm, 64 * MiB)
    assert a["exit"]["reason"] == "KVM_EXIT_MEMORY_FAULT"  # private, no memslot
    # TDX: the guest's shared bit against a private attribute
    td = await k.vm("KVM_X86_TDX_VM")
    tg = await k.gmem(td)
    await k.region(td, slot=0, flags=GM, memory_size=2 * MiB, guest_memfd=tg)
    await k.post(
        f"/vms/{td}/memory_attributes", {"address": 0, "size": 2 * MiB, "attributes": PRIV}
    )
    assert (await k.post(f"/vms/{td}/vcpus/0/access", {"gpa": 0, "private": True}))[
        "backing"
    ] == "private"
    a = await k.post(f"/vms/{td}/vcpus/0/access", {"gpa": 0, "private": False})
    assert a["exit"]["flags"] == [] and a["exit"]["reason"] == "KVM_EXIT_MEMORY_FAULT"
    # the VMM's mapping gone: KVM_RUN fails with EFAULT
    await k.access(vm, 0x3000)
    assert (await k.c.delete(f"{k.b}/mappings/{map_id}")).status_code == 204
    k.check()
    assert (await k.get(f"/vms/{vm}"))["mapped"] == []  # the mmu notifier zapped it
    e = await k.post(f"/vms/{vm}/vcpus/0/access", {"gpa": 0x3000}, 409)
    assert e["errno"] == "EFAULT" and e["op"] == "KVM_RUN" and "userspace_addr" in e["message"]


async def test_guest_memfd_mmap_on_the_default_vm(k: Kvm) -> None:
    vm = await k.vm("KVM_X86_DEFAULT_VM")
    g = await k.gmem(vm, 2 * MiB, ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"])
    p = await k.gmem(vm, 8192, ["GUEST_MEMFD_FLAG_MMAP"])
    rw = {"prot": ["PROT_READ", "PROT_WRITE"], "flags": ["MAP_SHARED"]}
    m = await k.post(f"/files/{g}/mmap", {"offset": 0, "length": 2 * MiB, **rw}, 201)
    pm = await k.post(f"/files/{p}/mmap", {"offset": 0, "length": 3 * 4096, **rw}, 201)
    await k.region(
        vm, slot=0, flags=GM, memory_size=2 * MiB, userspace_addr=m["addr"], guest_memfd=g
    )
    a = await k.access(vm, 0x2001, write=True, value=0x33)
    assert (a["backing"], a["fd"]) == ("shared", g)
    assert (await k.post(f"/mappings/{m['map_id']}/access", {"offset": 0x2001}))["value"] == 0x33
    # without INIT_SHARED every host touch is SIGBUS; past the file's end SIGBUS;
    # past the mapping SIGSEGV
    assert (await k.post(f"/mappings/{pm['map_id']}/access", {"offset": 0}))["signal"] == "SIGBUS"
    assert (await k.post(f"/mappings/{pm['map_id']}/access", {"offset": 8192}))[
        "signal"
    ] == "SIGBUS"
    h = await k.post(f"/mappings/{m['map_id']}/access", {"offset": 2**64 - 1})
    assert h == {"signal": "SIGSEGV", "value": None, "seq": h["seq"]}
    # punch: the host and the guest read zeros
    await k.post(
        f"/files/{g}/fallocate",
        {"mode": ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"], "offset": 0x2000, "len": 4096},
    )
    assert (await k.post(f"/mappings/{m['map_id']}/access", {"offset": 0x2001}))["value"] == 0
    assert (await k.access(vm, 0x2001))["value"] == 0
    await k.post("/mappings/99/access", {"offset": 0}, 404)


async def test_views_vm_and_gfns(k: Kvm) -> None:
    vm, g, fd, _map_id, addr = await _sw_vm(k)
    await k.access(vm, 0)
    await k.post(
        f"/vms/{vm}/memory_attributes", {"address": 0x10000, "size": 0x2000, "attributes": PRIV}
    )
    await k.access(vm, 0x10000)
    d = await k.get(f"/vms/{vm}")
    assert d["attributes"] == [{"start": 16, "end": 18, "attributes": PRIV}]
    assert [(r["gfn"], r["npages"]) for r in d["mapped"]] == [(0, 1), (16, 1)]
    assert d["nattr_runs"] == 1 and d["memslots"][0]["userspace_addr"] == addr
    v = await k.get(f"/vms/{vm}/gfns?start=0&end=1024")
    assert [(r["start"], r["end"], r["source"], r["mapped"]) for r in v["runs"]] == [
        (0, 1, "shared_userspace_addr", True),
        (1, 16, "shared_userspace_addr", False),
        (16, 17, "private", True),
        (17, 18, "private", False),
        (18, 512, "shared_userspace_addr", False),
        (512, 1024, "none", False),
    ]
    assert v["next"] is None and v["runs"][2]["fd"] == g and v["runs"][0]["fd"] == fd
    v = await k.get(f"/vms/{vm}/gfns?start=0&end=1024&limit=2")
    assert len(v["runs"]) == 2 and v["next"] == 16
    await k.post("/vms/9/vcpus/0/access", {"gpa": 0}, 404)
    await k.post(f"/vms/{vm}/vcpus/5/access", {"gpa": 0}, 404)
    assert (await k.post(f"/vms/{vm}/vcpus/0/access", {"gpa": 2**64}, 422))["errno"] == "EINVAL"
    e = await k.post(f"/vms/{vm}/vcpus/0/access", {"gpa": 2**64 - 1}, 200)
    assert e["exit"]["reason"] == "KVM_EXIT_MMIO"


async def test_attribute_rules_and_u64(k: Kvm) -> None:
    vm = await k.vm()
    d = await k.vm("KVM_X86_DEFAULT_VM")
    cases = [
        (vm, {"address": 0, "size": 4096, "attributes": PRIV, "flags": 1}, "flags must be 0"),
        (vm, {"address": 0, "size": 4096, "attributes": ["NOPE"]}, "not supported"),
        (d, {"address": 0, "size": 4096, "attributes": PRIV}, "not supported"),
        (vm, {"address": 0, "size": 0, "attributes": PRIV}, "wraps"),
        (vm, {"address": 2**64 - 4096, "size": 8192, "attributes": PRIV}, "wraps"),
        (vm, {"address": 1, "size": 4096, "attributes": PRIV}, "aligned"),
        (
            vm,
            {"address": 2**64 - 1, "size": 2**64 - 1, "attributes": PRIV, "flags": 2**64 - 1},
            "flags must be 0",
        ),
    ]
    for v, body, words in cases:
        e = await k.post(f"/vms/{v}/memory_attributes", body, 409)
        assert e["errno"] == "EINVAL" and words in e["message"], (body, e)
    # a 1 TiB VM with 3 runs
    for address, size, attrs in ((0, 1 << 40, PRIV), (1 << 30, 1 << 21, []), (1 << 35, 4096, [])):
        await k.post(
            f"/vms/{vm}/memory_attributes", {"address": address, "size": size, "attributes": attrs}
        )
    d2 = await k.get(f"/vms/{vm}")
    assert d2["nattr_runs"] == 3 and d2["attr_bytes"] < 64 * 1024


async def test_ioctls_are_ops_of_the_log(k: Kvm) -> None:
    vm, _g, _fd, map_id, addr = await _sw_vm(k)
    await k.access(vm, 0x1000, write=True, value=1)
    await k.post(f"/vms/{vm}/memory_attributes", {"address": 0, "size": 4096, "attributes": PRIV})
    await k.access(vm, 0x10, write=True, value=2)
    await k.post(f"/mappings/{map_id}/access", {"offset": 0x1000})
    await k.post(f"/vms/{vm}/vcpus/0/access", {"gpa": 0x3000, "private": True})
    trace = await k.get("/trace")
    names = [o["op"] for o in trace["ops"]]
    for op in (
        "vm_create",
        "vcpu_create",
        "vm_guest_memfd",
        "set_user_memory_region",
        "set_memory_attributes",
        "vcpu_access",
        "mapping_access",
        "mmap",
    ):
        assert op in names, op
    region = next(o for o in trace["ops"] if o["op"] == "set_user_memory_region")
    assert region["args"]["vm_id"] == vm and region["args"]["userspace_addr"] == addr
    r = await k.c.post(API, json={"trace": trace})
    assert r.status_code == 201, r.text
    twin = r.json()["id"]
    mine, theirs = await k.c.get(f"{k.b}/vms/{vm}"), await k.c.get(f"{API}/{twin}/vms/{vm}")
    assert mine.json() == theirs.json()
    assert (await k.c.get(f"{API}/{twin}/events")).json()["events"] == (await k.get("/events"))[
        "events"
    ]
    # rewind to before the attribute change: the shared mapping of gfn 1 is back
    seq = names.index("set_memory_attributes")  # ops before it
    r = await k.c.post(f"{k.b}/rewind", json={"seq": seq})
    assert r.status_code == 200, r.text
    k.check()
    assert (await k.get(f"/vms/{vm}"))["attributes"] == []


async def test_owner_limit_is_429(k: Kvm) -> None:
    for i in range(8):
        await k.post("/vms", {"name": f"vm{i}"}, 201)
    e = await k.post("/vms", {"name": "one too many"}, 429)
    assert e["limit"] == "max_owners"


async def test_pre_fault_memory(k: Kvm) -> None:
    vm, *_ = await _sw_vm(k)
    await k.post(
        f"/vms/{vm}/memory_attributes", {"address": 0x3000, "size": 4096, "attributes": PRIV}
    )
    pf = f"/vms/{vm}/vcpus/0/pre_fault_memory"
    for body, words in (
        ({"gpa": 0, "size": 4096, "flags": 1}, "flags must be 0"),
        ({"gpa": 0, "size": 0}, "page aligned"),
        ({"gpa": 2**64 - 4096, "size": 8192}, "wrap"),
        ({"gpa": 1, "size": 4096}, "page aligned"),
    ):
        e = await k.post(pf, body, 409)
        assert e["errno"] == "EINVAL" and words in e["message"], e
    r = await k.post(pf, {"gpa": 0, "size": 4 * MiB})
    assert (r["gpa"], r["size"]) == (2 * MiB, 2 * MiB)  # the slot ends at 2 MiB
    mapped = (await k.get(f"/vms/{vm}"))["mapped"]
    assert sum(x["npages"] for x in mapped) == 512
    v = await k.get(f"/vms/{vm}/gfns?start=3&end=4")
    assert v["runs"][0]["source"] == "private" and v["runs"][0]["mapped"]
    e = await k.post(pf, {"gpa": 2 * MiB, "size": 4096}, 404)  # ENOENT: no memslot
    assert e["errno"] == "ENOENT" and "no memslot" in e["message"]
    td = await k.vm("KVM_X86_TDX_VM")
    e = await k.post(f"/vms/{td}/vcpus/0/pre_fault_memory", {"gpa": 0, "size": 4096}, 409)
    assert e["errno"] == "EOPNOTSUPP"
    await k.post(f"/vms/{vm}/vcpus/3/pre_fault_memory", {"gpa": 0, "size": 4096}, 404)
    await k.post(f"/vms/{vm}/vcpus/{2**40}/pre_fault_memory", {"gpa": 0, "size": 4096}, 422)
    trace = await k.get("/trace")
    assert "pre_fault_memory" in [o["op"] for o in trace["ops"]]


async def test_big_changes_run_off_the_event_loop(k: Kvm) -> None:
    """A pre-fault, an attribute change and a deletion over thousands of mapped gfns
    take the worker-thread path (OpSpec.heavy) and answer as the inline path does."""
    vm = await k.vm()
    g = await k.gmem(vm, 8 * MiB)
    _, _, addr = await k.shared(8 * MiB)
    await k.region(vm, slot=0, flags=GM, memory_size=8 * MiB, userspace_addr=addr, guest_memfd=g)
    r = await k.post(f"/vms/{vm}/vcpus/0/pre_fault_memory", {"gpa": 0, "size": 8 * MiB})
    assert (r["gpa"], r["size"]) == (8 * MiB, 0)
    assert sum(x["npages"] for x in (await k.get(f"/vms/{vm}"))["mapped"]) == 2048
    r = await k.post(
        f"/vms/{vm}/memory_attributes", {"address": 0, "size": 8 * MiB, "attributes": PRIV}
    )
    assert r["extents"] == [{"start": 0, "end": 2048, "attributes": PRIV}]
    assert (await k.get(f"/vms/{vm}"))["mapped"] == []
    await k.post(f"/vms/{vm}/vcpus/0/pre_fault_memory", {"gpa": 0, "size": 8 * MiB})
    assert (await k.region(vm, slot=0, memory_size=0))["deleted"]
    assert (await k.get(f"/vms/{vm}"))["mapped"] == []
