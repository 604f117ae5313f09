"""Walkthroughs of the review's alternatives and of what the RFC became (guest_memfd)."""

from __future__ import annotations

from app.service.walks._dsl import (
    KEEP,
    fal,
    fallocate,
    fault,
    ftruncate,
    gmem,
    gmem_inv,
    inv,
    memfd,
    memslot,
    mmap,
    owner,
    pread,
    punch,
    pwrite,
    register,
    seal,
    unregister,
)
from app.service.walks.rfc import GUEST, R_EMPTY, R_FAULT, R_PER_PAGE

MMAP_FLAG = "GUEST_MEMFD_FLAG_MMAP"

GMEM_LIFECYCLE = {
    "name": "guest-memfd-lifecycle",
    "title": "The same lifecycle on today's guest_memfd (Linux 6.18)",
    "summary": "KVM_CREATE_GUEST_MEMFD instead of memfd + F_SEAL_GUEST: no seals, a size fixed "
    "at creation, fallocate only with KEEP_SIZE, memslots instead of registration, one "
    "invalidation per memslot with an exclusive end. Read it next to rfc-lifecycle.",
    "profile": "guest-memfd",
    "topics": ["lifecycle", "guest_memfd"],
    "twin": "rfc-lifecycle",
    "steps": [
        gmem(
            "KVM_CREATE_GUEST_MEMFD(64 KiB): the file is born sized and private",
            65536,
            expect={"fd": 3, "kind": "guest_memfd", "size": 65536, "nr_pages": 0},
            rule="create: size a non-zero multiple of 4096; flags MMAP and INIT_SHARED only",
            twin="RFC: memfd_create, F_SEAL_GUEST while empty, then ftruncate (3 steps)",
        ),
        seal(
            "no seals on a guest_memfd: F_ADD_SEALS is EINVAL",
            "F_SEAL_WRITE",
            errno="EINVAL",
            twin="RFC: F_SEAL_GUEST was the promise; here the file's kind is",
        ),
        ftruncate(
            "the size is fixed: ftruncate is EINVAL",
            8192,
            errno="EINVAL",
            twin="RFC: ftruncate in whole pages; shrinking punched",
        ),
        fallocate(
            "fallocate mode 0 is refused: only KEEP_SIZE and PUNCH_HOLE|KEEP_SIZE",
            0,
            32768,
            errno="EOPNOTSUPP",
        ),
        fallocate(
            "fallocate KEEP_SIZE pages 0-7: allocated, and no callback at all",
            0,
            32768,
            KEEP,
            expect={"nr_pages": 8},
            callbacks=[],
            twin="RFC: the owner's fallocate callback [0, 8)",
        ),
        pread(
            "no read(2): ESPIPE",
            0,
            16,
            errno="ESPIPE",
            twin="RFC: EPERM inside the file, 0 bytes at the end",
        ),
        mmap(
            "mmap without GUEST_MEMFD_FLAG_MMAP: ENODEV",
            4096,
            errno="ENODEV",
            twin="RFC: EPERM",
        ),
        owner("a KVM owner (the VM)", expect={"owner_id": "0"}),
        register(
            "memfd_register_guest does not exist upstream: EINVAL",
            0,
            errno="EINVAL",
            rule="upstream the binding is the memslot (KVM_SET_USER_MEMORY_REGION2 with "
            "guest_memfd and offset)",
            twin="RFC: memfd_register_guest handed KVM the file's ops",
        ),
        memslot(
            "a memslot binds gfns 256-271 to file pages 0-15",
            256,
            16,
            expect={"slot": 0},
        ),
        fault(
            "the guest touches gfn 258: kvm_gmem_get_pfn takes a reference, no page lock",
            258,
            expect={"pfn": 2, "order": 0},
            callbacks=[],
            twin="RFC: " + R_FAULT,
        ),
        fault("gfn 268 (a hole): allocated on fault", 268, expect={"pfn": 8, "order": 0}),
        punch(
            "punch pages 2-5: one invalidation for the memslot, end exclusive",
            8192,
            16384,
            expect={"nr_pages": 5},
            callbacks=[gmem_inv(0, 2, 6)],
            rule="punch: kvm_gmem_invalidate_begin once per bound memslot, [start, end)",
            look="one arrow gmem_invalidate [2, 6) — exclusive; gfn 258 zapped",
            twin="RFC: four invalidate_page_range callbacks, [2, 2] … [5, 5]",
        ),
        gmem(
            "a second guest_memfd, with GUEST_MEMFD_FLAG_MMAP",
            65536,
            [MMAP_FLAG],
            expect={"fd": 4, "flags": [MMAP_FLAG]},
        ),
        mmap(
            "MAP_SHARED of it works (shared memory of a guest, Linux 6.18)",
            4096,
            fd=4,
            expect={"map_id": 1},
            twin="RFC: no mmap at all once sealed; see the mmap-shared variant",
        ),
        mmap("MAP_PRIVATE does not: EINVAL", 4096, fd=4, flags=["MAP_PRIVATE"], errno="EINVAL"),
    ],
}

MULTI = {
    "name": "multi-owner-fanout",
    "title": "A second consumer: invalidations fan out to every owner",
    "summary": "The review asked about VFIO/IOMMU and RDMA importing the same memory. With "
    "the multi_owner variant a file keeps a list of owners with usage counts, and both "
    "callbacks go to each of them.",
    "profile": "rfc-v2",
    "variants": ["multi_owner"],
    "topics": ["variants", "callbacks"],
    "steps": [
        memfd("an empty memfd", expect={"fd": 3}),
        seal("F_SEAL_GUEST", GUEST),
        ftruncate("64 KiB", 65536),
        owner("owner 0: KVM", expect={"owner_id": "0"}),
        owner(
            "owner 1: an IOMMU importer (VFIO), simulated as a recorder",
            "vfio0",
            "recorder",
            expect={"owner_id": "1"},
        ),
        register("KVM registers", 0, expect={"owners": ["0"]}),
        register(
            "VFIO registers too: accepted with multi_owner",
            1,
            expect={"owners": ["0", "1"]},
            rule="multi_owner: a registration list; the RFC as posted answers EPERM here",
            look="Files: vm0 lists both owners",
        ),
        register(
            "VFIO registers a second time: its usage count goes to 2",
            1,
            expect={"owners": ["0", "1"]},
        ),
        fallocate(
            "allocate pages 0-3: the fallocate callback goes to both owners",
            0,
            16384,
            expect={"nr_pages": 4},
            callbacks=[fal(0, 0, 4), fal(1, 0, 4)],
            look="two arrows [0, 4), one to each owner",
        ),
        memslot("KVM: gfns 256-271 are pages 0-15", 256, 16),
        fault("the guest touches gfn 257", 257, expect={"pfn": 1}),
        punch(
            "punch pages 0-1: each page's invalidation reaches both owners",
            0,
            8192,
            expect={"nr_pages": 2},
            callbacks=[inv(0, 0, 0), inv(1, 0, 0), inv(0, 1, 1), inv(1, 1, 1)],
            rule=R_PER_PAGE + ", for every registered owner",
            look="Owners: KVM zapped gfn 257; the recorder received the same ranges",
        ),
        unregister(
            "VFIO unregisters once: its count drops to 1, it stays registered",
            1,
            expect={"owners": ["0", "1"]},
        ),
        unregister("and once more: it is gone", 1, expect={"owners": ["0"]}),
        punch(
            "punch page 2: only KVM hears of it now",
            8192,
            4096,
            callbacks=[inv(0, 2, 2)],
        ),
        unregister("a third unregister: VFIO is not registered", 1, errno="ENOENT"),
    ],
}

MMAP_SHARED = {
    "name": "mmap-shared",
    "title": "mmap allowed where the file is not encrypted",
    "summary": "The mmap_shared variant lets userspace map a guest-sealed file that is not "
    "encrypted (shared guest memory) — what later landed as GUEST_MEMFD_FLAG_MMAP.",
    "profile": "rfc-v2",
    "variants": ["mmap_shared"],
    "topics": ["variants", "userspace"],
    "twin": "guest-memfd-lifecycle",
    "steps": [
        memfd("an empty memfd", expect={"fd": 3}),
        seal("F_SEAL_GUEST", GUEST, expect={"seals": [GUEST]}),
        ftruncate("8 KiB", 8192),
        mmap(
            "mmap MAP_SHARED, read-write: accepted with mmap_shared",
            8192,
            expect={"map_id": 1},
            rule="mmap_shared: mmap of a guest-sealed file is allowed where the memory is "
            "not encrypted; the RFC as posted answers EPERM",
            twin="today: KVM_CREATE_GUEST_MEMFD with GUEST_MEMFD_FLAG_MMAP, MAP_SHARED only",
        ),
        pread("read(2) stays refused", 0, 16, errno="EPERM"),
        pwrite("write(2) too", 0, b"hi", errno="EPERM"),
        memfd("another memfd (fd 4)", "other", expect={"fd": 4}),
        mmap("mapped before sealing", 4096, fd=4, expect={"map_id": 2}),
        seal(
            "F_SEAL_GUEST on a mapped file is still EBUSY",
            GUEST,
            fd=4,
            errno="EBUSY",
            rule=R_EMPTY,
        ),
    ],
}
