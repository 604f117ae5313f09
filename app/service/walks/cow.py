"""A walkthrough of MAP_PRIVATE copy-on-write: what a private mapping of guest RAM does
to the host and the guest (mm/memory.c do_cow_fault / wp_page_copy; KVM faults a write
through hva_to_pfn with FOLL_WRITE), and why a VMM maps the memfd MAP_SHARED."""

from __future__ import annotations

from app.service.walks._dsl import (
    ALLOW,
    PAGE,
    RW,
    b64,
    ftruncate,
    memfd,
    pread,
    punch,
    pwrite,
    seal,
)
from app.service.walks._dsl import mmap as mmap_
from app.service.walks._dsl import munmap as munmap_
from app.service.walks._kvm import DEFAULT, access, addr, host, region, vcpu, vm

PRIVATE = ["MAP_PRIVATE"]
R_COPY = (
    "a write fault through a MAP_PRIVATE mapping copies the page (do_cow_fault for a page "
    "not yet mapped, wp_page_copy for one mapped read-only): an anonymous page, this "
    "mapping's only; the file's page and every other mapping keep the old bytes"
)
R_PUNCH = (
    "shmem_fallocate's hole punch unmaps with even_cows=0: the private copies stay (only "
    "the file's pages go)"
)
R_TRUNCATE = (
    "truncate_pagecache unmaps with even_cows=1: the copies past the new end go too, and "
    "a touch there is SIGBUS"
)
R_SEAL = (
    "F_SEAL_WRITE refuses shared writable mappings (EBUSY); a private one cannot write the "
    "file, so it does not count, and its writes still copy"
)
R_KVM = (
    "KVM's fault of a guest write through a plain memslot is hva_to_pfn with FOLL_WRITE: "
    "the VMM's mapping is private, so the guest gets the copy, never the memfd's page"
)
FILE_BYTES = b"\x11" * (2 * PAGE)
SIZE = 16 * PAGE


PRIVATE_COW = {
    "name": "map-private-copy-on-write",
    "title": "MAP_PRIVATE: a write copies the page, and the guest's RAM leaves the file",
    "summary": "Guest RAM in a memfd mapped MAP_PRIVATE: each write (the host's or the "
    "guest's) copies the page for that mapping only; the file, its other mappings and "
    "pread never see it; a punch keeps the copies, a truncate drops them; F_SEAL_WRITE "
    "does not stop them. Checked against this machine's kernel and KVM.",
    "profile": "guest-memfd",
    "topics": ["mmap", "kvm"],
    "steps": [
        memfd("guest RAM: a memfd (fd 3)", "ram", ALLOW, expect={"fd": 3}),
        ftruncate("64 KiB of it", SIZE, expect={"size": SIZE}),
        pwrite("the file's bytes: 0x11 in pages 0 and 1", 0, FILE_BYTES),
        mmap_(
            "the VMM maps it MAP_PRIVATE, read-write (map 1)",
            SIZE,
            flags=PRIVATE,
            prot=RW,
            expect={"map_id": 1},
        ),
        host(
            "the host writes 0x42 through the mapping at page 0: the page is copied",
            1,
            0,
            True,
            0x42,
            rule=R_COPY,
            look="the frame map: a striped frame, mapping 1's copy of page 0",
        ),
        pread(
            "pread of page 0 still reads the file's 0x11",
            0,
            4,
            expect={"data_b64": b64(b"\x11" * 4)},
        ),
        host("the mapping reads its copy: 0x42", 1, 0, expect={"value": 0x42}),
        mmap_(
            "a second mapping, MAP_SHARED read-only (map 2)",
            SIZE,
            flags=["MAP_SHARED"],
            prot=["PROT_READ"],
            expect={"map_id": 2},
        ),
        host("it reads the file's page: 0x11", 2, 0, expect={"value": 0x11}),
        vm("KVM_CREATE_VM: a default VM", DEFAULT, expect={"vm_id": "0"}),
        vcpu("its vCPU", expect={"vcpu_id": 0}),
        region(
            "a plain memslot over the private mapping: gpa 0 is page 0",
            SIZE,
            uaddr=addr(SIZE),
            expect={"slot": 0},
        ),
        access(
            "the guest reads gpa 0: it sees the mapping's copy (0x42), not the file",
            0,
            expect={"value": 0x42, "backing": "shared", "index": 0},
        ),
        access(
            "the guest writes 0x77 at gpa 0x1000: page 1 is copied for the mapping",
            0x1000,
            True,
            value=0x77,
            rule=R_KVM,
        ),
        pread(
            "the VMM's pread of page 1: still 0x11 (the guest's write is not in the file)",
            PAGE,
            4,
            expect={"data_b64": b64(b"\x11" * 4)},
        ),
        punch(
            "punch page 0 out of the file: its copy stays",
            0,
            PAGE,
            rule=R_PUNCH,
        ),
        host("the mapping still reads its copy of page 0: 0x42", 1, 0, expect={"value": 0x42}),
        pread("the file reads zeros there now", 0, 4, expect={"data_b64": b64(bytes(4))}),
        seal(
            "F_SEAL_WRITE while map 2 is there: EBUSY (a shared mapping of a writable fd "
            "counts, PROT_READ or not)",
            "F_SEAL_WRITE",
            errno="EBUSY",
            rule="memfd_add_seals: mapping_deny_writable fails while i_mmap_writable > 0; "
            "a MAP_SHARED mapping of an fd opened for writing is VM_MAYWRITE",
        ),
        munmap_("munmap map 2", 2),
        seal(
            "F_SEAL_WRITE now: allowed, the private mapping does not count",
            "F_SEAL_WRITE",
            rule=R_SEAL,
        ),
        host(
            "the host writes through the private mapping at page 2: copied, sealed or not",
            1,
            2 * PAGE,
            True,
            0x55,
        ),
        pwrite("but the file itself refuses writes", 0, b"x", errno="EPERM"),
        ftruncate(
            "F_SEAL_WRITE does not stop a shrink: truncate to 1 page drops the copies past it",
            PAGE,
            rule=R_TRUNCATE,
        ),
        host(
            "a touch of page 1 through the mapping: past the end, SIGBUS",
            1,
            PAGE,
            expect={"signal": "SIGBUS"},
        ),
    ],
}
