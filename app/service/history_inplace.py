"""The history screen's last column: the guest story of history_story.py under the
in-place conversion proposal ("[PATCH v8 00/46] guest_memfd: In-place conversion
support", Ackerley Tng, 18 Jun 2026; not merged; variant inplace_conversion).

The guest_memfd (GUEST_MEMFD_FLAG_MMAP | INIT_SHARED) is the only memory: the VMM maps
it, a guest_memfd-only slot binds it, and every conversion is KVM_SET_MEMORY_ATTRIBUTES2
on the guest_memfd itself. One copy of each page: nothing to discard."""

from __future__ import annotations

from typing import Any

from app.service.walks._dsl import MiB, Step, close, mmap, munmap, punch, step
from app.service.walks._kvm import PRIVATE, access, addr, gmem, host, region, vcpu, vm
from app.service.walks.kvm_close import close_vm

G = 0x5000  # the bounce buffer: gfn 5 (history_story.G)
GMEM = 3  # the guest_memfd's fd
MAP = 1  # the VMM's mapping of it


def attrs2(note: str, offset: int, size: int, private: bool, **kw: Any) -> Step:
    """KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd (an ioctl of the file, not the VM)."""
    args = {
        "fd": GMEM,
        "offset": offset,
        "size": size,
        "attributes": [PRIVATE] if private else [],
        "flags": [],
    }
    return step("set_memory_attributes2", args, note, **kw)


def pin(note: str, offset: int, length: int, **kw: Any) -> Step:
    return step("mapping_pin", {"map_id": MAP, "offset": offset, "length": length}, note, **kw)


def unpin(note: str, pin_id: int, **kw: Any) -> Step:
    return step("mapping_unpin", {"pin_id": pin_id}, note, **kw)


def story() -> dict[str, list[Step]]:
    flags = ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]
    return {
        "boot": [
            vm("KVM_CREATE_VM(SW_PROTECTED)"),
            vcpu("vCPU 0"),
            gmem("KVM_CREATE_GUEST_MEMFD, MMAP | INIT_SHARED (fd 3)", MiB, flags),
            mmap("the VMM maps the guest_memfd itself: its only memory", MiB),
            region("slot 0: guest_memfd-only", MiB, uaddr=addr(MiB), gmem_fd=GMEM),
            attrs2("KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd: all private", 0, MiB, True),
            access("the guest writes its buffer, private", G, True, True, 1),
            host("the host touches a private page: SIGBUS", MAP, G),
        ],
        "to-shared": [
            attrs2(
                "KVM_SET_MEMORY_ATTRIBUTES2: page 5 shared, in place (no discard)", G, 4096, False
            ),
        ],
        "use": [
            access("the guest writes 0x42, shared", G, True, False, 0x42),
            host("the host reads it through the same page", MAP, G),
            pin("the host pins it (O_DIRECT, vhost): pin 1", G, 4096),
        ],
        "to-private": [
            access("a private access: MEMORY_FAULT, the guest's request", G, private=True),
            attrs2("page 5 private: refused while the host pins it", G, 4096, True),
            unpin("the host drops its pin", 1),
            attrs2("page 5 private again: converted in place", G, 4096, True),
            access("the retry: the same page, private", G, private=True),
            host("the host's touch is SIGBUS again", MAP, G),
        ],
        "punch": [
            punch("punch all guest memory", 0, MiB),
            access(
                "the guest reads zeros (still private: a punch keeps attributes)", G, private=True
            ),
        ],
        "close": [
            close("close the guest_memfd: still mapped, still bound", GMEM),
            munmap("munmap: the last reference", MAP),
            access("the next access exits MEMORY_FAULT", G, private=True),
            close_vm("close the VM fd: its guest_memfd is gone, nothing holds it: destroyed"),
        ],
    }


WHY = (
    'The in-place conversion series ("[PATCH v8 00/46] guest_memfd: In-place conversion '
    'support", Ackerley Tng, 18 Jun 2026; RFC Oct 2025; not merged): "shared/private-ness '
    'is a property of memory". Where it parts from 6.18: a VM with private memory keeps one '
    "copy: KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd converts its pages in place, the "
    "host's touch of a private page is SIGBUS, shared -> private is EAGAIN with error_offset "
    "while the host pins a page, and the VM's PRIVATE attribute is gone. Why: 6.8's "
    "conversions need two backing sources and a discard; pKVM needs sharing in place (no "
    "encryption, no copying); punching holes in huge pages to discard fragments them."
)
