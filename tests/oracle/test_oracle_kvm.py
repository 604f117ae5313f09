"""The KVM oracle (app/oracle_kvm.py) itself: the facts the differential tests lean on."""

from __future__ import annotations

import faulthandler
import os
import signal
from typing import Any

import pytest

from app import oracle
from app.oracle_kvm import KvmKernel, kvm_vm_types
from app.oracle_vcpu import SCRATCH_BASES, SCRATCH_SIZE, host_copy
from app.oracle_vmm import VMM_TOP

KVM_OK, KVM_WHY = oracle.kvm_available()
pytestmark = pytest.mark.skipif(not KVM_OK, reason=f"no usable /dev/kvm: {KVM_WHY}")

P = 4096
RW, SHARED = ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"]
MMAP, INIT_SHARED = "GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"
GMEM = ["KVM_MEM_GUEST_MEMFD"]


def touch_in_child(addr: int) -> int | None:
    """Load one byte at addr in a forked child: the signal that killed it, or None."""
    pid = os.fork()
    if pid == 0:  # the child: no Python-level handlers, the default action
        faulthandler.disable()
        for sig in (signal.SIGBUS, signal.SIGSEGV):
            signal.signal(sig, signal.SIG_DFL)
        import ctypes

        ctypes.string_at(addr, 1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else None


def region(k: KvmKernel, vm: str, **kw: Any) -> tuple[bool, object]:
    args = {"vm_id": vm, "slot": 1, "flags": GMEM, "guest_phys_addr": 1 << 30}
    args |= {"memory_size": 4 * P, "userspace_addr": 0, "guest_memfd_offset": 0}
    return k.run("set_user_memory_region", args | kw)


def test_only_the_default_vm_type_exists_here() -> None:
    types = kvm_vm_types()
    assert types["KVM_X86_DEFAULT_VM"]
    if not all(types.values()):  # this machine (PVM): types 1-5 are EINVAL
        with KvmKernel() as k:
            assert k.run("vm_create", {"name": "v", "type": "KVM_X86_SW_PROTECTED_VM"}) == (
                False,
                "EINVAL",
            )


def test_vm_ids_count_up_and_failed_creates_take_none() -> None:
    with KvmKernel() as k:
        assert k.vm_create("a") == "0"
        k.run("vm_create", {"name": "bad", "type": 77})
        assert k.vm_create("b") == "1"


def test_vmm_addresses_follow_the_contract() -> None:
    with KvmKernel() as k:
        fd = k.memfd_create("m")
        k.ftruncate(fd, 16 * P)
        a = k.mmap(fd, 0, 3 * P, RW, SHARED)
        b = k.mmap(fd, 0, 1, RW, SHARED)  # rounds up to a page
        assert k.map_addr(a) == VMM_TOP - 3 * P
        assert k.map_addr(b) == VMM_TOP - 4 * P
        k.munmap(b)
        c = k.mmap(fd, 0, P, RW, SHARED)  # never reused
        assert k.map_addr(c) == VMM_TOP - 5 * P
        assert k.real_addr(12345) == 12345  # outside every mapping: as it is


@pytest.mark.parametrize(
    ("flags", "size", "offset", "signal_name"),
    [
        ([MMAP, INIT_SHARED], 2 * P, 0, None),
        ([MMAP, INIT_SHARED], 2 * P, 2 * P, "SIGBUS"),  # past the end of the file
        ([MMAP], 2 * P, 0, "SIGBUS"),  # private: no INIT_SHARED
    ],
    ids=["shared", "past-eof", "private"],
)
def test_host_copy_faults_exactly_where_a_touch_is_sigbus(
    flags: list[str], size: int, offset: int, signal_name: str | None
) -> None:
    """process_vm_readv answers EFAULT exactly where a real load dies of SIGBUS."""
    with KvmKernel() as k:
        vm = k.vm_create("v")
        fd = k.vm_guest_memfd(vm, size, flags)
        m = k.mmap(fd, 0, 4 * P, RW, SHARED)
        real = k.real_addr(k.map_addr(m) + offset)
        killed = touch_in_child(real)
        assert killed == (signal.SIGBUS if signal_name else None)
        assert (host_copy(real, False, 0) is None) == (signal_name is not None)
        answer = k.run("mapping_access", {"map_id": m, "offset": offset, "write": False})
        assert answer == (True, {"signal": signal_name, "value": None if signal_name else 0})


def test_a_read_only_mapping_refuses_a_store_with_sigsegv() -> None:
    with KvmKernel() as k:
        fd = k.memfd_create("m")
        k.ftruncate(fd, P)
        m = k.mmap(fd, 0, P, ["PROT_READ"], SHARED)
        write = {"map_id": m, "offset": 0, "write": True, "value": 1}
        assert k.run("mapping_access", write) == (True, {"signal": "SIGSEGV", "value": None})
        assert k.pread(fd, 0, 1) == b"\0"


def test_a_real_guest_writes_into_a_guest_memfd_only_slot() -> None:
    """The guest's store lands in the guest_memfd: the host reads it through its
    mapping, and the guest reads what the host wrote (guest_memfd_test.c's guest test)."""
    with KvmKernel() as k:
        vm = k.vm_create("v")
        fd = k.vm_guest_memfd(vm, 4 * P, [MMAP, INIT_SHARED])
        m = k.mmap(fd, 0, 4 * P, RW, SHARED)
        assert region(k, vm, userspace_addr=k.map_addr(m), guest_memfd=fd) == (True, None)
        cpu = k.vcpu_create(vm)
        gpa = (1 << 30) + P + 7
        got = k.vcpu_access(vm, cpu, gpa, write=True, value=0xFF)
        assert got == {"exit": None, "value": 0xFF}
        assert k.mapping_access(m, P + 7, False) == {"signal": None, "value": 0xFF}
        k.mapping_access(m, 2 * P, True, 0xAA)
        assert k.vcpu_access(vm, cpu, (1 << 30) + 2 * P)["value"] == 0xAA


def test_a_gpa_outside_every_memslot_exits_mmio() -> None:
    with KvmKernel() as k:
        vm = k.vm_create("v")
        cpu = k.vcpu_create(vm)
        got = k.vcpu_access(vm, cpu, 0x5000_0010, write=False)
        assert got == {
            "exit": {"reason": "KVM_EXIT_MMIO", "gpa": 0x5000_0010, "size": 1},
            "value": None,
        }


def test_the_scratch_slot_leaves_no_trace() -> None:
    """After an access, the scratch slot's id and gpa are free for the log."""
    with KvmKernel() as k:
        vm = k.vm_create("v")
        cpu = k.vcpu_create(vm)
        k.vcpu_access(vm, cpu, 0x1000)
        anon = k.memfd_create("m")
        k.ftruncate(anon, SCRATCH_SIZE)
        m = k.mmap(anon, 0, SCRATCH_SIZE, RW, SHARED)
        plain = {"flags": [], "userspace_addr": k.map_addr(m), "memory_size": SCRATCH_SIZE}
        assert region(k, vm, slot=32763, guest_phys_addr=SCRATCH_BASES[0], **plain) == (True, None)
        got = k.vcpu_access(vm, cpu, SCRATCH_BASES[0] + 1)  # the scratch moves elsewhere
        assert got == {"exit": None, "value": 0}


def test_the_window_mirrors_the_vmm_address_space() -> None:
    """A slot over two adjacent VMM mappings reaches both files; past them it faults."""
    with KvmKernel() as k:
        a, b = k.memfd_create("a"), k.memfd_create("b")
        for fd, byte in ((a, b"A"), (b, b"B")):
            k.ftruncate(fd, 4 * P)
            k.pwrite(fd, P, byte)
        ma = k.mmap(a, 0, 4 * P, RW, SHARED)
        mb = k.mmap(b, 0, 4 * P, RW, SHARED)
        assert k.map_addr(mb) + 4 * P == k.map_addr(ma)
        vm = k.vm_create("v")
        cpu = k.vcpu_create(vm)
        plain = {"flags": [], "userspace_addr": k.map_addr(mb), "memory_size": 12 * P}
        assert region(k, vm, **plain) == (True, None)
        assert k.vcpu_access(vm, cpu, (1 << 30) + P)["value"] == ord("B")
        assert k.vcpu_access(vm, cpu, (1 << 30) + 5 * P)["value"] == ord("A")
        assert k.run("vcpu_access", {"vm_id": vm, "vcpu_id": cpu, "gpa": (1 << 30) + 9 * P}) == (
            False,
            "EFAULT",
        )
        k.munmap(ma)
        assert k.run("vcpu_access", {"vm_id": vm, "vcpu_id": cpu, "gpa": (1 << 30) + 5 * P}) == (
            False,
            "EFAULT",
        )
        assert k.mapping_access(mb, 5 * P, False) == {"signal": "SIGSEGV", "value": None}
