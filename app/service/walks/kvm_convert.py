"""Walkthroughs of the KVM side: conversion in each design (the RFC's fallocate and
punch, 6.8's attributes and discard, and the mistake of skipping it), a private punch,
closing a bound guest_memfd, and 6.18's memory shared in place (KVM.md)."""

from __future__ import annotations

from app.service.walks._dsl import (
    KEEP,
    MiB,
    Step,
    fal,
    fallocate,
    ftruncate,
    gmem_inv,
    inv,
    memfd,
    mmap,
    pread,
    punch,
    seal,
)
from app.service.walks._kvm import (
    DEFAULT,
    access,
    addr,
    attrs,
    exit_fault,
    exit_rfc,
    fd_region,
    gmem,
    region,
    vcpu,
    vm,
)

R_RFC_PRIVATE = (
    "rfc-v2: private iff allocated in private_fd; a private access to a page not allocated "
    "there exits KVM_EXIT_MEMORY_ERROR, type KVM_EXIT_MEM_MAP_PRIVATE"
)
R_RFC_CONVERT = (
    "rfc-v2: the VMM converts with fallocate on private_fd (the owner's fallocate callback: "
    "KVM maps eagerly and zaps the shared mapping) and a punch of the shared fd"
)
R_ATTR = (
    "6.8: KVM_SET_MEMORY_ATTRIBUTES decides; an access whose private-ness differs from the "
    "attribute exits KVM_EXIT_MEMORY_FAULT (flags PRIVATE for a private access)"
)
R_DISCARD = (
    "6.8: the VMM converts by setting the attribute and discarding the other copy (punch the "
    "shared memfd going private, the guest_memfd going shared)"
)
G = 0x5000  # the bounce buffer's gpa: gfn 5


def sw_guest(size: int = 2 * MiB) -> list[Step]:
    """A SW_PROTECTED VM (VM 0, vCPU 0): its guest_memfd fd 3 bound to slot 0, and the
    VMM's shared memory, memfd fd 4 mapped (map 1) at userspace_addr."""
    return [
        vm(
            "KVM_CREATE_VM(KVM_X86_SW_PROTECTED_VM): a VM with private memory",
            expect={"vm_id": "0"},
        ),
        vcpu("KVM_CREATE_VCPU: vCPU 0", expect={"vcpu_id": 0}),
        gmem(
            "KVM_CREATE_GUEST_MEMFD: the private memory, one VM's file (fd 3)",
            size,
            expect={"fd": 3, "kind": "guest_memfd", "size": size, "vm_id": "0"},
        ),
        memfd("the VMM's shared memory: a memfd (fd 4)", "shared", [], expect={"fd": 4}),
        ftruncate("sized like the guest", size, fd=4, expect={"size": size}),
        mmap(
            "the VMM maps it (map 1): the slot's userspace_addr",
            size,
            fd=4,
            expect={"map_id": 1, "addr": addr(size)},
        ),
        region(
            "KVM_SET_USER_MEMORY_REGION2: slot 0, gpa 0, the guest_memfd and userspace_addr",
            size,
            uaddr=addr(size),
            gmem_fd=3,
            expect={"slot": 0, "guest_memfd": 3, "gmem_only": False},
        ),
    ]


RFC_CONVERSION = {
    "name": "kvm-rfc-conversion",
    "title": "RFC v2's conversion: MAP_PRIVATE, fallocate private_fd, punch the shared fd",
    "summary": "A private access exits MAP_PRIVATE; the VMM fallocates private_fd (the callback "
    "maps eagerly, the shared mapping is zapped) and punches the shared fd; the retry is "
    "private. And back: MAP_SHARED, punch private_fd, the guest re-reads zeros.",
    "profile": "rfc-v2",
    "topics": ["conversion", "kvm"],
    "twin": "kvm-68-conversion",
    "steps": [
        memfd("the shared view: a memfd (fd 3)", "shared", expect={"fd": 3}),
        memfd("the private view: a memfd (fd 4)", "private", expect={"fd": 4}),
        seal(
            "F_SEAL_GUEST on the private view while it is empty",
            "F_SEAL_GUEST",
            fd=4,
            expect={"seals": ["F_SEAL_GUEST"]},
        ),
        ftruncate("1 MiB of shared view", MiB, expect={"size": MiB}),
        ftruncate("1 MiB of private view", MiB, fd=4, expect={"size": MiB}),
        vm("KVM_CREATE_VM: the RFC's VM (the default type)", DEFAULT, expect={"vm_id": "0"}),
        fd_region(
            "an fd-based memslot: fd 3 shared, fd 4 private; KVM registers with both",
            MiB,
            3,
            4,
            expect={"fd": 3, "private_fd": 4},
            rule="patch 06: KVM_MEM_FD takes {fd, private_fd}; userspace_addr is the "
            "offset into both files",
            look="the VM panel: slot 0 over gfns 0-255",
        ),
        vcpu("KVM_CREATE_VCPU: vCPU 0", expect={"vcpu_id": 0}),
        access(
            "the guest writes its bounce buffer (gpa 0x5000) as shared memory",
            G,
            True,
            False,
            7,
            expect={"exit": None, "backing": "shared", "fd": 3, "index": 5},
            look="Served from: gfn 5 is a page of the shared fd",
        ),
        access(
            "it wants the page private: a private access",
            G,
            private=True,
            expect={"exit": exit_rfc(G, True)},
            rule=R_RFC_PRIVATE,
            look="the exit is the guest's request: MAP_PRIVATE at gpa 0x5000",
        ),
        fallocate(
            "the VMM answers: fallocate private_fd page 5",
            G,
            4096,
            KEEP,
            fd=4,
            rule=R_RFC_CONVERT,
            look="timeline: the fallocate callback to the VM; the frame map: a private page",
            callbacks=[fal(0, 5, 6)],
        ),
        punch(
            "and punches the shared fd's page 5: the shared copy is gone (KVM, registered "
            "with both files, zaps it)",
            G,
            4096,
            fd=3,
            expect={"nr_pages": 0},
            callbacks=[inv(0, 5, 5)],
        ),
        access(
            "the retry: the private access is served from private_fd",
            G,
            private=True,
            expect={"exit": None, "backing": "private", "fd": 4, "index": 5, "value": 0},
            look="a fresh private page: the guest's byte 7 was in the shared copy",
        ),
        access(
            "back to shared: a shared access to a private page",
            G,
            private=False,
            expect={"exit": exit_rfc(G, False)},
            rule="rfc-v2: a shared access to a page that exists in private_fd exits "
            "KVM_EXIT_MEM_MAP_SHARED",
        ),
        punch(
            "the VMM punches private_fd: invalidate_page_range zaps the private mapping",
            G,
            4096,
            fd=4,
            expect={"nr_pages": 0},
            callbacks=[inv(0, 5, 5)],
        ),
        access(
            "the retry reads the shared view: zeros, private contents are gone",
            G,
            private=False,
            expect={"exit": None, "backing": "shared", "value": 0},
        ),
    ],
}

CONVERSION_68 = {
    "name": "kvm-68-conversion",
    "title": "6.8's conversion: MEMORY_FAULT, the attribute, the discard",
    "summary": "A private access to a shared gfn exits KVM_EXIT_MEMORY_FAULT; the VMM sets "
    "KVM_MEMORY_ATTRIBUTE_PRIVATE (the range is zapped) and punches the shared memfd; the "
    "retry is served from the guest_memfd, one copy resident.",
    "profile": "guest-memfd",
    "topics": ["conversion", "kvm"],
    "twin": "kvm-rfc-conversion",
    "steps": [
        *sw_guest(),
        access(
            "the guest writes its bounce buffer, shared (through userspace_addr)",
            G,
            True,
            False,
            9,
            expect={"exit": None, "backing": "shared", "fd": 4, "index": 5, "value": 9},
        ),
        access(
            "it converts: a private access while the attribute says shared",
            G,
            private=True,
            expect={"exit": exit_fault(G, True)},
            rule=R_ATTR,
            look="the guest's request: MEMORY_FAULT, flags PRIVATE, gpa 0x5000",
        ),
        attrs(
            "the VMM: KVM_SET_MEMORY_ATTRIBUTES(0x5000, 4 KiB, PRIVATE)",
            G,
            4096,
            True,
            expect={
                "extents": [{"start": 5, "end": 6, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]}]
            },
            rule=R_DISCARD,
        ),
        punch(
            "and discards the shared copy: punch the memfd's page 5",
            G,
            4096,
            fd=4,
            expect={"nr_pages": 0},
            look="the frame map: the shared page's frame is free",
        ),
        access(
            "the retry: served from the guest_memfd, a fresh private page",
            G,
            private=True,
            expect={"exit": None, "backing": "private", "fd": 3, "index": 5, "value": 0},
        ),
        attrs(
            "back to shared: the attribute cleared",
            G,
            4096,
            False,
            expect={"extents": [{"start": 5, "end": 6, "attributes": []}]},
        ),
        punch(
            "and the private copy discarded: punch the guest_memfd (gmem_invalidate)",
            G,
            4096,
            expect={"nr_pages": 0},
            callbacks=[gmem_inv(0, 5, 6)],
        ),
        access(
            "the guest reads its buffer shared: the VMM's page, zero-filled again",
            G,
            private=False,
            expect={"exit": None, "backing": "shared", "fd": 4, "value": 0},
        ),
    ],
}

DOUBLE_MEMORY = {
    "name": "kvm-double-memory",
    "title": 'The "double memory" mistake: a VMM that skips the discard',
    "summary": "The VMM sets the attribute private but does not punch the shared memfd: the "
    "guest is served from the guest_memfd while the old shared page stays resident, both "
    "copies in the frame map, until the VMM discards it.",
    "profile": "guest-memfd",
    "topics": ["conversion", "kvm", "hazards"],
    "steps": [
        *sw_guest(),
        access(
            "the guest fills its buffer shared",
            G,
            True,
            False,
            9,
            expect={"exit": None, "backing": "shared", "fd": 4},
        ),
        attrs(
            "converted private: the attribute set, and nothing else", G, 4096, True, rule=R_DISCARD
        ),
        access(
            "the guest writes it private: a private page in the guest_memfd",
            G,
            True,
            True,
            1,
            expect={"exit": None, "backing": "private", "fd": 3, "index": 5},
            look="the frame map: two frames for gfn 5, fd 3's and fd 4's",
        ),
        pread(
            "the shared copy is still there, with the guest's old byte",
            G,
            1,
            fd=4,
            expect={"nbytes": 1, "data_b64": "CQ=="},
            rule='skipping the discard is the "double memory" bug VMMs hit: both copies resident',
        ),
        punch("the fix: discard the shared copy", G, 4096, fd=4, expect={"nr_pages": 0}),
    ],
}
