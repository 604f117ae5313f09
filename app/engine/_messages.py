"""Words for failures: which rule of the simulated kernel refused a call.

``explain(ctx)`` looks up a rule function for (op, errno name) and lets it
refine its text with the call's arguments and the file's state (a failing
call changes nothing, so the state read after it is the state it met).
Anything unlisted falls back to the table of generic texts, then strerror.
The rules live in _rules_files.py and _rules_guest.py.
"""

from __future__ import annotations

import os

from app.engine._ctx import Ctx, Rule
from app.engine._lib import lib
from app.engine._names import errno_value
from app.engine._rules_files import (
    add_seals_ebusy,
    add_seals_einval,
    add_seals_eperm,
    fallocate_einval,
    fallocate_eopnotsupp,
    fallocate_eperm,
    ftruncate_einval,
    ftruncate_eperm,
    gmem_create_einval,
    memfd_create_einval,
    no_frames,
)
from app.engine._rules_guest import (
    ebadf,
    enoent,
    fault,
    get_lock_pfn_einval,
    invalidate_einval,
    mmap_einval,
    mmap_eperm,
    negative_io,
    pread_eperm,
    put_unlock_einval,
    pwrite_eperm,
    register_einval,
    register_eperm,
    unregister_einval,
)

__all__ = ["Ctx", "explain"]

TABLE: dict[tuple[str, str], str] = {
    ("memfd_create", "EINVAL"): "memfd_create refuses these flags or this name",
    ("memfd_create", "EMFILE"): "too many open files",
    ("KVM_CREATE_GUEST_MEMFD", "EINVAL"): "KVM_CREATE_GUEST_MEMFD refuses this size or these flags",
    ("ftruncate", "EFBIG"): "the length is past the maximum file size",
    ("F_ADD_SEALS", "EBUSY"): "the seal cannot be added while the file is in use",
    ("fallocate", "EFBIG"): "offset + len is past the maximum file size",
    ("pwrite", "EFBIG"): "the write would end past the maximum file size",
    ("memfd_create", "ENFILE"): "the machine's file table is full",
    ("owner_create", "EINVAL"): "the owner kind or name is not accepted",
    ("memslot", "EINVAL"): "the memslot is empty, past the file's end or wraps around",
    ("memslot", "EEXIST"): "the gfn range overlaps another memslot of this owner",
}

RULES: dict[tuple[str, str], Rule] = {
    ("memfd_create", "EINVAL"): memfd_create_einval,
    ("KVM_CREATE_GUEST_MEMFD", "EINVAL"): gmem_create_einval,
    ("ftruncate", "EPERM"): ftruncate_eperm,
    ("ftruncate", "EINVAL"): ftruncate_einval,
    ("F_ADD_SEALS", "EINVAL"): add_seals_einval,
    ("F_GET_SEALS", "EINVAL"): lambda c: "a guest_memfd has no seals: F_GET_SEALS is EINVAL",
    ("F_ADD_SEALS", "EPERM"): add_seals_eperm,
    ("F_ADD_SEALS", "EBUSY"): add_seals_ebusy,
    ("fallocate", "EOPNOTSUPP"): fallocate_eopnotsupp,
    ("fallocate", "EINVAL"): fallocate_einval,
    ("fallocate", "EPERM"): fallocate_eperm,
    ("pread", "EPERM"): pread_eperm,
    ("pread", "EINVAL"): negative_io,
    ("pwrite", "EINVAL"): negative_io,
    ("pread", "ESPIPE"): lambda c: "a guest_memfd cannot be read with pread (ESPIPE)",
    ("pwrite", "ESPIPE"): lambda c: "a guest_memfd cannot be written with pwrite (ESPIPE)",
    ("pwrite", "EPERM"): pwrite_eperm,
    ("mmap", "EPERM"): mmap_eperm,
    ("mmap", "EINVAL"): mmap_einval,
    ("mmap", "ENODEV"): lambda c: "this guest_memfd was created without GUEST_MEMFD_FLAG_MMAP",
    ("memfd_register_guest", "EINVAL"): register_einval,
    ("memfd_register_guest", "EPERM"): register_eperm,
    ("memfd_unregister_guest", "EINVAL"): unregister_einval,
    ("memfd_unregister_guest", "EBUSY"): lambda c: (
        f"owner {c.a('owner')} has a memslot on this file, which holds a use of its "
        "registration (made with the slot): that one cannot be unregistered"
    ),
    ("fault", "EFAULT"): fault,
    ("fault", "EINVAL"): fault,
    ("put_unlock_pfn", "EINVAL"): put_unlock_einval,
    ("invalidate", "EINVAL"): invalidate_einval,
    ("owner_create", "ENOSPC"): lambda c: f"at most {lib.SS_MAX_OWNERS} owners per machine",
    ("munmap", "EINVAL"): lambda c: f"no mapping with id {c.a('map_id')}",
    ("get_lock_pfn", "EINVAL"): get_lock_pfn_einval,
    ("migrate_page", "ENOTSUPP"): lambda c: (
        "the page belongs to an F_SEAL_GUEST file: the RFC makes guest pages refuse "
        "migration (ENOTSUPP), like long-term pinned memory"
    ),
    ("migrate_page", "EBUSY"): lambda c: (
        "the page cannot move: it is locked or referenced (get_lock_pfn), an owner maps "
        "it (no hook would tell the owner it moved), or it is a guest_memfd page "
        "(unmovable)"
    ),
    ("migrate_page", "ENOENT"): lambda c: f"frame {c.a('pfn')} holds no page of a file",
    ("migrate_page", "EINVAL"): lambda c: f"pfn {c.a('pfn')} is past the last frame",
}
for _op in (
    "fallocate",
    "pwrite",
    "get_lock_pfn",
    "fault",
    "KVM_CREATE_GUEST_MEMFD",
    "migrate_page",
):
    RULES[(_op, "ENOMEM")] = RULES[(_op, "ENOSPC")] = no_frames

HAZARD_TEXT = {
    "null_page": (
        "a hole without alloc: the RFC's shmem_getpage returns no page and "
        "get_lock_pfn dereferences it (NULL-pointer oops)"
    ),
    "vm_bug_on_page": "the page is not locked: the RFC hits VM_BUG_ON_PAGE in put_unlock_pfn",
}


def explain(c: Ctx) -> str:
    """The words for a failure: which rule refused."""
    if c.hazard in HAZARD_TEXT:
        words = HAZARD_TEXT[c.hazard]
        if c.hazard == "vm_bug_on_page" and "pfn" in c.args:
            words = f"pfn {c.a('pfn')}: {words}"
        return words
    if c.op == "KVM_CREATE_GUEST_MEMFD" and c.rfc:
        return "KVM_CREATE_GUEST_MEMFD does not exist in the rfc-v2 profile (Linux 5.15)"
    rule = RULES.get((c.op, c.name))
    if rule is None and c.name == "EBADF":
        rule = ebadf
    if rule is None and c.name == "ENOENT":
        rule = enoent
    text = rule(c) if rule is not None else None
    if text:
        return text
    if (c.op, c.name) in TABLE:
        return TABLE[(c.op, c.name)]
    value = errno_value(c.name)
    words = os.strerror(value) if value is not None else c.name
    return f"{c.op} failed: {words}"
