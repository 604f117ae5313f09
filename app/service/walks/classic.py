"""Short walkthroughs: one point each (the first ones the service had)."""

from __future__ import annotations

from app.service.walks._dsl import (
    KEEP,
    fal,
    fallocate,
    fault,
    gmem,
    inv,
    memslot,
    mmap,
    pread,
    punch,
)
from app.service.walks.rfc import R_FALLOC, R_FAULT, R_PER_PAGE, sealed_file

PER_PAGE = {
    "name": "punch-invalidates-per-page",
    "title": "A punch calls invalidate_page_range once per page",
    "summary": "Four present pages punched: four callbacks, each with an inclusive end.",
    "profile": "rfc-v2",
    "topics": ["callbacks"],
    "steps": [
        *sealed_file(65536, "recorder", "rec0"),
        fallocate(
            "allocate 16 pages: one fallocate callback, end exclusive",
            0,
            65536,
            expect={"nr_pages": 16},
            callbacks=[fal(0, 0, 16)],
            rule=R_FALLOC,
        ),
        punch(
            "punch 4 pages: 4 invalidate_page_range callbacks",
            0,
            16384,
            expect={"nr_pages": 12},
            callbacks=[inv(0, 0, 0), inv(0, 1, 1), inv(0, 2, 2), inv(0, 3, 3)],
            rule=R_PER_PAGE,
            look="four arrows to the recorder, [0, 0] to [3, 3]",
        ),
    ],
}

FAULT_ZAP = {
    "name": "kvm-fault-and-zap",
    "title": "A guest fault maps a page; a punch zaps it",
    "summary": "The owner's invalidate_page_range zaps the gfns of the punched pages.",
    "profile": "rfc-v2",
    "topics": ["callbacks", "owner"],
    "steps": [
        *sealed_file(65536),
        memslot("gfns 256..271 -> file pages 0..15", 256, 16, expect={"slot": 0}),
        fault("the guest touches gfn 256", 256, expect={"pfn": 0, "order": 0}, rule=R_FAULT),
        fault("and gfn 257", 257, expect={"pfn": 1, "order": 0}),
        punch(
            "punch page 0: gfn 256 is zapped",
            0,
            4096,
            callbacks=[inv(0, 0, 0)],
            look="Owners: Zapped gfn 256 → pfn 0; gfn 257 stays mapped",
        ),
    ],
}

GMEM_BASICS = {
    "name": "guest-memfd-basics",
    "title": "guest_memfd today (Linux 6.18): what the usual syscalls answer",
    "summary": "What KVM_CREATE_GUEST_MEMFD files answer to the usual syscalls.",
    "profile": "guest-memfd",
    "topics": ["guest_memfd", "userspace"],
    "steps": [
        gmem(
            "a 2 MiB guest_memfd that can be mmapped",
            2097152,
            ["GUEST_MEMFD_FLAG_MMAP"],
            expect={"fd": 3, "kind": "guest_memfd"},
        ),
        pread("no read(2)", 0, 16, errno="ESPIPE"),
        fallocate("mode 0 is refused", 0, 4096, errno="EOPNOTSUPP"),
        fallocate("KEEP_SIZE allocates", 0, 4096, KEEP, expect={"nr_pages": 1}),
        fallocate(
            "KEEP_SIZE unaligned: EINVAL",
            0,
            100,
            KEEP,
            errno="EINVAL",
            rule="fallocate on a guest_memfd: offset and len page aligned",
        ),
        mmap(
            "MAP_PRIVATE is refused",
            4096,
            prot=["PROT_READ"],
            flags=["MAP_PRIVATE"],
            errno="EINVAL",
        ),
        mmap("MAP_SHARED is accepted", 4096, prot=["PROT_READ"], expect={"map_id": 1}),
    ],
}
