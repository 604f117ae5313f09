"""One guest's story (boot, convert a bounce buffer to shared, use it, convert it back,
punch, close) as each design makes it: the ops per chapter, per design, and the review
argument behind each change of design (KVM.md "The review")."""

from __future__ import annotations

from typing import Any

from app.service import history_inplace as inplace
from app.service.walks._dsl import (
    KEEP,
    MiB,
    Step,
    close,
    fallocate,
    ftruncate,
    memfd,
    mmap,
    munmap,
    owner,
    pread,
    punch,
    register,
    seal,
)
from app.service.walks._kvm import (
    DEFAULT,
    access,
    addr,
    attrs,
    fd_region,
    gmem,
    host,
    region,
    vcpu,
    vm,
)
from app.service.walks.kvm_close import close_vm

G = 0x5000  # the bounce buffer: gfn 5
CHAPTERS = [
    ("boot", "Boot: the guest's memory, private"),
    ("to-shared", "Convert the bounce buffer to shared"),
    ("use", "Use it: the guest writes, the host reads"),
    ("to-private", "Convert it back to private"),
    ("punch", "Punch the guest's memory"),
    ("close", "Close"),
]


def _rfc() -> dict[str, list[Step]]:
    return {
        "boot": [
            memfd("the shared view (fd 3)", "shared"),
            memfd("the private view (fd 4)", "private"),
            seal("F_SEAL_GUEST on the private view", "F_SEAL_GUEST", fd=4),
            ftruncate("1 MiB shared", MiB),
            ftruncate("1 MiB private", MiB, fd=4),
            vm("KVM_CREATE_VM", DEFAULT),
            fd_region("the fd-based memslot (fd 3, private_fd 4)", MiB, 3, 4),
            vcpu("vCPU 0"),
            owner("a second consumer (VFIO, say): owner 1", "vfio0", "recorder"),
            register("it registers on the private file", 1, fd=4),
            fallocate("all guest memory private", 0, MiB, KEEP, fd=4),
            access("the guest writes its buffer, private", G, True, True, 1),
        ],
        "to-shared": [
            access("the guest touches it shared: MAP_SHARED", G, private=False),
            punch("the VMM punches private_fd", G, 4096, fd=4),
        ],
        "use": [
            access("the guest writes 0x42, shared", G, True, False, 0x42),
            pread("the host reads the shared fd", G, 1),
            mmap("the host maps the private file", MiB, fd=4),
        ],
        "to-private": [
            access("a private access: MAP_PRIVATE", G, private=True),
            fallocate("fallocate private_fd", G, 4096, KEEP, fd=4),
            punch("punch the shared fd", G, 4096),
            access("the retry", G, private=True),
        ],
        "punch": [
            punch("punch all private memory", 0, MiB, fd=4),
            access("the guest reads: MAP_PRIVATE (a hole)", G, private=True),
        ],
        "close": [
            close_vm("close the VM fd: nothing holds an RFC VM, destroyed at once"),
            vm("a new VM for the same files", DEFAULT, name="vm1"),
            fd_region("it asks for both files: the dead VM is their owner", MiB, 3, 4, vm_id=2),
            close("close the private view", 4),
            close("close the shared view", 3),
        ],
    }


def _gmem68() -> dict[str, list[Step]]:
    return {
        "boot": [
            vm("KVM_CREATE_VM(SW_PROTECTED)"),
            vcpu("vCPU 0"),
            gmem("KVM_CREATE_GUEST_MEMFD (fd 3)", MiB),
            memfd("the VMM's shared memory (fd 4)", "shared", []),
            ftruncate("1 MiB", MiB, fd=4),
            mmap("mapped at userspace_addr", MiB, fd=4),
            region("slot 0: guest_memfd + userspace_addr", MiB, uaddr=addr(MiB), gmem_fd=3),
            attrs("all guest memory private", 0, MiB, True),
            access("the guest writes its buffer, private", G, True, True, 1),
        ],
        "to-shared": [
            attrs("KVM_SET_MEMORY_ATTRIBUTES: gfn 5 shared", G, 4096, False),
            punch("discard the private copy (punch the guest_memfd)", G, 4096),
        ],
        "use": [
            access("the guest writes 0x42, shared", G, True, False, 0x42),
            pread("the host reads its memfd", G, 1, fd=4),
        ],
        "to-private": [
            attrs("gfn 5 private", G, 4096, True),
            punch("discard the shared copy (punch the memfd)", G, 4096, fd=4),
            access("the guest's private access", G, private=True),
        ],
        "punch": [
            punch("punch all guest memory", 0, MiB),
            access("the guest reads zeros", G, private=True),
        ],
        "close": [
            close("close the guest_memfd", 3),
            access("the next access exits MEMORY_FAULT", G, private=True),
            close_vm("close the VM fd: its guest_memfd is gone, nothing holds it: destroyed"),
        ],
    }


def _gmem618() -> dict[str, list[Step]]:
    flags = ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]
    return {
        "boot": [
            vm("KVM_CREATE_VM (default: no private memory)", DEFAULT),
            vcpu("vCPU 0"),
            gmem("KVM_CREATE_GUEST_MEMFD, MMAP | INIT_SHARED (fd 3)", MiB, flags),
            mmap("the VMM maps the guest_memfd itself", MiB),
            region("slot 0: guest_memfd-only", MiB, uaddr=addr(MiB), gmem_fd=3),
            access("the guest writes its buffer", G, True, value=1),
        ],
        "to-shared": [],  # shared in place: nothing to convert
        "use": [
            access("the guest writes 0x42", G, True, value=0x42),
            host("the host reads it through the same page", 1, G),
        ],
        "to-private": [],
        "punch": [
            punch("punch all guest memory", 0, MiB),
            host("the host reads zeros", 1, G),
        ],
        "close": [
            close("close the guest_memfd: still mapped, still bound", 3),
            munmap("munmap: the last reference", 1),
            access("the next access exits MEMORY_FAULT", G),
            close_vm("close the VM fd: its guest_memfd is gone, nothing holds it: destroyed"),
        ],
    }


# (key, title, profile, variants, year, story); the in-place proposal's story lives in
# history_inplace.py
DESIGNS: list[dict[str, Any]] = [
    {"key": "rfc-v2", "title": "RFC v2 as posted", "when": "Nov 2021", "profile": "rfc-v2",
     "variants": [], "story": _rfc},
    {"key": "rfc-v2-review", "title": "RFC v2 + the review's alternatives",
     "when": "review, Nov 2021", "profile": "rfc-v2", "variants": ["multi_owner", "mmap_shared"],
     "story": _rfc},
    {"key": "gmem-6.8", "title": "guest_memfd 6.8: attributes", "when": "Jan 2024",
     "profile": "guest-memfd", "variants": [], "story": _gmem68},
    {"key": "gmem-6.18", "title": "6.18: in-place mmap", "when": "2025",
     "profile": "guest-memfd", "variants": [], "story": _gmem618},
    {"key": "in-place", "title": "In-place conversion (proposal)", "when": "v8, June 2026",
     "profile": "guest-memfd", "variants": ["inplace_conversion"], "story": inplace.story},
]  # fmt: skip

# the argument that moved the design from the column before to this one
WHY = {
    "rfc-v2-review": "Jason Gunthorpe: VFIO/IOMMU and RDMA should use the same interface; one "
    "owner only is a limit (variant multi_owner). Sean Christopherson: at most one guest per "
    "fd, any number of devices. Where memory need not be hidden, let the host map it "
    "(variant mmap_shared).",
    "gmem-6.8": "Hugh Dickins on v7 (Aug 2022): using shmem for memory that can neither swap "
    "nor migrate is a mistake, let KVM supply the fd. v7 moved private/shared into KVM "
    "(KVM_EXIT_MEMORY_FAULT), v10 made it KVM_SET_MEMORY_ATTRIBUTES; the PUCK call of 31 May "
    "2023 chose a KVM ioctl, KVM_CREATE_GUEST_MEMFD (6.8).",
    "gmem-6.18": "David Hildenbrand: QEMU must normally access guest memory. With "
    "GUEST_MEMFD_FLAG_MMAP the guest_memfd itself is mapped: one copy, shared in place, no "
    "conversion for a VM without private memory.",
    "in-place": inplace.WHY,
}
