"""One walkthrough per kernel selftest flow: private_mem_conversions_test's loop,
private_mem_kvm_exits_test's exits, guest_memfd_test's mmap checks."""

from __future__ import annotations

from app.service.walks._dsl import MiB, ftruncate, gmem_inv, memfd, mmap, pread, punch, pwrite
from app.service.walks._kvm import (
    DEFAULT,
    access,
    addr,
    attrs,
    exit_fault,
    gmem,
    host,
    region,
    vcpu,
    vm,
)
from app.service.walks.kvm_convert import sw_guest

CONVERSIONS_TEST = {
    "name": "selftest-private-mem-conversions",
    "title": "Selftest: private_mem_conversions_test's loop",
    "summary": "The selftest's guest writes a pattern shared, the host checks it, the guest "
    "converts to private (a MEMORY_FAULT exit the host answers with the attribute and a "
    "punch), writes private, converts back, and sees the host's new shared data.",
    "profile": "guest-memfd",
    "topics": ["selftest", "conversion"],
    "steps": [
        *sw_guest(),
        access(
            "guest: write 0x11 to gpa 0x8000, shared",
            0x8000,
            True,
            False,
            0x11,
            expect={"backing": "shared", "fd": 4, "index": 8},
        ),
        pread(
            "host: reads the pattern through the shared memfd",
            0x8000,
            1,
            fd=4,
            expect={"data_b64": "EQ=="},
        ),
        access(
            "guest: converts to private (KVM_HC_MAP_GPA_RANGE): an exit",
            0x8000,
            private=True,
            expect={"exit": exit_fault(0x8000, True)},
        ),
        attrs("host: KVM_SET_MEMORY_ATTRIBUTES private", 0x8000, 4096, True),
        punch("host: discards the shared copy", 0x8000, 4096, fd=4, expect={"nr_pages": 0}),
        access(
            "guest: writes 0x22 private",
            0x8000,
            True,
            True,
            0x22,
            expect={"backing": "private", "fd": 3, "index": 8, "value": 0x22},
        ),
        access("guest: reads its private byte", 0x8000, private=True, expect={"value": 0x22}),
        attrs("guest asks shared again: host clears the attribute", 0x8000, 4096, False),
        punch("host: discards the private copy", 0x8000, 4096, callbacks=[gmem_inv(0, 8, 9)]),
        pwrite("host: writes 0x33 into the shared memory", 0x8000, b"\x33", fd=4),
        access(
            "guest: reads the host's byte, shared",
            0x8000,
            private=False,
            expect={"backing": "shared", "fd": 4, "value": 0x33},
        ),
    ],
}

EXITS_TEST = {
    "name": "selftest-private-mem-kvm-exits",
    "title": "Selftest: private_mem_kvm_exits_test's exits",
    "summary": "A private gfn whose memslot is gone still exits KVM_EXIT_MEMORY_FAULT with "
    "flags PRIVATE (not MMIO); a private gfn in a slot without guest_memfd exits the same.",
    "profile": "guest-memfd",
    "topics": ["selftest", "exits"],
    "steps": [
        vm("KVM_CREATE_VM(SW_PROTECTED)", expect={"vm_id": "0"}),
        vcpu("vCPU 0", expect={"vcpu_id": 0}),
        gmem("a guest_memfd (fd 3)", MiB, expect={"fd": 3}),
        region("slot 0 at gpa 1 GiB, bound", MiB, 1 << 30, gmem_fd=3, expect={"slot": 0}),
        attrs("all of it private", 1 << 30, MiB, True),
        region(
            "test_private_access_memslot_deleted: the slot deleted",
            0,
            1 << 30,
            gmem_fd=3,
            flags=[],
            expect={"deleted": True},
        ),
        access(
            "the guest touches it: private, no memslot",
            1 << 30,
            expect={"exit": exit_fault(1 << 30, True)},
            rule="no slot: a private access exits MEMORY_FAULT, a shared one MMIO",
        ),
        memfd(
            "test_private_access_memslot_not_private: plain memory (fd 4)",
            "plain",
            [],
            expect={"fd": 4},
        ),
        ftruncate("1 MiB", MiB, fd=4),
        mmap("mapped (map 1)", MiB, fd=4, expect={"addr": addr(MiB)}),
        region("slot 1: no guest_memfd", MiB, 1 << 30, 1, addr(MiB), expect={"slot": 1}),
        access(
            "a private access to a slot without guest_memfd",
            1 << 30,
            expect={"exit": exit_fault(1 << 30, True)},
            rule="a private access to a slot without KVM_MEM_GUEST_MEMFD exits "
            "KVM_EXIT_MEMORY_FAULT",
        ),
    ],
}

GMEM_TEST = {
    "name": "selftest-guest-memfd-mmap",
    "title": "Selftest: guest_memfd_test's mmap checks",
    "summary": "mmap of a guest_memfd without GUEST_MEMFD_FLAG_MMAP is ENODEV, MAP_PRIVATE is "
    "EINVAL; with MMAP and INIT_SHARED the host reads and writes it; a punch reads zeros.",
    "profile": "guest-memfd",
    "topics": ["selftest", "mmap_shared"],
    "steps": [
        vm("a default VM", DEFAULT, expect={"vm_id": "0"}),
        gmem("a guest_memfd without MMAP (fd 3)", MiB, expect={"fd": 3}),
        mmap(
            "test_mmap_not_supported: ENODEV",
            MiB,
            fd=3,
            errno="ENODEV",
            rule="a guest_memfd without GUEST_MEMFD_FLAG_MMAP cannot be mapped",
        ),
        gmem(
            "with MMAP and INIT_SHARED (fd 4)",
            MiB,
            ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"],
            expect={"fd": 4},
        ),
        mmap(
            "MAP_PRIVATE: EINVAL",
            MiB,
            fd=4,
            flags=["MAP_PRIVATE"],
            errno="EINVAL",
            rule="6.18: only MAP_SHARED",
        ),
        mmap("MAP_SHARED: ok (map 1)", MiB, fd=4, expect={"map_id": 1}),
        host(
            "test_mmap_supported: the host writes 0xaa",
            1,
            0x3000,
            True,
            0xAA,
            expect={"signal": None, "value": 0xAA},
        ),
        host("and reads it back", 1, 0x3000, expect={"value": 0xAA}),
        punch("fallocate(PUNCH_HOLE) over it", 0x3000, 4096, fd=4),
        host("the host reads zeros", 1, 0x3000, expect={"signal": None, "value": 0}),
    ],
}
