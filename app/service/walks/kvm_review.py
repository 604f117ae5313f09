"""Walkthroughs of the review (KVM.md "The review"): why guest_memfd left shmem, several
owners, unmovable pages; and one per kernel selftest flow (private_mem_conversions_test,
private_mem_kvm_exits_test, guest_memfd_test)."""

from __future__ import annotations

from app.service.walks._dsl import (
    KEEP,
    MiB,
    Step,
    fal,
    fallocate,
    ftruncate,
    memfd,
    migrate,
    owner,
    register,
    seal,
)
from app.service.walks._kvm import (
    DEFAULT,
    access,
    attrs,
    fd_region,
    vcpu,
    vm,
)
from app.service.walks.kvm_convert import sw_guest

GUEST = "F_SEAL_GUEST"


def rfc_vm(vm_id: int = 0, name: str = "vm0") -> list[Step]:
    return [
        vm(f"KVM_CREATE_VM: {name}", DEFAULT, name, expect={"vm_id": str(vm_id)}),
    ]


LEFT_SHMEM = {
    "name": "review-why-guest-memfd-left-shmem",
    "title": "The review: why guest_memfd left shmem (pages that neither swap nor migrate)",
    "summary": "Under the RFC the private memory is a shmem file, but its pages are pinned "
    "by the guest: compaction cannot move them, and nothing can swap them. Hugh Dickins: "
    "using shmem for such memory is a mistake, let KVM supply the fd — guest_memfd (6.8).",
    "profile": "rfc-v2",
    "topics": ["review", "migration"],
    "twin": "review-unmovable-accounting",
    "steps": [
        memfd("the shared view (fd 3)", "shared", expect={"fd": 3}),
        memfd("the private view, a shmem memfd (fd 4)", "private", expect={"fd": 4}),
        seal("F_SEAL_GUEST while empty", GUEST, fd=4, expect={"seals": [GUEST]}),
        ftruncate("1 MiB", MiB, expect={"size": MiB}),
        ftruncate("1 MiB", MiB, fd=4, expect={"size": MiB}),
        *rfc_vm(),
        fd_region("the fd-based memslot: the VM registers with both files", MiB, 3, 4),
        vcpu("vCPU 0", expect={"vcpu_id": 0}),
        fallocate(
            "private memory for gfn 0-3: fallocate private_fd",
            0,
            0x4000,
            KEEP,
            fd=4,
            expect={"nr_pages": 4},
            callbacks=[fal(0, 0, 4)],
        ),
        access(
            "the guest uses its private page 0",
            0,
            True,
            True,
            1,
            expect={"backing": "private", "fd": 4, "index": 0, "pfn": 0},
        ),
        migrate(
            "compaction tries to move it: refused",
            0,
            errno="ENOTSUPP",
            rule="the RFC makes an F_SEAL_GUEST file's pages refuse migration, like "
            "long-term pinned memory; shmem cannot swap them out either",
            look="the frame map: the frame stays put",
        ),
    ],
}

SEVERAL_OWNERS = {
    "name": "review-several-owners",
    "title": "The review: several owners (VFIO, RDMA) and the RFC's one owner",
    "summary": "Jason Gunthorpe: VFIO/IOMMU and RDMA should use the same interface, and one "
    "owner only is a limit. Under the RFC a second VM's memslot on the same private file is "
    "EPERM, and so is a VFIO owner's registration.",
    "profile": "rfc-v2",
    "topics": ["review", "multi_owner"],
    "twin": "multi-owner-fanout",
    "steps": [
        memfd("the shared view (fd 3)", "shared", expect={"fd": 3}),
        memfd("the private view (fd 4)", "private", expect={"fd": 4}),
        seal("F_SEAL_GUEST while empty", GUEST, fd=4, expect={"seals": [GUEST]}),
        ftruncate("1 MiB", MiB, expect={"size": MiB}),
        ftruncate("1 MiB", MiB, fd=4, expect={"size": MiB}),
        *rfc_vm(),
        fd_region(
            "VM 0's memslot: it registers with both files", MiB, 3, 4, expect={"private_fd": 4}
        ),
        *rfc_vm(1, "vm1"),
        fd_region(
            "VM 1 wants the same private memory: refused",
            MiB,
            3,
            4,
            vm_id=1,
            errno="EPERM",
            rule="memfd_register_guest: one owner per file; another owner's registration is EPERM",
        ),
        owner(
            "a second kind of owner, standing for a VFIO device that would DMA into the "
            "guest's memory (the simulator's recorder owner, owner 2)",
            "vfio0",
            "recorder",
            expect={"owner_id": "2", "kind": "recorder"},
        ),
        register(
            "it registers on the private file: refused, KVM owns it",
            2,
            fd=4,
            errno="EPERM",
            look="the review: the variant multi_owner lets both in",
        ),
    ],
}

UNMOVABLE = {
    "name": "review-unmovable-accounting",
    "title": "The review: unmovable pages and their accounting",
    "summary": "David Hildenbrand: the pages behave like long-term pinned memory — never "
    "movable, to be accounted like mlock. A guest_memfd's private pages are allocated as "
    "the guest faults them, and stay where they are.",
    "profile": "guest-memfd",
    "topics": ["review", "migration"],
    "twin": "review-why-guest-memfd-left-shmem",
    "steps": [
        *sw_guest(),
        attrs("gfns 0-15 private", 0, 0x10000, True),
        access(
            "the guest faults private page 0",
            0,
            True,
            True,
            1,
            expect={"backing": "private", "fd": 3, "index": 0},
        ),
        access(
            "and private page 1",
            0x1000,
            True,
            True,
            2,
            expect={"backing": "private", "fd": 3, "index": 1},
        ),
        fallocate(
            "the VMM preallocates pages 2-7 (they count now, used or not)",
            0x2000,
            0x6000,
            KEEP,
            expect={"nr_pages": 8},
        ),
        migrate(
            "compaction tries to move private page 0, which the VM maps",
            0,
            errno="EBUSY",
            rule="guest_memfd pages are unmovable (an unevictable "
            "mapping, and no hook tells the owner a page moved): never movable, to be "
            "accounted like mlock",
            look="the frame map: pfn 0 stays",
        ),
    ],
}
