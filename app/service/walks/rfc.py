"""Walkthroughs of the RFC as posted: the lifecycle, its refusals, huge pages, the lock."""

from __future__ import annotations

from typing import Any

from app.service.walks._dsl import (
    MiB,
    fal,
    fallocate,
    fault,
    ftruncate,
    get_lock,
    inv,
    memfd,
    memslot,
    mmap,
    munmap,
    owner,
    punch,
    put_unlock,
    register,
    seal,
)

GUEST = "F_SEAL_GUEST"
R_EMPTY = "F_ADD_SEALS: F_SEAL_GUEST can only be set on an empty memfd (i_size 0, no mapping)"
R_PER_PAGE = (
    "removing pages: invalidate_page_range runs once per present page, "
    "start = max(range start, index), end = min(range end, index + pages) - 1 (inclusive)"
)
R_FALLOC = "fallocate: after a successful allocation the owner's fallocate(start, end) runs once"
R_FAULT = "the owner maps a gfn with get_lock_pfn(index, alloc=true), then put_unlock_pfn"


def sealed_file(size: int, kind: str = "kvm", name: str = "kvm0") -> list[dict[str, Any]]:
    """fd 3: an empty memfd, F_SEAL_GUEST, a size, owner 0 registered."""
    return [
        memfd("an empty memfd (fd 3)", expect={"fd": 3, "size": 0}),
        seal("F_SEAL_GUEST while it is still empty", GUEST, expect={"seals": [GUEST]}),
        ftruncate(f"give it {size // 4096} pages of size", size, expect={"size": size}),
        owner(f"a simulated {kind} owner", name, kind, expect={"owner_id": "0"}),
        register("memfd_register_guest: owner 0 takes the file", 0, expect={"owners": ["0"]}),
    ]


LIFECYCLE = {
    "name": "rfc-lifecycle",
    "title": "The RFC's lifecycle: seal, size, allocate, fault, punch",
    "summary": "An empty memfd takes F_SEAL_GUEST, KVM registers, the guest faults pages in, "
    "and a punch calls invalidate_page_range once per page until the mappings are gone.",
    "profile": "rfc-v2",
    "topics": ["lifecycle", "callbacks"],
    "twin": "guest-memfd-lifecycle",
    "steps": [
        memfd(
            "memfd_create: an empty memfd, sealable",
            expect={"fd": 3, "size": 0, "nr_pages": 0},
            rule="MFD_ALLOW_SEALING leaves the seals open (without it F_SEAL_SEAL is set)",
            look="Files: vm0 (fd 3), 0 bytes",
            twin="today: KVM_CREATE_GUEST_MEMFD(size) makes the file, sized, in one call",
        ),
        seal(
            "F_SEAL_GUEST while the file is empty: accepted",
            GUEST,
            expect={"seals": [GUEST], "value": 32},
            rule=R_EMPTY,
            look="the seal badge F_SEAL_GUEST on vm0",
            twin="today: no seal; the file's kind (guest_memfd) is the promise",
        ),
        ftruncate(
            "ftruncate to 64 KiB: 16 pages of size, no page allocated yet",
            65536,
            expect={"size": 65536, "nr_pages": 0},
            rule="with F_SEAL_GUEST the size must be a multiple of 4096 (else EINVAL)",
            look="the page map: 16 holes; the frame map: nothing in use",
        ),
        owner("a simulated KVM: owner 0", expect={"owner_id": "0", "kind": "kvm"}),
        register(
            "memfd_register_guest: KVM gives its guest_ops and gets get_lock_pfn/put_unlock_pfn",
            0,
            expect={"owners": ["0"]},
            rule="one owner per file: another owner is EPERM, the same one again replaces its ops",
            look="Files: vm0 now lists kvm0 (owner 0)",
        ),
        fallocate(
            "fallocate pages 0-7: the owner's fallocate callback runs once, end exclusive",
            0,
            32768,
            expect={"nr_pages": 8},
            callbacks=[fal(0, 0, 8)],
            rule=R_FALLOC + ", with an exclusive end: [0, 8)",
            look="the timeline's arrow fallocate [0, 8) — exclusive; frames 0-7 in use",
        ),
        memslot(
            "a memslot: guest frames 256-271 are file pages 0-15",
            256,
            16,
            expect={"slot": 0, "gfn": 256, "npages": 16},
            look="Owners: kvm0's memslot 0",
        ),
        fault(
            "the guest touches gfn 258 (file page 2, present): KVM maps it",
            258,
            expect={"pfn": 2, "order": 0},
            callbacks=[],
            rule=R_FAULT,
            look="Owners: gfn 258 → pfn 2; page 2 is drawn as mapped",
        ),
        fault(
            "the guest touches gfn 268 (page 12, a hole): get_lock_pfn allocates it",
            268,
            expect={"pfn": 8, "order": 0},
            callbacks=[],
            rule="get_lock_pfn on a hole with alloc: the page is allocated, and no fallocate "
            "callback runs (this is not fallocate)",
            look="page 12 turns present (pfn 8) without an arrow in the timeline",
        ),
        punch(
            "punch pages 2-5: four callbacks, one per page, each end inclusive",
            8192,
            16384,
            expect={"nr_pages": 5, "pending": False},
            callbacks=[inv(0, 2, 2), inv(0, 3, 3), inv(0, 4, 4), inv(0, 5, 5)],
            rule=R_PER_PAGE,
            look="the arrows [2, 2] … [5, 5] — inclusive; KVM zaps gfn 258; frames 2-5 are free",
        ),
        punch(
            "punch the whole file: one callback per page still present, holes cause none",
            0,
            65536,
            expect={"nr_pages": 0},
            callbacks=[inv(0, 0, 0), inv(0, 1, 1), inv(0, 6, 6), inv(0, 7, 7), inv(0, 12, 12)],
            rule=R_PER_PAGE,
            look="Owners: kvm0 maps nothing any more (gfn 268 zapped); every frame is free",
        ),
    ],
}

SEAL_REFUSED = {
    "name": "guest-seal-refused",
    "title": "F_SEAL_GUEST refused: a file with a size, a mapped file",
    "summary": "The seal only goes on an empty memfd that nobody maps: EBUSY otherwise.",
    "profile": "rfc-v2",
    "topics": ["seal"],
    "steps": [
        memfd("a memfd", expect={"fd": 3}),
        ftruncate("two pages long", 8192, expect={"size": 8192}),
        seal(
            "refused: the file has a size",
            GUEST,
            errno="EBUSY",
            rule=R_EMPTY,
            look="Refused: EBUSY (16), with the rule; the timeline keeps the failed op",
        ),
        ftruncate("back to empty", 0, expect={"size": 0}),
        mmap(
            "map it (an empty file can be mapped): map 1",
            4096,
            prot=["PROT_READ"],
            expect={"map_id": 1},
            look="Files: vm0 has 1 mapping",
        ),
        seal(
            "refused again: the file is mapped",
            GUEST,
            errno="EBUSY",
            rule="F_ADD_SEALS: adding F_SEAL_GUEST while any mapping exists is EBUSY",
        ),
        munmap("munmap: no mapping left", 1),
        seal(
            "empty and unmapped: accepted",
            GUEST,
            expect={"seals": [GUEST]},
            look="the seal badge F_SEAL_GUEST",
        ),
        mmap(
            "and from now on mmap is refused",
            4096,
            prot=["PROT_READ"],
            errno="EPERM",
            rule="mmap of a file with F_SEAL_GUEST is EPERM",
        ),
    ],
}

HUGE = {
    "name": "huge-pages-split",
    "title": "Huge pages: order 9, then a partial punch splits them",
    "summary": "With thp=within_size an aligned 2 MiB fallocate takes one order-9 page; "
    "get_lock_pfn answers order 9; a punch across two huge pages splits both and the "
    "callbacks are clamped to the punched range.",
    "profile": "rfc-v2",
    "thp": "within_size",
    "topics": ["huge pages", "callbacks"],
    "steps": [
        *sealed_file(4 * MiB),
        fallocate(
            "allocate 4 MiB: two order-9 pages (2 MiB each), one fallocate callback",
            0,
            4 * MiB,
            expect={"nr_pages": 1024},
            callbacks=[fal(0, 0, 1024)],
            rule="thp within_size: an allocation at a 2 MiB-aligned index that fits inside "
            "i_size uses one order-9 page",
            look="the page map: two 512-page blocks of order 9; the frame map likewise",
        ),
        get_lock(
            "get_lock_pfn(5): pfn 5, and the order of the page it sits in: 9",
            5,
            expect={"pfn": 5, "order": 9, "pending": False},
            rule="get_lock_pfn answers the pfn of the 4 KiB page and the order of its page",
            look="page 5 is locked; its huge page's refcount went up",
        ),
        put_unlock("put_unlock_pfn(5): unlocked, dirty, the reference dropped", 5),
        memslot("gfns 1024-2047 are file pages 0-1023 (2 MiB aligned)", 1024, 1024),
        fault(
            "a guest fault at gfn 1027: KVM installs one huge mapping",
            1027,
            expect={"pfn": 3, "order": 9},
            rule=R_FAULT + "; a huge mapping where order and alignment allow",
            look="Owners: gfn 1024-1535 → pfn 0-511, order 9",
        ),
        punch(
            "punch pages 256-767 (1 MiB in, 2 MiB long): both huge pages are split",
            1 * MiB,
            2 * MiB,
            expect={"nr_pages": 512},
            callbacks=[inv(0, 256, 511), inv(0, 512, 767)],
            rule="a huge page only partly inside the range is split first; its callback is "
            "clamped: [max(start, index), min(end, index + 512) - 1]",
            look="two arrows, [256, 511] and [512, 767]; KVM zaps the whole huge mapping; "
            "the page map shows 4 KiB pages again",
        ),
        get_lock(
            "get_lock_pfn(5) again: still pfn 5, now order 0",
            5,
            expect={"pfn": 5, "order": 0},
            look="the page map: page 5 is a 4 KiB page now",
        ),
        put_unlock("and unlock it", 5),
    ],
}
