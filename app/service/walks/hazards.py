"""Walkthroughs of what the review pointed at: userspace locked out, the page lock,
the RFC's hazards, pins against F_SEAL_WRITE."""

from __future__ import annotations

from app.service.walks._dsl import (
    fal,
    fallocate,
    fault,
    ftruncate,
    get_lock,
    get_seals,
    inv,
    invalidate,
    memfd,
    memslot,
    migrate,
    mmap,
    owner,
    pread,
    punch,
    put_unlock,
    pwrite,
    register,
    seal,
)
from app.service.walks.rfc import GUEST, R_PER_PAGE, sealed_file

R_LOCKED = (
    "read, write, mmap: with F_SEAL_GUEST a read inside the file is EPERM (at or past the "
    "end it reads 0 bytes: i_size is checked first); write and mmap are EPERM"
)
ERRNO_AS_PFN = 2**64 - 22  # -EINVAL as the unsigned long pfn a caller receives

LOCKED_OUT = {
    "name": "userspace-locked-out",
    "title": "Userspace locked out: read, write and mmap are EPERM",
    "summary": "Once F_SEAL_GUEST is on, the host process can no longer read, write or map "
    "the guest's memory — except a read at the end of the file, which still answers 0 bytes.",
    "profile": "rfc-v2",
    "topics": ["seal", "userspace"],
    "steps": [
        memfd("an empty memfd", expect={"fd": 3}),
        seal("F_SEAL_GUEST", GUEST, expect={"seals": [GUEST]}),
        ftruncate("8 KiB: two pages", 8192, expect={"size": 8192}),
        pread(
            "read at offset 0: refused",
            0,
            16,
            errno="EPERM",
            rule=R_LOCKED,
            look="Refused: EPERM, the rule names F_SEAL_GUEST",
            twin="today: a guest_memfd has no read(2) at all: ESPIPE",
        ),
        pread("read at offset 4096: refused too", 4096, 16, errno="EPERM", rule=R_LOCKED),
        pread(
            "read at the end of the file (offset 8192): 0 bytes, no error",
            8192,
            16,
            expect={"nbytes": 0},
            rule=R_LOCKED,
            look="the timeline: → ok; the size check comes before the seal check",
        ),
        pwrite("write: refused", 0, b"secret", errno="EPERM", rule=R_LOCKED),
        mmap(
            "mmap MAP_SHARED: refused",
            4096,
            errno="EPERM",
            rule=R_LOCKED,
            twin="today: ENODEV without GUEST_MEMFD_FLAG_MMAP; with it, MAP_SHARED works (6.18)",
        ),
        mmap(
            "mmap MAP_PRIVATE read-only: refused as well",
            4096,
            prot=["PROT_READ"],
            flags=["MAP_PRIVATE"],
            errno="EPERM",
        ),
        get_seals("F_GET_SEALS still answers: 0x20 is F_SEAL_GUEST", expect={"value": 32}),
    ],
}

PUNCH_WAITS = {
    "name": "punch-waits-on-locked-page",
    "title": "A punch sleeps on a page held by get_lock_pfn",
    "summary": "The page is not freed under its holder: the punch frees the other pages, "
    "sleeps on the page lock, and finishes when put_unlock_pfn drops it.",
    "profile": "rfc-v2",
    "topics": ["page lock", "callbacks"],
    "steps": [
        *sealed_file(16384),
        fallocate(
            "allocate the 4 pages",
            0,
            16384,
            expect={"nr_pages": 4},
            callbacks=[fal(0, 0, 4)],
        ),
        get_lock(
            "get_lock_pfn(1): page 1 is locked and holds an extra reference",
            1,
            expect={"pfn": 1, "order": 0, "pending": False},
            look="the page map: page 1 locked, refcount 2",
        ),
        punch(
            "punch all 4 pages: pages 0, 2, 3 go; on page 1 the punch sleeps",
            0,
            16384,
            expect={"pending": True, "nr_pages": 1},
            callbacks=[inv(0, 0, 0), inv(0, 2, 2), inv(0, 3, 3)],
            rule="a page locked by get_lock_pfn is skipped on the first pass, then the "
            "kernel sleeps on its lock: never free a locked page",
            look="Time travel says 1 operation asleep; page 1 shows a waiter",
        ),
        put_unlock(
            "put_unlock_pfn(1): the unlock wakes the punch, which frees page 1",
            1,
            expect={"wakes": [8]},
            callbacks=[inv(0, 1, 1)],
            rule=R_PER_PAGE + "; the woken punch makes the callback for page 1",
            look="the timeline: a 'wake' event under put_unlock_pfn with the arrow [1, 1]",
        ),
    ],
}

HAZARDS = {
    "name": "rfc-hazards",
    "title": "The RFC's hazards: a NULL page, an errno as a pfn, a double unlock",
    "summary": "What the review flagged in the interface itself, each shown as the kernel "
    "would have met it, and a registration on a file that was never sealed.",
    "profile": "rfc-v2",
    "topics": ["hazards"],
    "steps": [
        memfd("a memfd, never sealed", expect={"fd": 3}),
        ftruncate("8 KiB", 8192),
        owner("a KVM owner"),
        register(
            "memfd_register_guest on the unsealed file: accepted",
            0,
            expect={"owners": ["0"], "event.hazard": "unsealed_register"},
            rule="memfd_register_guest does not check F_SEAL_GUEST: nothing stops a guest "
            "from using memory userspace can still read and write",
            look="the timeline: ⚠ the hazard on a successful op",
        ),
        get_lock(
            "get_lock_pfn(1, alloc=false) on a hole: shmem_getpage returns no page",
            1,
            alloc=False,
            errno="EFAULT",
            expect={"hazard": "null_page"},
            rule="a hole without alloc: the RFC dereferences the NULL page (an oops); "
            "the engine reports it instead of inventing a pfn",
            look="Refused: EFAULT, with the hazard named",
        ),
        get_lock(
            "get_lock_pfn(5) past the end: -EINVAL comes back as the pfn",
            5,
            errno="EINVAL",
            expect={"hazard": "errno_as_pfn", "event.raw": ERRNO_AS_PFN},
            rule="errors travel back through the unsigned long pfn: -EINVAL reads as pfn "
            f"{ERRNO_AS_PFN:#x} to a caller that does not check",
            look="the events' raw value: 2^64 - 22",
        ),
        get_lock("get_lock_pfn(0): a real page this time", 0, expect={"pfn": 0, "order": 0}),
        put_unlock("put_unlock_pfn(0): fine", 0),
        put_unlock(
            "put_unlock_pfn(0) again: the page is not locked",
            0,
            errno="EINVAL",
            expect={"hazard": "vm_bug_on_page"},
            rule="put_unlock_pfn needs a locked page; the RFC hits VM_BUG_ON_PAGE",
        ),
        invalidate(
            "invalidate [0, 1] by hand: page 0 is present, page 1 a hole: one callback",
            0,
            1,
            callbacks=[inv(0, 0, 0)],
            rule="invalidation walks the page cache: one call per present page, none for holes",
            look="one arrow [0, 0], end inclusive",
        ),
    ],
}

PINS = {
    "name": "seal-write-vs-pins",
    "title": "F_SEAL_WRITE refused while an owner holds a page",
    "summary": "A page held by get_lock_pfn is a pin: adding F_SEAL_WRITE waits for pins "
    "and then gives up with EBUSY; after put_unlock_pfn it is accepted.",
    "profile": "rfc-v2",
    "topics": ["seal", "pins"],
    "steps": [
        *sealed_file(16384),
        get_lock(
            "get_lock_pfn(0, alloc): page 0 is allocated, locked, one more reference",
            0,
            expect={"pfn": 0, "order": 0},
            look="page 0: locked, refcount 2",
        ),
        seal(
            "F_SEAL_WRITE while page 0 is pinned: EBUSY",
            "F_SEAL_WRITE",
            errno="EBUSY",
            rule="adding F_SEAL_WRITE is EBUSY while pages stay pinned (extra references) "
            "after the kernel's wait for pins",
        ),
        put_unlock("put_unlock_pfn(0): the pin goes", 0),
        seal(
            "F_SEAL_WRITE again: accepted",
            "F_SEAL_WRITE",
            expect={"seals": ["F_SEAL_WRITE", GUEST]},
        ),
        punch(
            "and now a punch is refused: the owner can no longer have pages taken away",
            0,
            4096,
            errno="EPERM",
            rule="punch: F_SEAL_WRITE or F_SEAL_FUTURE_WRITE is EPERM",
        ),
    ],
}


R_MIGRATE = (
    "guest-sealed pages are never swapped out and refuse migration (ENOTSUPP): they behave "
    "like long-term pinned memory"
)

STAY_PUT = {
    "name": "guest-pages-stay-put",
    "title": "Guest pages stay put: migration is ENOTSUPP",
    "summary": "Compaction moves an ordinary memfd page to another frame; a page of an "
    "F_SEAL_GUEST file refuses (ENOTSUPP). The RFC has no hook to tell the owner a page "
    "moved, so it pins guest memory for good: the owner's gfn -> pfn stays true.",
    "profile": "rfc-v2",
    "topics": ["migration", "pins"],
    "steps": [
        memfd("an ordinary memfd (fd 3), no seals", "plain", expect={"fd": 3}),
        ftruncate("4 pages of size", 16384),
        fallocate(
            "fallocate the 4 pages: frames 0-3",
            0,
            16384,
            expect={"nr_pages": 4},
            look="Pages: fd 3 [0, 4) on frames 0-3",
        ),
        migrate(
            "compaction moves page 0 (frame 0) to a free frame",
            0,
            expect={"from_pfn": 0, "pfn": 4, "fd": 3, "index": 0},
            look="fd 3 page 0 now on frame 4; frame 0 is free",
        ),
        memfd("the guest's memfd (fd 4)", expect={"fd": 4}),
        seal("F_SEAL_GUEST while it is empty", GUEST, fd=4, expect={"seals": [GUEST]}),
        ftruncate("4 pages of size", 16384, fd=4),
        owner("a simulated KVM", expect={"owner_id": "0"}),
        register("memfd_register_guest: owner 0 takes fd 4", 0, fd=4, expect={"owners": ["0"]}),
        memslot("memslot: gfn 0.. maps fd 4 pages 0..", 0, 4, fd=4),
        fault(
            "the guest touches gfn 0: get_lock_pfn allocates page 0 (the frame 0 just freed)",
            0,
            expect={"pfn": 0, "order": 0},
            look="Owner 0: gfn 0 -> pfn 0",
        ),
        migrate(
            "compaction tries to move the guest's page 0: ENOTSUPP",
            0,
            errno="ENOTSUPP",
            rule=R_MIGRATE,
            look="fd 4 page 0 still on frame 0, and KVM's gfn 0 -> pfn 0 still true",
            twin="today: guest_memfd's mapping is unmovable, so migration fails (EBUSY here)",
        ),
        migrate(
            "the ordinary memfd's page still moves",
            4,
            expect={"from_pfn": 4, "fd": 3, "index": 0},
        ),
    ],
}
