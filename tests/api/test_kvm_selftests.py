"""The behaviours tools/testing/selftests/kvm/guest_memfd_test.c and the guest_memfd part
of set_memory_region_test.c assert, each as a test over REST (API.md, "The KVM side").
Each docstring names the selftest function it mirrors. The private-memory selftests are
in test_kvm_selftests_private.py."""

from __future__ import annotations

import httpx
import pytest

from tests.api.kvm_client import (
    DEFAULT_VM,
    GMEM,
    INIT_SHARED,
    MMAP,
    SW_VM,
    VM_TYPES,
    Kvm,
    P,
    has_kvm_side,
)

pytestmark = pytest.mark.anyio
SIZE = 4 * P  # gmem_test()'s page_size * 4
FLAG_SETS = [[], [MMAP], [MMAP, INIT_SHARED]]


@pytest.fixture
async def kvm(client: httpx.AsyncClient) -> Kvm:
    if not await has_kvm_side(client):
        pytest.skip("this build's service has no KVM side (POST /vms is not routed)")
    return await Kvm.open(client)


async def supported(k: Kvm, vm: str, flags: list[str]) -> bool:
    caps = (await k.caps(vm))["KVM_CAP_GUEST_MEMFD_FLAGS"]
    return all(caps & {MMAP: 1, INIT_SHARED: 2}[f] for f in flags)


@pytest.mark.parametrize("vm_type", VM_TYPES)
@pytest.mark.parametrize("flags", FLAG_SETS, ids=["none", "mmap", "mmap-init-shared"])
async def test_file_read_write_and_size(kvm: Kvm, vm_type: str, flags: list[str]) -> None:
    """test_file_read_write, test_file_size: pread / pwrite fail; fstat's size is the size."""
    vm = await kvm.vm(vm_type)
    if not await supported(kvm, vm, flags):
        assert (
            await kvm.errno("POST", f"/vms/{vm}/guest_memfd", {"size": SIZE, "flags": flags})
            == "EINVAL"
        )
        return
    made = await kvm.call("POST", f"/vms/{vm}/guest_memfd", {"size": SIZE, "flags": flags}, 201)
    fd = made["fd"]
    assert (made["vm_id"], made["size"]) == (vm, SIZE)
    assert await kvm.errno("POST", f"/files/{fd}/pread", {"offset": 0, "count": 64}) is not None
    assert (
        await kvm.errno("POST", f"/files/{fd}/pwrite", {"offset": 0, "data_b64": "AAAA"})
        is not None
    )
    f = await kvm.file(fd)
    assert (f["size"], f["kind"]) == (SIZE, "guest_memfd")


@pytest.mark.parametrize("vm_type", VM_TYPES)
async def test_guest_memfd_flags(kvm: Kvm, vm_type: str) -> None:
    """test_guest_memfd_flags: each flag KVM_CAP_GUEST_MEMFD_FLAGS reports works, any
    other is EINVAL; "MMAP should always be supported if INIT_SHARED is supported"."""
    vm = await kvm.vm(vm_type)
    caps = (await kvm.caps(vm))["KVM_CAP_GUEST_MEMFD_FLAGS"]
    assert caps & 1 or not caps & 2
    for bit, name in ((1, MMAP), (2, INIT_SHARED)):
        got = await kvm.errno("POST", f"/vms/{vm}/guest_memfd", {"size": P, "flags": [name]})
        assert got == (None if caps & bit else "EINVAL"), name
    bogus = {"size": P, "flags": ["GUEST_MEMFD_FLAG_BOGUS"]}
    assert await kvm.errno("POST", f"/vms/{vm}/guest_memfd", bogus) == "EINVAL"


async def test_default_vm_supports_mmap_and_init_shared(kvm: Kvm) -> None:
    """test_guest_memfd_guest's asserts on the default VM type; KVM.md: 1 on VMs with
    private memory (INIT_SHARED is EINVAL there)."""
    assert (await kvm.caps(await kvm.vm(DEFAULT_VM)))["KVM_CAP_GUEST_MEMFD_FLAGS"] == 3
    assert (await kvm.caps(await kvm.vm(SW_VM)))["KVM_CAP_GUEST_MEMFD_FLAGS"] == 1


@pytest.mark.parametrize("size", [1, 2, 2048, P - 1, P + 1, 0])
async def test_create_guest_memfd_invalid_sizes(kvm: Kvm, size: int) -> None:
    """test_create_guest_memfd_invalid_sizes: a size that is not page aligned is EINVAL."""
    vm = await kvm.vm()
    assert (
        await kvm.errno("POST", f"/vms/{vm}/guest_memfd", {"size": size, "flags": []}) == "EINVAL"
    )


async def test_create_guest_memfd_multiple(kvm: Kvm) -> None:
    """test_create_guest_memfd_multiple: two files, each its own size."""
    vm = await kvm.vm()
    a, b = await kvm.gmem(vm, P), await kvm.gmem(vm, 2 * P)
    assert a != b
    assert (await kvm.file(a))["size"] == P
    assert (await kvm.file(b))["size"] == 2 * P


async def test_mmap_supported(kvm: Kvm) -> None:
    """test_mmap_supported: MMAP|INIT_SHARED maps shared; the bytes read back; a punch of
    the first page reads zeros there and keeps the rest; writing again works."""
    vm = await kvm.vm()
    fd = await kvm.gmem(vm, SIZE, [MMAP, INIT_SHARED])
    m, _ = await kvm.mmap(fd, SIZE)
    offsets = [0, 1, P - 1, P, 2 * P + 17, SIZE - 1]
    for off in offsets:
        await kvm.host_write(m, off, 0xAA)
    await kvm.fallocate(fd, 0, P, punch=True)
    for off in offsets:
        assert await kvm.host_read(m, off) == (0 if off < P else 0xAA), off
    await kvm.host_write(m, 0, 0xAA)
    assert await kvm.host_read(m, 0) == 0xAA


async def test_mmap_cow(kvm: Kvm) -> None:
    """test_mmap_cow: MAP_PRIVATE of a guest_memfd is refused (EINVAL)."""
    vm = await kvm.vm()
    fd = await kvm.gmem(vm, SIZE, [MMAP, INIT_SHARED])
    body = {
        "offset": 0,
        "length": SIZE,
        "prot": ["PROT_READ", "PROT_WRITE"],
        "flags": ["MAP_PRIVATE"],
    }
    assert await kvm.errno("POST", f"/files/{fd}/mmap", body) == "EINVAL"


async def test_mmap_not_supported(kvm: Kvm) -> None:
    """test_mmap_not_supported: without GUEST_MEMFD_FLAG_MMAP, mmap is ENODEV."""
    vm = await kvm.vm()
    fd = await kvm.gmem(vm, SIZE)
    for length in (P, SIZE):
        body = {
            "offset": 0,
            "length": length,
            "prot": ["PROT_READ", "PROT_WRITE"],
            "flags": ["MAP_SHARED"],
        }
        assert await kvm.errno("POST", f"/files/{fd}/mmap", body) == "ENODEV"


async def test_fault_overflow(kvm: Kvm) -> None:
    """test_fault_overflow: a mapping 4x the file: past the end SIGBUS, within it fine."""
    vm = await kvm.vm()
    fd = await kvm.gmem(vm, SIZE, [MMAP, INIT_SHARED])
    m, _ = await kvm.mmap(fd, 4 * SIZE)
    assert (await kvm.host(m, SIZE, True, 0xAA))["signal"] == "SIGBUS"
    assert (await kvm.host(m, 4 * SIZE - 1))["signal"] == "SIGBUS"
    await kvm.host_write(m, SIZE - 1, 0xAA)
    assert await kvm.host_read(m, SIZE - 1) == 0xAA


async def test_fault_private(kvm: Kvm) -> None:
    """test_fault_private: MMAP without INIT_SHARED: every host touch is SIGBUS."""
    vm = await kvm.vm()
    fd = await kvm.gmem(vm, SIZE, [MMAP])
    m, _ = await kvm.mmap(fd, SIZE)
    for off in (0, P, SIZE - 1):
        assert await kvm.host(m, off) == {"signal": "SIGBUS", "value": None}
        assert (await kvm.host(m, off, True, 1))["signal"] == "SIGBUS"


async def test_fallocate(kvm: Kvm) -> None:
    """test_fallocate: the selftest's sequence, each call ok or refused as it asserts."""
    vm = await kvm.vm()
    fd = await kvm.gmem(vm, SIZE)
    keep, punch = ["FALLOC_FL_KEEP_SIZE"], ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"]
    steps = [
        (keep, 0, SIZE, True),
        (punch, P - 1, P, False),
        (keep, SIZE, P, False),
        (keep, SIZE + P, P, False),
        (punch, SIZE, P, True),
        (punch, SIZE + P, P, True),
        (punch, P, P - 1, False),
        (punch, P, P, True),
        (keep, P, P, True),
    ]
    for mode, off, n, ok in steps:
        got = await kvm.errno(
            "POST", f"/files/{fd}/fallocate", {"mode": mode, "offset": off, "len": n}
        )
        assert (got is None) == ok, (mode, off, n, got)


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, 1),
        (0, P - 1),
        (0, P + 1),
        (1, 1),
        (1, P - 1),
        (1, P),
        (1, P + 1),
        (P, 1),
        (P, P - 1),
        (P, P + 1),
    ],
)
async def test_invalid_punch_hole(kvm: Kvm, offset: int, length: int) -> None:
    """test_invalid_punch_hole: a punch not in whole pages is EINVAL."""
    vm = await kvm.vm()
    fd = await kvm.gmem(vm, SIZE)
    body = {
        "mode": ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"],
        "offset": offset,
        "len": length,
    }
    assert await kvm.errno("POST", f"/files/{fd}/fallocate", body) == "EINVAL"


async def test_guest_memfd_guest(kvm: Kvm) -> None:
    """test_guest_memfd_guest: a guest_memfd-only slot at 4 GiB with userspace_addr 0:
    the host writes 0xaa through its mapping, the guest reads 0xaa and writes 0xff, a new
    mapping of the host reads 0xff (the same pages, shared in place)."""
    vm = await kvm.vm()
    cpu = await kvm.vcpu(vm)
    fd = await kvm.gmem(vm, P, [MMAP, INIT_SHARED])
    await kvm.region(vm, 1, 1 << 32, P, 0, fd)
    m, _ = await kvm.mmap(fd, P)
    for off in (0, 100, P - 1):
        await kvm.host_write(m, off, 0xAA)
    await kvm.munmap(m)
    for off in (0, 100, P - 1):
        assert await kvm.guest_read(vm, cpu, (1 << 32) + off) == 0xAA
        await kvm.guest_write(vm, cpu, (1 << 32) + off, 0xFF)
        a = await kvm.access(vm, cpu, (1 << 32) + off)
        assert (a["backing"], a["fd"], a["index"]) == ("shared", fd, 0)
    m2, _ = await kvm.mmap(fd, P)
    for off in (0, 100, P - 1):
        assert await kvm.host_read(m2, off) == 0xFF


# ---- set_memory_region_test.c, the guest_memfd part ----


async def test_invalid_memory_region_flags(kvm: Kvm) -> None:
    """test_invalid_memory_region_flags: GUEST_MEMFD with LOG_DIRTY_PAGES ("dirty logging
    private memory is unsupported") or READONLY, or an unknown flag: EINVAL."""
    vm = await kvm.vm(SW_VM)
    fd = await kvm.gmem(vm, 2 << 20)
    for flags in ([GMEM, "KVM_MEM_LOG_DIRTY_PAGES"], [GMEM, "KVM_MEM_READONLY"], ["KVM_MEM_BOGUS"]):
        body = {"slot": 0, "flags": flags, "guest_phys_addr": 0, "memory_size": 2 << 20}
        body |= {"userspace_addr": 0, "guest_memfd_offset": 0, "guest_memfd": fd}
        assert await kvm.errno("POST", f"/vms/{vm}/memory_regions", body) == "EINVAL", flags


async def _region_errno(
    k: Kvm, vm: str, fd: int, offset: int = 0, gpa: int = 0xC0000000, **kw: int
) -> str | None:
    body = {"slot": 10, "flags": [GMEM], "guest_phys_addr": gpa, "memory_size": 2 << 20}
    body |= {"userspace_addr": 0, "guest_memfd_offset": offset, "guest_memfd": fd} | kw
    return await k.errno("POST", f"/vms/{vm}/memory_regions", body)


async def test_add_private_memory_region(kvm: Kvm) -> None:
    """test_add_private_memory_region: a plain memfd, another VM's guest_memfd, an
    unaligned offset: EINVAL; the other VM binds its own; an aligned bind works."""
    vm, vm2 = await kvm.vm(SW_VM), await kvm.vm(SW_VM)
    assert await _region_errno(kvm, vm, await kvm.memfd(2 << 20)) == "EINVAL"
    other = await kvm.gmem(vm2, 2 << 20)
    assert await _region_errno(kvm, vm, other) == "EINVAL"
    assert await _region_errno(kvm, vm2, other) is None
    fd = await kvm.gmem(vm, 2 << 20)
    for off in (1, 2, 512, P - 1):
        assert await _region_errno(kvm, vm, fd, off) == "EINVAL", off
    assert await _region_errno(kvm, vm, fd) is None


async def test_add_overlapping_private_memory_regions(kvm: Kvm) -> None:
    """test_add_overlapping_private_memory_regions: two slots of one guest_memfd; the
    first deleted and recreated over the front or back half of the other's gpa range:
    EEXIST."""
    size, gpa = 2 << 20, 0xC0000000
    vm = await kvm.vm(SW_VM)
    fd = await kvm.gmem(vm, size * 4)
    await kvm.region(vm, 10, gpa, size * 2, 0, fd, 0)
    await kvm.region(vm, 11, gpa * 2, size * 2, 0, fd, size * 2)
    await kvm.region(vm, 10, gpa, 0, 0, fd)
    for start in (gpa * 2 - size, gpa * 2 + size):
        assert await _region_errno(kvm, vm, fd, 0, start, memory_size=size * 2) == "EEXIST"


async def test_add_max_memory_regions_limit(kvm: Kvm) -> None:
    """test_add_max_memory_regions, its bound: slot ids below KVM_CAP_NR_MEMSLOTS work,
    that number is EINVAL."""
    vm = await kvm.vm()
    n = (await kvm.caps(vm))["KVM_CAP_NR_MEMSLOTS"]
    assert n == 32764
    body = {
        "flags": [],
        "memory_size": 2 << 20,
        "userspace_addr": 0,
        "guest_memfd_offset": 0,
        "guest_memfd": 0,
    }
    last = body | {"slot": n - 1, "guest_phys_addr": (n - 1) * (2 << 20)}
    assert await kvm.errno("POST", f"/vms/{vm}/memory_regions", last) is None
    beyond = body | {"slot": n, "guest_phys_addr": n * (2 << 20)}
    assert await kvm.errno("POST", f"/vms/{vm}/memory_regions", beyond) == "EINVAL"
