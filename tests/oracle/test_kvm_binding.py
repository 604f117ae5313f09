"""Every binding rule of KVM_SET_USER_MEMORY_REGION2, measured on this machine's KVM.

One case per rule of KVM.md, in the kernel's check order, and pairs of broken rules
(tests/oracle/kvm_binding_cases.py). Each asserts the errno the real kernel gives.
"""

from __future__ import annotations

import os

import pytest

from app import oracle
from app.oracle_kvm import KvmKernel, region2
from tests.oracle.kvm_binding_cases import CASES, GPA, STANDARD, Case, P, run_case

KVM_OK, KVM_WHY = oracle.kvm_available()
pytestmark = pytest.mark.skipif(not KVM_OK, reason=f"no usable /dev/kvm: {KVM_WHY}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_binding_rule_on_the_real_kernel(case: Case) -> None:
    with KvmKernel() as k:
        got = run_case(k, case, k.map_addr)
    assert got == ((True, None) if case.errno is None else (False, case.errno)), case.rule


def test_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("which", ["dev-kvm", "vm-fd"])
def test_kvm_fds_are_not_guest_memfds(which: str) -> None:
    """/dev/kvm and a VM's own fd with the flag: EINVAL (fds a log cannot name)."""
    with KvmKernel() as k:
        vm = k.vm_create("v")
        real_vm = k._vms[vm].fd
        fd = k._kvm() if which == "dev-kvm" else real_vm
        err = region2(real_vm, 1, 4, GPA, 4 * P, 0, 0, fd)
    assert err == 22


def test_a_guest_memfd_bound_twice_serves_both_slots() -> None:
    """Two slots of one guest_memfd, disjoint ranges: both bound; a punch of the file
    is fine while bound, and a delete frees the range for a third slot."""
    with KvmKernel() as k:
        vm = k.vm_create("v")
        g = k.vm_guest_memfd(vm, 16 * P, [])
        base = {"vm_id": vm, "flags": ["KVM_MEM_GUEST_MEMFD"], "memory_size": 4 * P}
        base |= {"userspace_addr": 0, "guest_memfd": g}
        for slot, off in ((1, 0), (2, 4 * P)):
            args = base | {"slot": slot, "guest_phys_addr": slot * GPA, "guest_memfd_offset": off}
            assert k.run("set_user_memory_region", args) == (True, None)
        k.fallocate(g, ["FALLOC_FL_KEEP_SIZE"], 0, 8 * P)
        k.fallocate(g, ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"], 0, 8 * P)
        delete = base | {"slot": 1, "guest_phys_addr": GPA, "memory_size": 0}
        assert k.run("set_user_memory_region", delete | {"guest_memfd_offset": 0}) == (True, None)
        again = base | {"slot": 3, "guest_phys_addr": 3 * GPA, "guest_memfd_offset": 0}
        assert k.run("set_user_memory_region", again) == (True, None)


def test_the_guest_memfd_keeps_its_vm() -> None:
    """fallocate still works after the VM fd is closed (private_mem_conversions_test)."""
    with KvmKernel() as k:
        vm = k.vm_create("v")
        g = k.vm_guest_memfd(vm, 4 * P, [])
        os.close(k._vms.pop(vm).fd)
        k.fallocate(g, ["FALLOC_FL_KEEP_SIZE"], 0, 4 * P)
        k.fallocate(g, ["FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"], 0, 4 * P)


def test_standard_setup_is_valid() -> None:
    with KvmKernel() as k:
        for _, op, args in STANDARD[:1]:
            assert k.run(op, args)[0]
