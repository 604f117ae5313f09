"""Walkthroughs of guest_memfd's own rules: a private punch destroys contents, closing a
bound guest_memfd, and 6.18's memory shared in place (KVM.md "guest-memfd")."""

from __future__ import annotations

from app.service.walks._dsl import MiB, close, gmem_inv, mmap, punch
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

PRIVATE_PUNCH = {
    "name": "kvm-private-punch",
    "title": "A private punch destroys contents: the guest reads zeros",
    "summary": "The guest writes a private page; the VMM punches the guest_memfd over it "
    "(kvm_gmem_invalidate zaps the range, end exclusive); the next private read gets a "
    "fresh zero page.",
    "profile": "guest-memfd",
    "topics": ["kvm", "punch"],
    "steps": [
        *sw_guest(),
        attrs("gfns 0-15 private", 0, 0x10000, True),
        access(
            "the guest writes 42 at gpa 0x2000, private",
            0x2000,
            True,
            True,
            42,
            expect={"backing": "private", "fd": 3, "index": 2, "value": 42},
        ),
        access("and reads it back", 0x2000, expect={"backing": "private", "value": 42}),
        punch(
            "the VMM punches page 2 of the guest_memfd",
            0x2000,
            4096,
            rule="punching a guest_memfd zaps the range in every memslot bound to it "
            "(kvm_gmem_invalidate_begin/end, end exclusive)",
            look="the timeline: gmem_invalidate [2, 3) to the VM; the zap",
            callbacks=[gmem_inv(0, 2, 3)],
        ),
        access(
            "the guest reads again: a new page, zeros",
            0x2000,
            expect={"backing": "private", "value": 0},
        ),
    ],
}

CLOSE_BOUND = {
    "name": "kvm-close-bound-guest-memfd",
    "title": "Closing a bound guest_memfd: memory freed, the slot stays, MEMORY_FAULT",
    "summary": "The VMM closes the guest_memfd a memslot is bound to: its pages are freed at "
    "once, the slot keeps its gpa (a new slot there is EEXIST), and the next private access "
    "exits KVM_EXIT_MEMORY_FAULT — as this machine's KVM (6.18) does.",
    "profile": "guest-memfd",
    "topics": ["kvm", "close"],
    "steps": [
        *sw_guest(),
        attrs("gfns 0-15 private", 0, 0x10000, True),
        access(
            "the guest writes a private page",
            0x3000,
            True,
            True,
            5,
            expect={"backing": "private", "fd": 3},
        ),
        close(
            "the VMM closes the guest_memfd (fd 3): its last reference",
            3,
            rule="closing a bound guest_memfd frees its memory at once (unless mapped); "
            "the memslot stays",
            look="the VM panel: slot 0 greyed, its guest_memfd closed",
            callbacks=[gmem_inv(0, 0, 512)],
        ),
        access(
            "the guest's private access: nothing serves it",
            0x3000,
            expect={"exit": exit_fault(0x3000, True)},
            rule="this machine's KVM does the same: a closed guest_memfd's slot exits "
            "KVM_EXIT_MEMORY_FAULT",
        ),
        region(
            "a new slot over the same gpa: the old one is still there",
            4096,
            slot=1,
            uaddr=addr(2 * MiB),
            errno="EEXIST",
        ),
    ],
}

INPLACE_618 = {
    "name": "kvm-618-shared-in-place",
    "title": "6.18: guest_memfd-only memory, shared in place; SIGBUS without INIT_SHARED",
    "summary": "With GUEST_MEMFD_FLAG_MMAP the slot is guest_memfd-only: guest and host see the "
    "same bytes through the guest_memfd's own mapping. Without INIT_SHARED the memory is "
    "private and a host touch is SIGBUS.",
    "profile": "guest-memfd",
    "topics": ["kvm", "mmap_shared"],
    "steps": [
        vm("a default VM (no private memory)", DEFAULT, expect={"vm_id": "0"}),
        vcpu("vCPU 0", expect={"vcpu_id": 0}),
        gmem(
            "a guest_memfd with MMAP and INIT_SHARED (fd 3)",
            MiB,
            ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"],
            expect={"fd": 3},
        ),
        mmap(
            "the VMM maps the guest_memfd itself (map 1)",
            MiB,
            fd=3,
            expect={"map_id": 1, "addr": addr(MiB)},
        ),
        region(
            "slot 0: userspace_addr is the guest_memfd's own mapping: guest_memfd-only",
            MiB,
            uaddr=addr(MiB),
            gmem_fd=3,
            expect={"gmem_only": True},
            rule="6.18: with GUEST_MEMFD_FLAG_MMAP every guest fault is served from the "
            "guest_memfd, shared in place",
        ),
        access(
            "the guest writes 5 at gpa 0x1000",
            0x1000,
            True,
            value=5,
            expect={"exit": None, "backing": "shared", "fd": 3, "index": 1},
        ),
        host(
            "the host reads the same byte through its mapping",
            1,
            0x1000,
            expect={"signal": None, "value": 5},
            look="one frame, one copy",
        ),
        host("the host writes 6", 1, 0x1000, True, 6, expect={"signal": None, "value": 6}),
        access("the guest reads 6", 0x1000, expect={"value": 6, "fd": 3}),
        gmem(
            "another guest_memfd, MMAP without INIT_SHARED (fd 4)",
            MiB,
            ["GUEST_MEMFD_FLAG_MMAP"],
            expect={"fd": 4},
        ),
        mmap("mapped (map 2): allowed", MiB, fd=4, expect={"map_id": 2}),
        host(
            "a host touch: SIGBUS, the memory is private",
            2,
            0,
            expect={"signal": "SIGBUS", "value": None},
            rule="without GUEST_MEMFD_FLAG_INIT_SHARED the memory starts private: a host "
            "touch is SIGBUS",
        ),
    ],
}
