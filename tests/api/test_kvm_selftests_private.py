"""The behaviours tools/testing/selftests/kvm/x86/private_mem_conversions_test.c and
private_mem_kvm_exits_test.c assert, each as a test over REST on a
KVM_X86_SW_PROTECTED_VM (API.md, "The KVM side"). Each docstring names the selftest
function it mirrors.

The selftest's guest asks for conversions by a hypercall (KVM_HC_MAP_GPA_RANGE) that
the VMM answers with KVM_SET_MEMORY_ATTRIBUTES and, optionally, fallocate on the
guest_memfd; here the test plays the VMM and the guest's accesses are vcpu access
calls. A byte per page stands for the selftest's memset / memcmp of whole ranges.
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.kvm_client import SW_VM, Kvm, P, has_kvm_side

pytestmark = pytest.mark.anyio
BASE = 1 << 32  # BASE_DATA_GPA
SIZE = (2 << 20) + P  # PER_CPU_DATA_SIZE
SLOT_SIZE = 4 << 20  # align_up(PER_CPU_DATA_SIZE, 2 MiB)
# the pages that stand for the whole data range: each test range holds some, the 2 MiB
# boundary among them
SAMPLE = (0, P, 2 * P, 3 * P, 4 * P, 5 * P, (2 << 20) - 2 * P, (2 << 20) - P, 2 << 20)
RANGES = [(0, P), (0, 2 << 20), (P, P), (P, 2 << 20), (2 << 20, P)]  # test_ranges[]
FLAG_PRIVATE = "KVM_MEMORY_EXIT_FLAG_PRIVATE"


@pytest.fixture
async def kvm(client: httpx.AsyncClient) -> Kvm:
    if not await has_kvm_side(client):
        pytest.skip("this build's service has no KVM side (POST /vms is not routed)")
    return await Kvm.open(client)


class Guest:
    """A SW_PROTECTED VM with one vCPU, a guest_memfd bound by `slots` memslots, and
    shared memory from a memfd the VMM mmapped (vm_mem_add with a guest_memfd)."""

    def __init__(self, k: Kvm, vm: str, cpu: int, gmem: int, ram_map: int) -> None:
        self.k, self.vm, self.cpu, self.gmem, self.ram = k, vm, cpu, gmem, ram_map

    @classmethod
    async def make(cls, k: Kvm, slots: int = 1) -> Guest:
        vm = await k.vm(SW_VM)
        cpu = await k.vcpu(vm)
        gmem = await k.gmem(vm, SLOT_SIZE)
        ram = await k.memfd(SLOT_SIZE)
        ram_map, addr = await k.mmap(ram, SLOT_SIZE)
        part = SLOT_SIZE // slots
        for i in range(slots):
            await k.region(vm, 10 + i, BASE + i * part, part, addr + i * part, gmem, i * part)
        return cls(k, vm, cpu, gmem, ram_map)

    def pages(self, gpa: int, size: int) -> list[int]:
        """The pages a check looks at: those of SAMPLE inside the range."""
        return [BASE + o for o in SAMPLE if gpa <= BASE + o < gpa + size]

    async def write(self, gpa: int, size: int, value: int) -> None:
        for g in self.pages(gpa, size):
            await self.k.guest_write(self.vm, self.cpu, g, value)

    async def expect(self, gpa: int, size: int, value: int) -> None:
        for g in self.pages(gpa, size):
            assert await self.k.guest_read(self.vm, self.cpu, g) == value, hex(g)

    async def host_expect(self, gpa: int, size: int, value: int) -> None:
        """The host always sees the shared memory (memcmp_h through the VMM mapping)."""
        for g in self.pages(gpa, size):
            assert await self.k.host_read(self.ram, g - BASE) == value, hex(g)

    async def host_write(self, gpa: int, size: int, value: int) -> None:
        for g in self.pages(gpa, size):
            await self.k.host_write(self.ram, g - BASE, value)

    async def map(self, gpa: int, size: int, shared: bool, fallocate: bool) -> None:
        """handle_exit_hypercall(): fallocate (allocate or punch) then set the attribute."""
        if fallocate:
            await self.k.fallocate(self.gmem, gpa - BASE, size, punch=shared)
        await self.k.attrs(self.vm, gpa, size, private=not shared)


@pytest.mark.parametrize("fallocate", [False, True], ids=["attributes", "attributes+fallocate"])
async def test_explicit_conversion(kvm: Kvm, fallocate: bool) -> None:
    """guest_test_explicit_conversion: shared by default; after a conversion to private
    the guest's private bytes are its own and the host keeps seeing the shared ones; the
    rest stays shared; odd pages back to shared are holes the host can write; the whole
    range back to shared is the host's again."""
    g = await Guest.make(kvm)
    def_p, init_p = 0xAA, 0xCC
    await g.write(BASE, SIZE, def_p)
    await g.expect(BASE, SIZE, def_p)
    await g.host_expect(BASE, SIZE, def_p)  # guest_sync_shared
    await g.host_write(BASE, SIZE, init_p)
    await g.expect(BASE, SIZE, init_p)
    for off, size in RANGES:
        gpa = BASE + off
        await g.write(gpa, size, 0x11)
        await g.map(gpa, size, shared=False, fallocate=fallocate)
        if size == P:
            await g.write(gpa, size, 0x22)
            await g.host_expect(gpa, size, 0x11)  # guest_sync_private
            await g.expect(gpa, size, 0x22)
            if gpa > BASE:
                await g.expect(BASE, gpa - BASE, init_p)
            await g.expect(gpa + size, BASE + SIZE - gpa - size, init_p)
        else:
            await g.write(gpa, P, 0x22)
            for j in sorted(x - gpa for x in g.pages(gpa, size)):  # holes in a private range
                if (j // P) % 2:
                    await g.map(gpa + j, P, shared=True, fallocate=fallocate)
                    await g.host_expect(gpa + j, P, 0x11)
                    await g.host_write(gpa + j, P, 0x33)
                    await g.expect(gpa + j, P, 0x33)
                else:
                    await g.host_expect(gpa + j, P, 0x11)
        await g.map(gpa, size, shared=True, fallocate=fallocate)
        await g.write(gpa, size, 0x33)
        await g.host_expect(gpa, size, 0x33)
        await g.host_write(gpa, size, 0x44)
        await g.expect(gpa, size, 0x44)
        await g.write(gpa, size, init_p)
        await g.map(BASE, SIZE, shared=True, fallocate=True)


@pytest.mark.parametrize("precise", [False, True], ids=["whole", "precise"])
async def test_punch_hole(kvm: Kvm, precise: bool) -> None:
    """guest_test_punch_hole: with everything private, a punch frees the pages (the
    mappings are zapped) and the guest reads zeros where it punched."""
    g = await Guest.make(kvm)
    await g.map(BASE, SIZE, shared=False, fallocate=False)
    for off, size in RANGES:
        gpa = BASE + off
        await kvm.fallocate(g.gmem, 0, SIZE, punch=True)
        if precise:
            await g.write(gpa, size, 0xCC)
            await g.expect(gpa, size, 0xCC)
        else:
            await g.write(BASE, SIZE, 0xCC)
            await g.expect(BASE, SIZE, 0xCC)
        await kvm.fallocate(g.gmem, off, size, punch=True)
        await g.expect(gpa, size, 0)
        a = await kvm.access(g.vm, g.cpu, gpa)
        assert (a["backing"], a["fd"], a["index"]) == ("private", g.gmem, off // P)


async def test_mem_conversions_two_memslots(kvm: Kvm) -> None:
    """test_mem_conversions with -m 2: one guest_memfd bound by two memslots; private
    pages of both come from it, at their own offsets."""
    g = await Guest.make(kvm, slots=2)
    half = SLOT_SIZE // 2
    for gpa in (BASE, BASE + half, BASE + half + 3 * P):
        await g.map(gpa, P, shared=False, fallocate=True)
        await kvm.guest_write(g.vm, g.cpu, gpa, 0x5A)
        a = await kvm.access(g.vm, g.cpu, gpa)
        assert (a["backing"], a["fd"], a["index"], a["value"]) == (
            "private",
            g.gmem,
            (gpa - BASE) // P,
            0x5A,
        )
        await g.host_expect(gpa, P, 0)


async def test_guest_memfd_outlives_its_vm_file(kvm: Kvm) -> None:
    """test_mem_conversions' end: the guest_memfd can be punched and allocated again
    after the VM's work (here: every memslot deleted)."""
    g = await Guest.make(kvm)
    await kvm.region(g.vm, 10, BASE, 0, 0, g.gmem)
    await kvm.fallocate(g.gmem, 0, SLOT_SIZE, punch=True)
    await kvm.fallocate(g.gmem, 0, SLOT_SIZE)
    assert (await kvm.file(g.gmem))["nr_pages"] == SLOT_SIZE // P


# ---- private_mem_kvm_exits_test.c ----


async def test_private_access_memslot_deleted(kvm: Kvm) -> None:
    """test_private_access_memslot_deleted: a private gfn whose memslot is deleted exits
    KVM_EXIT_MEMORY_FAULT with flags PRIVATE, the gpa and PAGE_SIZE."""
    vm = await kvm.vm(SW_VM)
    cpu = await kvm.vcpu(vm)
    gpa = 0xC0000000
    fd = await kvm.gmem(vm, P)
    await kvm.region(vm, 10, gpa, P, 0, fd)
    await kvm.attrs(vm, gpa, P, private=True)
    await kvm.guest_read(vm, cpu, gpa)  # guest_repeatedly_read, before the delete
    await kvm.region(vm, 10, gpa, 0, 0, fd)
    a = await kvm.access(vm, cpu, gpa)
    want = {"reason": "KVM_EXIT_MEMORY_FAULT", "flags": [FLAG_PRIVATE], "gpa": gpa, "size": P}
    assert {k: a["exit"][k] for k in (*want, "errno")} == want | {"errno": "EFAULT"}


async def test_private_access_memslot_not_private(kvm: Kvm) -> None:
    """test_private_access_memslot_not_private: a private gfn in a memslot without a
    guest_memfd exits KVM_EXIT_MEMORY_FAULT (flags PRIVATE, gpa, PAGE_SIZE)."""
    vm = await kvm.vm(SW_VM)
    cpu = await kvm.vcpu(vm)
    gpa = 0xC0000000
    ram = await kvm.memfd(P)
    _, addr = await kvm.mmap(ram, P)
    await kvm.region(vm, 10, gpa, P, addr)
    assert await kvm.guest_read(vm, cpu, gpa) == 0
    await kvm.attrs(vm, gpa, P, private=True)
    a = await kvm.access(vm, cpu, gpa + 8)
    want = {"reason": "KVM_EXIT_MEMORY_FAULT", "flags": [FLAG_PRIVATE], "gpa": gpa, "size": P}
    assert {k: a["exit"][k] for k in (*want, "errno")} == want | {"errno": "EFAULT"}
    assert a["value"] is None
