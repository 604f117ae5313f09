"""Walkthroughs of guest_memfd memory after 6.18: a poisoned page (sources/misc.md
"Memory failure"), and the in-place conversion proposal's KVM_SET_MEMORY_ATTRIBUTES2
refused while the host holds a pin (sources/inplace.md; a proposal, not merged)."""

from __future__ import annotations

from typing import Any

from app.service.walks._coco import attrs2, memory_failure, pin, unpin
from app.service.walks._dsl import MiB, Step, close, gmem_inv, mmap, munmap, punch
from app.service.walks._kvm import (
    DEFAULT,
    PRIVATE,
    SW,
    access,
    addr,
    gmem,
    host,
    region,
    vcpu,
    vm,
)

SHARED_FLAGS = ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]


def mmapped_guest(type: str, label: str) -> list[Step]:
    """VM 0 (vCPU 0) whose slot 0 is guest_memfd-only: a 1 MiB guest_memfd (fd 3) with
    MMAP and INIT_SHARED, mapped by the VMM (map 1) at the slot's userspace_addr."""
    return [
        vm(f"KVM_CREATE_VM({type}): {label}", type, expect={"vm_id": "0"}),
        vcpu("vCPU 0", expect={"vcpu_id": 0}),
        gmem(
            "a guest_memfd with MMAP and INIT_SHARED (fd 3)",
            MiB,
            SHARED_FLAGS,
            expect={"fd": 3, "flags": SHARED_FLAGS},
        ),
        mmap(
            "the VMM maps the guest_memfd itself (map 1)",
            MiB,
            fd=3,
            expect={"map_id": 1, "addr": addr(MiB)},
        ),
        region(
            "slot 0 at gpa 0: userspace_addr is that mapping, guest_memfd-only",
            MiB,
            uaddr=addr(MiB),
            gmem_fd=3,
            expect={"gmem_only": True},
        ),
    ]


POISON: dict[str, Any] = {
    "name": "coco-poison",
    "title": "Poison: a failed guest_memfd page answers EHWPOISON, SIGBUS, and stays failed",
    "summary": "memory_failure() of a frame the guest maps: guest_memfd zaps it in every VM "
    "but keeps it (MF_DELAYED); the guest's next access exits with EHWPOISON, a host "
    "touch is SIGBUS, a pin EHWPOISON; the VMM punches the page, the guest gets a fresh one, "
    "and the failed frame stays off the free lists for good, after the close too.",
    "profile": "guest-memfd",
    "topics": ["kvm", "poison"],
    "steps": [
        *mmapped_guest(DEFAULT, "guest memory shared in place (6.18)"),
        access(
            "the guest writes 9 at gpa 0x2000",
            0x2000,
            True,
            value=9,
            expect={"exit": None, "backing": "shared", "fd": 3, "index": 2, "pfn": 0},
        ),
        host("the host reads it through map 1", 1, 0x2000, expect={"signal": None, "value": 9}),
        memory_failure(
            "an uncorrectable memory error in pfn 0: memory_failure()",
            0,
            expect={"fd": 3, "index": 2},
            rule="kvm_gmem_error_folio: zap every binding (invalidate begin/end) but do not "
            'truncate — "what action is taken ... is userspace\'s decision" (MF_DELAYED)',
            look="the timeline: gmem_invalidate [2, 3), vm0 zaps gfn 2; the frame map: pfn 0 "
            "still fd 3's page 2 (the page map's runs: Life hwpoison)",
            callbacks=[gmem_inv(0, 2, 3)],
        ),
        access(
            "the guest reads gpa 0x2000 again",
            0x2000,
            expect={
                "exit": {
                    "reason": "KVM_EXIT_MEMORY_FAULT",
                    "gpa": 0x2000,
                    "size": 4096,
                    "flags": [],
                    "errno": "EHWPOISON",
                    "type": None,
                },
                "value": None,
            },
            rule="kvm_gmem_get_pfn answers -EHWPOISON: KVM_RUN returns -1 / EHWPOISON with a "
            "KVM_EXIT_MEMORY_FAULT exit (Sean Christopherson: errno, not an exit flag)",
            look="the result: the exit with errno EHWPOISON; the VM panel: gfn 2 not mapped",
        ),
        host(
            "the host touches it through its mapping",
            1,
            0x2000,
            expect={"signal": "SIGBUS", "value": None},
            rule="a hwpoisoned page faults VM_FAULT_HWPOISON: SIGBUS",
        ),
        pin(
            "O_DIRECT / vhost would pin it: pin_user_pages()",
            1,
            0x2000,
            1,
            errno="EHWPOISON",
            rule="GUP of a hwpoisoned page fails (EHWPOISON): nothing is pinned",
        ),
        memory_failure("a second error report for pfn 0", 0, errno="EHWPOISON"),
        punch(
            "the VMM decides: it punches page 2",
            0x2000,
            4096,
            rule="the punch drops the page from the file; a hwpoisoned frame never goes back "
            "to the allocator (take_page_off_buddy)",
            look="the frame map: pfn 0 hwpoison (touch hwpoison_kept in the timeline)",
            callbacks=[gmem_inv(0, 2, 3)],
        ),
        access(
            "the guest reads gpa 0x2000: a fresh zero page on another frame",
            0x2000,
            expect={"exit": None, "backing": "shared", "index": 2, "pfn": 1, "value": 0},
        ),
        host("the host reads the same zero", 1, 0x2000, expect={"signal": None, "value": 0}),
        munmap("the VMM unmaps map 1", 1),
        close(
            "and closes the guest_memfd: every page freed",
            callbacks=[gmem_inv(0, 0, 256)],
            look="the frame map: pfn 1 free again, pfn 0 still hwpoison",
        ),
        memory_failure(
            "pfn 0 after the close",
            0,
            errno="EHWPOISON",
            rule="the failed frame stays off the free lists for good",
        ),
    ],
}

R_PIN = (
    'the proposal\'s "Ensure pages are not in use before conversion": shared -> private '
    "fails with EAGAIN while a folio holds a reference beyond guest_memfd's own, "
    "error_offset naming the first such page; userspace drops it and retries"
)

INPLACE_PIN: dict[str, Any] = {
    "name": "coco-inplace-pin",
    "title": "In-place conversion (proposal): ATTRIBUTES2, and EAGAIN while the host pins a page",
    "summary": "The in-place conversion series (v8, June 2026, not merged) converts guest_memfd "
    "memory where it is: KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd makes a range private "
    "(the host mapping SIGBUS, the guest sees the same bytes) and shared again. A host pin "
    "(O_DIRECT, vhost, VFIO) blocks shared -> private: EAGAIN, error_offset at the pinned "
    "page; unpin and the retry succeeds.",
    "profile": "guest-memfd",
    "variants": ["inplace_conversion"],
    "topics": ["kvm", "inplace_conversion", "pins"],
    "steps": [
        *mmapped_guest(SW, "a VM with private memory"),
        host(
            "the host writes 0x42 at offset 0x2000 of map 1",
            1,
            0x2000,
            True,
            0x42,
            expect={"signal": None, "value": 0x42},
        ),
        access(
            "the guest reads gpa 0x2000: the same page, shared in place",
            0x2000,
            expect={"exit": None, "backing": "shared", "fd": 3, "index": 2, "value": 0x42},
        ),
        attrs2(
            "KVM_SET_MEMORY_ATTRIBUTES2 on fd 3: pages 0-3 private",
            0,
            0x4000,
            True,
            expect={
                "error_offset": 0,
                "extents": [{"start": 0, "end": 4, "attributes": [PRIVATE]}],
            },
            rule="a guest_memfd ioctl: shared or private is a property of the memory; the range "
            "is zapped in every binding and in the host's page tables",
            look="the timeline: gmem_invalidate [0, 4), vm0 zaps gfn 2; the VM panel: gfns 0-3 "
            "private",
            callbacks=[gmem_inv(0, 0, 4)],
        ),
        host(
            "the host touches offset 0x2000",
            1,
            0x2000,
            expect={"signal": "SIGBUS", "value": None},
            rule='"accesses to guest-private pages ... will result in a SIGBUS"',
        ),
        access(
            "the guest reads gpa 0x2000 private: the same bytes, converted in place",
            0x2000,
            private=True,
            expect={"exit": None, "backing": "private", "index": 2, "value": 0x42},
            rule="no second copy: the guest_memfd page itself is private now (content mode "
            "unspecified keeps the bytes here)",
        ),
        access("the guest writes 0x77 there", 0x2000, True, True, 0x77, expect={"value": 0x77}),
        attrs2(
            "back to shared: ATTRIBUTES2 with no attributes",
            0,
            0x4000,
            False,
            expect={"error_offset": 0, "extents": []},
            rule="private -> shared takes no reference check (the guest is the only user of "
            "private pages)",
            callbacks=[gmem_inv(0, 0, 4)],
        ),
        host("the host reads the guest's 0x77", 1, 0x2000, expect={"signal": None, "value": 0x77}),
        pin(
            "the host pins offset 0x3000 (pin_user_pages, as O_DIRECT would)",
            1,
            0x3000,
            1,
            expect={"pin_id": 1, "offset": 0x3000, "pages": 1, "pfns": [1]},
            look="the page map's runs: page 3 refcount 2 (the file's + the pin's)",
        ),
        attrs2(
            "shared -> private again, pages 0-3",
            0,
            0x4000,
            True,
            errno="EAGAIN",
            expect={"error_offset": 0x3000},
            rule=R_PIN,
            look="the error: error_offset 0x3000, page 3, the pinned one; nothing converted",
            callbacks=[],
        ),
        unpin("the host drops its pin (unpin_user_pages)", 1),
        attrs2(
            "the retry",
            0,
            0x4000,
            True,
            expect={
                "error_offset": 0,
                "extents": [{"start": 0, "end": 4, "attributes": [PRIVATE]}],
            },
            callbacks=[gmem_inv(0, 0, 4)],
        ),
        host(
            "the host touches offset 0x3000: private now",
            1,
            0x3000,
            expect={"signal": "SIGBUS", "value": None},
        ),
    ],
}
