"""The rule behind each refusal, in words, for the pages (the engine's message says
what was wrong with this call; this says which rule of the RFC or the kernel it is)."""

from __future__ import annotations

RFC = "RFC v2 01/13 (mm/shmem: Introduce F_SEAL_GUEST)"

RULES: dict[tuple[str, str], str] = {
    ("F_ADD_SEALS", "EBUSY"): (
        f"{RFC}: F_SEAL_GUEST can only be set on an empty memfd — size 0 and no mapping. "
        "F_SEAL_WRITE is EBUSY while a MAP_SHARED mapping exists or a page stays pinned."
    ),
    ("F_ADD_SEALS", "EPERM"): (
        "memfd_add_seals: F_SEAL_SEAL is set (a memfd made without MFD_ALLOW_SEALING starts "
        "with it): no seal can be added any more."
    ),
    ("F_ADD_SEALS", "EINVAL"): (
        "memfd_add_seals: an unknown seal bit, or not a memfd (guest_memfd has no seals)."
    ),
    ("F_GET_SEALS", "EINVAL"): "F_GET_SEALS works on memfds only (guest_memfd has no seals).",
    ("ftruncate", "EPERM"): "shmem_setattr: F_SEAL_SHRINK forbids shrinking, F_SEAL_GROW growing.",
    ("ftruncate", "EINVAL"): (
        f"{RFC}: with F_SEAL_GUEST the size must be a whole number of pages. "
        "guest_memfd: the size is fixed at creation, ftruncate is EINVAL."
    ),
    ("fallocate", "EOPNOTSUPP"): (
        "shmem_fallocate takes mode 0, KEEP_SIZE, or PUNCH_HOLE|KEEP_SIZE only "
        "(guest_memfd: KEEP_SIZE is required)."
    ),
    ("fallocate", "EPERM"): (
        "shmem_fallocate: a punch under F_SEAL_WRITE / F_SEAL_FUTURE_WRITE, or growing "
        "past the end under F_SEAL_GROW."
    ),
    ("fallocate", "EINVAL"): (
        f"offset < 0 or len <= 0; with F_SEAL_GUEST ({RFC}) and on guest_memfd the range "
        "must be page aligned (and inside a guest_memfd)."
    ),
    ("fallocate", "EFBIG"): "The range ends past the largest file size (MAX_LFS_FILESIZE).",
    ("fallocate", "ENOSPC"): "Out of frames: the pages this call allocated were given back.",
    ("fallocate", "ENOMEM"): "Out of frames: the pages this call allocated were given back.",
    ("pread", "EPERM"): (
        f"{RFC}: shmem_file_read_iter refuses a guest-sealed file, so userspace cannot read "
        "guest private memory (at or past the end, i_size is checked first: 0 bytes)."
    ),
    ("pwrite", "EPERM"): (
        f"{RFC}: no write(2) to a guest-sealed file; F_SEAL_WRITE forbids writes, "
        "F_SEAL_GROW writes past the end."
    ),
    ("pread", "ESPIPE"): "guest_memfd has no read(2): KVM's file has no read_iter.",
    ("pwrite", "ESPIPE"): "guest_memfd has no write(2): KVM's file has no write_iter.",
    ("mmap", "EPERM"): (
        f"{RFC}: shmem_mmap refuses a guest-sealed file; F_SEAL_WRITE / FUTURE_WRITE "
        "forbid a shared writable mapping."
    ),
    ("mmap", "ENODEV"): "guest_memfd: mmap needs GUEST_MEMFD_FLAG_MMAP at creation.",
    ("mmap", "EINVAL"): "guest_memfd: only MAP_SHARED mappings (or a bad length/offset).",
    ("memfd_register_guest", "EINVAL"): f"{RFC}: memfd_register_guest needs an owner.",
    ("memfd_register_guest", "EPERM"): (
        f"{RFC}: one owner per file; another owner already registered "
        "(the same owner again only replaces its ops)."
    ),
    ("get_lock_pfn", "EINVAL"): f"{RFC}: the index is at or past the end of the file.",
    ("get_lock_pfn", "EFAULT"): (
        f"{RFC}: on a hole without alloc, shmem_getpage returns no page and the hook "
        "dereferences it — a NULL-pointer oops in the kernel."
    ),
    ("put_unlock_pfn", "EINVAL"): (
        f"{RFC}: put_unlock_pfn on a page that is not locked hits VM_BUG_ON_PAGE."
    ),
    ("migrate_page", "ENOTSUPP"): (
        f"{RFC}: guest-sealed pages are never swapped out and refuse migration — they "
        "behave like long-term pinned memory."
    ),
    ("fault", "EFAULT"): "KVM: the gfn is in no memslot of this owner.",
    ("memslot", "EINVAL"): "KVM: a memslot may not be empty, reach past the file's end or wrap.",
    ("memslot", "EEXIST"): "KVM: the memslot overlaps another one.",
}

HAZARDS: dict[str, str] = {
    "null_page": "NULL-pointer oops: shmem_getpage returned no page and the RFC's hook used it",
    "errno_as_pfn": "the errno travelled back as a huge pfn through the unsigned long return",
    "vm_bug_on_page": "VM_BUG_ON_PAGE: unlocking a page that was not locked",
    "unsealed_register": "registered an owner on a file without F_SEAL_GUEST (the RFC allows it)",
    "zap_misses_range": "patch 13's zap misses the range it was given (modelled as meant)",
    "alloc_unnotified": (
        "get_lock_pfn allocated private pages without the fallocate callback: the VM's "
        "shared mapping of them went stale (modelled as meant: zapped)"
    ),
    "dead_owner": (
        "the file's owner is a destroyed VM (patch 13 checks vm_is_dead instead of "
        "unregistering): nobody else can register it"
    ),
}


# where one errno has several causes, the engine's message tells which rule applies
BY_MESSAGE: list[tuple[str, str, str, str]] = [
    (
        "ftruncate",
        "EINVAL",
        "negative",
        "do_sys_ftruncate: a negative length is EINVAL, before any seal or size rule.",
    ),
    (
        "fallocate",
        "EINVAL",
        "must be >= 0",
        "vfs_fallocate: an offset below 0 or a length of 0 or less is EINVAL, before any "
        "seal or alignment rule.",
    ),
]


def rule(op: str | None, errno: str | None, message: str = "") -> str | None:
    if not op or not errno:
        return None
    for o, e, word, text in BY_MESSAGE:
        if (o, e) == (op, errno) and word in message:
            return text
    return RULES.get((op, errno)) or (RULES.get((op, "EOPNOTSUPP")) if errno == "ENOTSUP" else None)


def hazard(name: str | None) -> str | None:
    return HAZARDS.get(name or "", name)
