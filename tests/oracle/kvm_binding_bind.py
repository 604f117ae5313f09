"""The binding table, part two (tests/oracle/kvm_binding_cases.py has part one and the
runner): kvm_gmem_bind()'s checks in order, the largest gfn after it, and pairs of broken
rules pinning which errno wins, all measured on this machine's KVM."""

from __future__ import annotations

from tests.oracle.kvm_binding_cases import (
    DIRTY,
    FIRST,
    GMEM,
    GPA,
    OTHER_VM,
    Case,
    P,
    region,
)

C = Case
BIND_CASES: list[Case] = [
    # kvm_gmem_bind()
    C("fd-closed", "a closed fd", {"guest_memfd": 77}, "EBADF"),
    C("fd-minus-one", "guest_memfd -1 (0xffffffff)", {"guest_memfd": 0xFFFFFFFF}, "EBADF"),
    C("fd-memfd", "a plain memfd", {"guest_memfd": "$mfd"}, "EINVAL"),
    C("fd-other-vm", "another VM's guest_memfd", {"guest_memfd": "$g2"}, "EINVAL", OTHER_VM),
    C(
        "other-vm-own",
        "the other VM binds its own",
        {"vm_id": "$vm2", "guest_memfd": "$g2"},
        None,
        OTHER_VM,
    ),
    C("range-past-end", "offset + size past the end", {"guest_memfd_offset": 14 * P}, "EINVAL"),
    C(
        "range-loff-wraps",
        "offset + size computed in loff_t wraps negative: not past i_size, it binds",
        {"guest_memfd_offset": (1 << 63) - 4 * P},
        None,
        engine_choice=("EINVAL", "the engine refuses a range past the guest_memfd's end"),
    ),
    C(
        "range-negative",
        "an offset >= 2^63 is a negative loff_t",
        {"guest_memfd_offset": 1 << 63},
        "EINVAL",
    ),
    C("range-at-size", "offset equal to the size", {"guest_memfd_offset": 16 * P}, "EINVAL"),
    C(
        "range-ends-at-end",
        "a range ending exactly at the end",
        {"guest_memfd_offset": 12 * P},
        None,
    ),
    C(
        "range-bound",
        "a range another slot binds (6.18: EINVAL, later EEXIST)",
        {"slot": 2, "guest_phys_addr": 2 * GPA, "guest_memfd_offset": 2 * P},
        "EINVAL",
        (FIRST,),
    ),
    C(
        "range-next",
        "the next range of the same guest_memfd",
        {"slot": 2, "guest_phys_addr": 2 * GPA, "guest_memfd_offset": 4 * P},
        None,
        (FIRST,),
    ),
    C(
        "rebind-after-delete",
        "a deleted slot's range binds again",
        {"slot": 2, "guest_phys_addr": 2 * GPA},
        None,
        (FIRST, region(memory_size=0)),
    ),
    C(
        "no-flag-ignores-fd",
        "a guest_memfd fd without the flag is ignored",
        {"flags": [], "guest_memfd": "$mfd"},
        None,
    ),
    C(
        "no-flag-bad-fd",
        "a bad fd without the flag is ignored",
        {"flags": [], "guest_memfd": 77, "guest_memfd_offset": 1},
        None,
    ),
    C("uaddr-zero", "userspace_addr 0", {"userspace_addr": 0}, None),
    C("uaddr-unmapped", "userspace_addr needs no mapping", {"userspace_addr": 0x1000_0000}, None),
    # kvm_arch_prepare_memory_region(): past the largest gfn (52 physical address bits)
    C("gpa-last-page", "the last page below 2^52", {"guest_phys_addr": (1 << 52) - 4 * P}, None),
    C("gpa-past-max", "a gfn past 2^40 - 1", {"guest_phys_addr": (1 << 52) - 2 * P}, "EINVAL"),
    # pairs: which errno wins
    C(
        "pair-badfd-vs-max-gfn",
        "the bind before the largest gfn",
        {"guest_phys_addr": 1 << 52, "guest_memfd": 77},
        "EBADF",
    ),
    C(
        "pair-range-vs-max-gfn",
        "the bind's range before the largest gfn",
        {"guest_phys_addr": 1 << 52, "guest_memfd_offset": 16 * P},
        "EINVAL",
    ),
    C(
        "pair-flags-vs-badfd",
        "flags before the fd",
        {"flags": [*GMEM, DIRTY], "guest_memfd": 77},
        "EINVAL",
    ),
    C(
        "pair-offset-vs-badfd",
        "the offset's alignment before the fd",
        {"guest_memfd_offset": 1, "guest_memfd": 77},
        "EINVAL",
    ),
    C(
        "pair-badfd-vs-range",
        "the fd before the range",
        {"guest_memfd_offset": 64 * P, "guest_memfd": 77},
        "EBADF",
    ),
    C(
        "pair-overlap-vs-badfd",
        "the gpa overlap before the fd",
        {"slot": 2, "guest_memfd": 77},
        "EEXIST",
        (FIRST,),
    ),
    C(
        "pair-overlap-vs-other-vm",
        "the gpa overlap before the VM check",
        {"slot": 2, "guest_memfd": "$g2"},
        "EEXIST",
        (FIRST, *OTHER_VM),
    ),
    C(
        "pair-modify-vs-overlap",
        "immutability before the overlap",
        {"guest_phys_addr": 2 * GPA},
        "EINVAL",
        (FIRST, region(slot=2, guest_phys_addr=2 * GPA, guest_memfd_offset=4 * P)),
    ),
    C(
        "pair-delete-vs-badfd",
        "delete before the fd",
        {"memory_size": 0, "guest_memfd": 77},
        None,
        (FIRST,),
    ),
    C(
        "pair-slot-vs-overlap",
        "the slot id before the overlap",
        {"slot": 32764},
        "EINVAL",
        (FIRST,),
    ),
    C(
        "pair-memfd-vs-range",
        "the fd's kind before the range",
        {"guest_memfd": "$mfd", "guest_memfd_offset": 64 * P},
        "EINVAL",
    ),
]
