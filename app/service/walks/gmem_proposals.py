"""Walkthroughs of guest_memfd proposals after 6.18 (sources/hugetlb_numa_dm.md; each a
proposal, not merged): 1 GiB folios ("[RFC PATCH v2 00/51] 1G page support for
guest_memfd", May 2025) with in-place conversion — split on a partial conversion, merge
back, a pin anywhere in the folio holding the conversion up — and the direct-map removal
of prepared folios ("Direct Map Removal Support for guest_memfd", v7, Sep 2025)."""

from __future__ import annotations

from typing import Any

from app.service.walks._coco import (
    SNP,
    attrs2,
    hook,
    launch_finish,
    launch_update,
    pin,
    source,
    unpin,
)
from app.service.walks._dsl import KEEP, PAGE, close, fallocate, gmem_inv, mmap, punch
from app.service.walks._kvm import PRIVATE, SW, access, addr, attrs, gmem, host, region, vcpu, vm
from app.service.walks.coco_launch import coco_guest

GiB = 1 << 30
FLAGS = ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"]
R_SPLIT = (
    "the 1 GiB RFC: a conversion of part of a 1 GiB folio splits it in place to 4 KiB pages "
    "(the guest's memory is not copied), and the pages merge back into one folio once the "
    "whole folio has one attribute again"
)

GIGA_SPLIT: dict[str, Any] = {
    "name": "gmem-1g-split-merge",
    "title": "1 GiB guest_memfd pages (proposal): a conversion splits, the way back merges",
    "summary": "With 1 GiB folios (variant hugetlb_1g, order 18) one guest touch allocates the "
    "whole folio; converting one 4 KiB page to private splits it in place, converting it "
    "back merges it again. A host pin on any page of the folio holds its one refcount up: "
    "shared -> private is EAGAIN until the unpin.",
    "profile": "guest-memfd",
    "variants": ["hugetlb_1g"],
    "phys_pages": 2 * GiB // 4096,
    "topics": ["kvm", "hugetlb_1g", "inplace_conversion"],
    "steps": [
        vm("KVM_CREATE_VM(KVM_X86_SW_PROTECTED_VM)", SW, expect={"vm_id": "0"}),
        vcpu("vCPU 0", expect={"vcpu_id": 0}),
        gmem(
            "a 1 GiB guest_memfd with MMAP and INIT_SHARED (fd 3)",
            GiB,
            FLAGS,
            expect={"fd": 3, "size": GiB},
            rule="hugetlb_1g: the guest_memfd's memory comes in 1 GiB folios, its size a "
            "multiple of 1 GiB",
        ),
        mmap("the VMM maps all of it (map 1)", GiB, fd=3, expect={"map_id": 1, "addr": addr(GiB)}),
        region(
            "slot 0: 1 GiB at gpa 0, guest_memfd-only",
            GiB,
            uaddr=addr(GiB),
            gmem_fd=3,
            expect={"gmem_only": True},
        ),
        access(
            "the guest writes 3 at gpa 0x5000",
            0x5000,
            True,
            value=3,
            expect={"exit": None, "backing": "shared", "index": 5, "pfn": 5, "value": 3},
            rule="the first touch allocates the whole folio: 262,144 frames, order 18",
            look="the page map: one run of order 18; the frame map: 1 GiB of fd 3",
        ),
        attrs2(
            "ATTRIBUTES2: page 5 private",
            0x5000,
            4096,
            True,
            expect={
                "error_offset": 0,
                "extents": [{"start": 5, "end": 6, "attributes": [PRIVATE]}],
            },
            rule=R_SPLIT,
            look="the timeline: split (touch) and gmem_invalidate [5, 6); the page map: "
            "order 0 everywhere, the same frames",
            callbacks=[gmem_inv(0, 5, 6)],
        ),
        access(
            "the guest reads gpa 0x5000, private: its 3, in place on the same frame",
            0x5000,
            private=True,
            expect={"exit": None, "backing": "private", "pfn": 5, "value": 3, "order": 0},
        ),
        host(
            "the host touches page 5",
            1,
            0x5000,
            expect={"signal": "SIGBUS", "value": None},
        ),
        attrs2(
            "ATTRIBUTES2: page 5 shared again",
            0x5000,
            4096,
            False,
            expect={"error_offset": 0, "extents": []},
            rule=R_SPLIT,
            look="the timeline: merge; the page map: one run of order 18 again",
            callbacks=[gmem_inv(0, 5, 6)],
        ),
        host("the host reads the guest's 3", 1, 0x5000, expect={"signal": None, "value": 3}),
        pin(
            "the host pins page 7 (pin_user_pages)",
            1,
            0x7000,
            1,
            expect={"pin_id": 1, "pages": 1, "pfns": [7]},
            look="the page map: the whole folio's refcount 2 (a pin counts on the folio)",
        ),
        attrs2(
            "ATTRIBUTES2: page 5 private, with page 7 pinned",
            0x5000,
            4096,
            True,
            errno="EAGAIN",
            expect={"error_offset": 0x5000},
            rule="the safety check looks at folios (kvm_gmem_is_safe_for_conversion): the 1 GiB "
            "folio holding page 5 carries the pin's reference, so the range's first page "
            "is named though page 7 is the pinned one",
            callbacks=[],
        ),
        unpin("unpin_user_pages", 1),
        attrs2(
            "the retry: split again, page 5 private",
            0x5000,
            4096,
            True,
            expect={
                "error_offset": 0,
                "extents": [{"start": 5, "end": 6, "attributes": [PRIVATE]}],
            },
            callbacks=[gmem_inv(0, 5, 6)],
        ),
    ],
}


NO_DIRECT_MAP: dict[str, Any] = {
    "name": "gmem-no-direct-map",
    "title": "No direct map (proposal): a prepared page leaves the kernel's direct map",
    "summary": 'With variant no_direct_map ("Direct Map Removal Support for guest_memfd", '
    "v7, Sep 2025, a proposal, not merged) a guest_memfd folio leaves the kernel's direct "
    "map once it is prepared for the guest (populate, a first private fault) and gets it "
    "back only when freed: a frame the kernel itself can no longer read (speculation "
    "gadgets included). A page that is only allocated keeps its direct map.",
    "profile": "guest-memfd",
    "variants": ["no_direct_map"],
    "topics": ["kvm", "no_direct_map", "coco"],
    "steps": [
        *coco_guest(SNP, "an SEV-SNP guest"),
        attrs("gfns 0-15 private", 0, 0x10000, True),
        launch_update(
            "LAUNCH_UPDATE of one page at gpa 0",
            0,
            source(b"OVMF", 1),
            expect={"pages": 1},
            rule="after the arch prepares a folio, guest_memfd removes it from the direct map "
            "(set_direct_map_valid_noflush), so the host kernel holds no mapping of it",
            look="the timeline: snp_rmp_assign then direct_map_remove [0, 1); the frame map: "
            "hover frame 0, 'out of the direct map'",
            callbacks=[hook("snp_rmp_assign", 0), hook("direct_map_remove", 0)],
        ),
        fallocate(
            "the VMM preallocates page 1 (fallocate)",
            PAGE,
            PAGE,
            KEEP,
            rule="fallocate only allocates (6.11+: nothing is prepared): the direct map stays",
            look="the frame map: frame 1 holds page 1 with its direct map",
            callbacks=[],
        ),
        launch_finish("LAUNCH_FINISH", expect={"state": "finalized"}),
        access(
            "the guest's first private access to gfn 1",
            PAGE,
            private=True,
            expect={"exit": None, "backing": "private", "pfn": 1, "value": 0},
            look="the timeline: snp_rmp_assign and direct_map_remove [1, 2)",
            callbacks=[hook("snp_rmp_assign", 1), hook("direct_map_remove", 1)],
        ),
        punch(
            "the VMM punches page 1",
            PAGE,
            PAGE,
            rule="a freed folio is reclaimed and gets its direct map back before it returns "
            "to the allocator",
            look="the timeline: snp_rmp_reclaim, direct_map_restore [1, 2); frame 1 free",
            callbacks=[
                gmem_inv(0, 1, 2),
                hook("snp_rmp_reclaim", 1),
                hook("direct_map_restore", 1),
            ],
        ),
        close(
            "the VMM closes the guest_memfd",
            callbacks=[
                gmem_inv(0, 0, 512),
                hook("snp_rmp_reclaim", 0),
                hook("direct_map_restore", 0),
            ],
        ),
    ],
}
