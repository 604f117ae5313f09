"""Name <-> number tables: enum spellings, ops, errnos, C integer casts."""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable, Mapping

from app.engine._lib import lib

PROFILES = {"rfc-v2": lib.SS_PROFILE_RFC_V2, "guest-memfd": lib.SS_PROFILE_GMEM}
THP = {
    "never": lib.SS_THP_NEVER,
    "always": lib.SS_THP_ALWAYS,
    "within_size": lib.SS_THP_WITHIN_SIZE,
}
VARIANTS = {
    "multi_owner": lib.SS_VAR_MULTI_OWNER,
    "mmap_shared": lib.SS_VAR_MMAP_SHARED,
    "inplace_conversion": lib.SS_VAR_INPLACE,  # a proposal (v8, June 2026): not merged
    "no_direct_map": lib.SS_VAR_NO_DIRECT_MAP,  # a proposal (v7, Sep 2025): not merged
    "hugetlb_1g": lib.SS_VAR_HUGETLB_1G,  # a proposal (RFC v2, May 2025): not merged
}
KINDS = {lib.SS_KIND_MEMFD: "memfd", lib.SS_KIND_GMEM: "guest_memfd"}
OWNER_KINDS = {"kvm": lib.SS_OWNER_KVM, "recorder": lib.SS_OWNER_RECORDER}
# Machine.page_density's flags, frame_density's codes for no file / several / none open
DENS_FLAGS = {
    "huge": lib.SS_DENS_HUGE,
    "locked": lib.SS_DENS_LOCKED,
    "dirty": lib.SS_DENS_DIRTY,
    "mapped": lib.SS_DENS_MAPPED,
    "wait": lib.SS_DENS_WAIT,
}
DENS_NONE, DENS_MANY, DENS_NOFILE = lib.SS_DENS_NONE, lib.SS_DENS_MANY, lib.SS_DENS_NOFILE
MAX_COLS = lib.SS_MAX_COLS

MFD_FLAGS = {
    "MFD_CLOEXEC": lib.SS_MFD_CLOEXEC,
    "MFD_ALLOW_SEALING": lib.SS_MFD_ALLOW_SEALING,
    "MFD_HUGETLB": lib.SS_MFD_HUGETLB,
    "MFD_NOEXEC_SEAL": lib.SS_MFD_NOEXEC_SEAL,
    "MFD_EXEC": lib.SS_MFD_EXEC,
}
GMEM_FLAGS = {
    "GUEST_MEMFD_FLAG_MMAP": lib.SS_GMEM_FLAG_MMAP,
    "GUEST_MEMFD_FLAG_INIT_SHARED": lib.SS_GMEM_FLAG_INIT_SHARED,
}
_SEALS_COMMON = {
    "F_SEAL_SEAL": lib.SS_F_SEAL_SEAL,
    "F_SEAL_SHRINK": lib.SS_F_SEAL_SHRINK,
    "F_SEAL_GROW": lib.SS_F_SEAL_GROW,
    "F_SEAL_WRITE": lib.SS_F_SEAL_WRITE,
    "F_SEAL_FUTURE_WRITE": lib.SS_F_SEAL_FUTURE_WRITE,
}
SEALS = {
    "rfc-v2": {**_SEALS_COMMON, "F_SEAL_GUEST": lib.SS_F_SEAL_GUEST},
    "guest-memfd": {**_SEALS_COMMON, "F_SEAL_EXEC": lib.SS_F_SEAL_EXEC},
}
# seal names another profile's kernel has: asked as a bit this kernel does not know
# (0x40: no Linux defines it) so the engine answers EINVAL, as 5.15 does for F_SEAL_EXEC
FOREIGN_SEALS = {"rfc-v2": {"F_SEAL_EXEC": 0x40}}
FALLOC_MODES = {
    "FALLOC_FL_KEEP_SIZE": lib.SS_FALLOC_FL_KEEP_SIZE,
    "FALLOC_FL_PUNCH_HOLE": lib.SS_FALLOC_FL_PUNCH_HOLE,
}
PROTS = {"PROT_READ": lib.SS_PROT_READ, "PROT_WRITE": lib.SS_PROT_WRITE}
MAP_FLAGS = {"MAP_SHARED": lib.SS_MAP_SHARED, "MAP_PRIVATE": lib.SS_MAP_PRIVATE}

OPS = {
    lib.SS_OP_MEMFD_CREATE: "memfd_create",
    lib.SS_OP_GMEM_CREATE: "KVM_CREATE_GUEST_MEMFD",
    lib.SS_OP_FTRUNCATE: "ftruncate",
    lib.SS_OP_ADD_SEALS: "F_ADD_SEALS",
    lib.SS_OP_GET_SEALS: "F_GET_SEALS",
    lib.SS_OP_FALLOCATE: "fallocate",
    lib.SS_OP_PREAD: "pread",
    lib.SS_OP_PWRITE: "pwrite",
    lib.SS_OP_MMAP: "mmap",
    lib.SS_OP_MUNMAP: "munmap",
    lib.SS_OP_CLOSE: "close",
    lib.SS_OP_OWNER_CREATE: "owner_create",
    lib.SS_OP_REGISTER_GUEST: "memfd_register_guest",
    lib.SS_OP_UNREGISTER_GUEST: "memfd_unregister_guest",
    lib.SS_OP_GET_LOCK_PFN: "get_lock_pfn",
    lib.SS_OP_PUT_UNLOCK_PFN: "put_unlock_pfn",
    lib.SS_OP_INVALIDATE: "invalidate",
    lib.SS_OP_MEMSLOT: "memslot",
    lib.SS_OP_FAULT: "fault",
    lib.SS_OP_WAKE: "wake",
    lib.SS_OP_MIGRATE: "migrate_page",
    lib.SS_OP_VM_CREATE: "vm_create",
    lib.SS_OP_VM_GMEM: "vm_guest_memfd",
    lib.SS_OP_SET_REGION: "set_user_memory_region",
    lib.SS_OP_SET_ATTRS: "set_memory_attributes",
    lib.SS_OP_VCPU_CREATE: "vcpu_create",
    lib.SS_OP_VCPU_ACCESS: "vcpu_access",
    lib.SS_OP_MAP_ACCESS: "mapping_access",
    lib.SS_OP_PRE_FAULT: "pre_fault_memory",
    lib.SS_OP_LAUNCH_UPDATE: "launch_update",
    lib.SS_OP_LAUNCH_FINISH: "launch_finish",
    lib.SS_OP_MEMORY_FAILURE: "memory_failure",
    lib.SS_OP_GMEM_SET_ATTRS: "set_memory_attributes2",
    lib.SS_OP_MAP_PIN: "mapping_pin",
    lib.SS_OP_MAP_UNPIN: "mapping_unpin",
    lib.SS_OP_VM_CLOSE: "vm_close",
}
OP_CODES = {name: code for code, name in OPS.items()}

# What an event's args[] slots hold, per op, in slot order (the engine's
# ev_begin calls; the fd is the event's own field).
OP_ARGS: dict[str, tuple[str, ...]] = {
    "memfd_create": ("flags", "name_len"),
    "KVM_CREATE_GUEST_MEMFD": ("size", "flags"),
    "ftruncate": ("length",),
    "F_ADD_SEALS": ("seals",),
    "F_GET_SEALS": (),
    "fallocate": ("mode", "offset", "len"),
    "pread": ("offset", "count"),
    "pwrite": ("offset", "count"),
    "mmap": ("offset", "length", "prot", "flags"),
    "munmap": ("map_id",),
    "close": (),
    "owner_create": ("kind",),
    "memfd_register_guest": ("owner",),
    "memfd_unregister_guest": ("owner",),
    "get_lock_pfn": ("index", "alloc"),
    "put_unlock_pfn": ("pfn",),
    "invalidate": ("start", "end"),
    "memslot": ("gfn", "index", "npages", "owner"),
    "fault": ("gfn", "owner"),
    "wake": (),
    "migrate_page": ("pfn",),
    "vm_create": ("type",),
    "vm_guest_memfd": ("size", "flags", "vm"),
    "set_user_memory_region": ("slot", "flags", "guest_phys_addr", "memory_size"),
    "set_memory_attributes": ("address", "size", "attributes", "flags"),
    "vcpu_create": ("vm",),
    # how: bit 0 write, bits 1-2 private + 1 (0: the attributes decide), bits 8-15 value
    "vcpu_access": ("vm", "vcpu", "gpa", "how"),
    "mapping_access": ("map_id", "offset", "write", "value"),
    "pre_fault_memory": ("vm", "vcpu", "gpa", "size"),
    "launch_update": ("vm", "gpa", "len"),
    "launch_finish": ("vm",),
    "memory_failure": ("pfn",),
    "set_memory_attributes2": ("offset", "size", "attributes", "flags"),
    "mapping_pin": ("map_id", "offset", "length"),
    "mapping_unpin": ("pin_id",),
    "vm_close": ("vm",),
}
# args after an op's own that its event names only when set (added later: an event
# without them reads as it did before); mapping_pin's write is FOLL_WRITE
OP_ARGS_IF_SET: dict[str, tuple[str, ...]] = {"mapping_pin": ("write",)}
# Ops that may sleep (result SS_PENDING): on a page lock, or queued behind
# an operation of the same file that does.  For pwrite, SS_PENDING is also
# "1 byte written": the waiters and later wake events tell them apart.
HAZARDS = {
    lib.SS_HAZ_NONE: None,
    lib.SS_HAZ_NULL_PAGE: "null_page",
    lib.SS_HAZ_ERRNO_AS_PFN: "errno_as_pfn",
    lib.SS_HAZ_VM_BUG_ON_PAGE: "vm_bug_on_page",
    lib.SS_HAZ_UNSEALED_REGISTER: "unsealed_register",
    lib.SS_HAZ_ZAP_MISSES: "zap_misses_range",
    lib.SS_HAZ_ALLOC_UNNOTIFIED: "alloc_unnotified",
    lib.SS_HAZ_DEAD_OWNER: "dead_owner",
}
CALLBACKS = {
    lib.SS_CB_INVALIDATE: "invalidate_page_range",
    lib.SS_CB_FALLOCATE: "fallocate",
    lib.SS_CB_GMEM_INVALIDATE: "gmem_invalidate",
    # arch hooks of a confidential VM's guest_memfd page (kvm_coco.c), range = pfns
    lib.SS_CB_RMP_ASSIGN: "snp_rmp_assign",
    lib.SS_CB_RMP_RECLAIM: "snp_rmp_reclaim",
    lib.SS_CB_SEPT_ADD: "tdx_sept_add",
    lib.SS_CB_SEPT_REMOVE: "tdx_sept_remove",
    lib.SS_CB_DIRECT_MAP_REMOVE: "direct_map_remove",
    lib.SS_CB_DIRECT_MAP_RESTORE: "direct_map_restore",
}
TOUCHES = {
    lib.SS_T_ALLOC: "alloc",
    lib.SS_T_FREE: "free",
    lib.SS_T_ZERO: "zero",
    lib.SS_T_LOCK: "lock",
    lib.SS_T_UNLOCK: "unlock",
    lib.SS_T_SPLIT: "split",
    lib.SS_T_WAIT: "wait",
    lib.SS_T_ORPHAN: "orphan",
    lib.SS_T_MAP: "map",
    lib.SS_T_ZAP: "zap",
    lib.SS_T_MIGRATE: "migrate",
    lib.SS_T_EXIT: "exit",  # pfn: the KVM_EXIT_* number
    lib.SS_T_ATTR: "attributes",  # pfn: the attributes set on the gfns
    lib.SS_T_SIGNAL: "signal",  # pfn: the signal number
    lib.SS_T_MERGE: "merge",  # hugetlb_1g: 4 KiB pages back into a 1 GiB folio
    lib.SS_T_HWPOISON_KEEP: "hwpoison_kept",  # pfn: a freed poisoned frame, off the free lists
    lib.SS_T_VM_DESTROY: "vm_destroy",  # owner: kvm_destroy_vm (memslots, mappings, attributes)
    lib.SS_T_COW: "cow",  # a MAP_PRIVATE write copied file page index to frame pfn
}
PAGE_STATES = {lib.SS_PG_HOLE: "hole", lib.SS_PG_PRESENT: "present"}
# the life of a guest_memfd page (kvm_coco.c); a hole is "absent"
PAGE_LIFE = {
    lib.SS_LIFE_ALLOCATED: "allocated",
    lib.SS_LIFE_ZEROED: "zeroed",
    lib.SS_LIFE_PREPARED: "prepared",
    lib.SS_LIFE_HWPOISON: "hwpoison",
}
FRAME_STATES = {
    lib.SS_FRAME_FREE: "free",
    lib.SS_FRAME_CACHE: "cache",
    lib.SS_FRAME_ORPHAN: "orphan",
    lib.SS_FRAME_HWPOISON: "hwpoison",
    lib.SS_FRAME_COW: "cow",
}

# the kernel's spelling where Python's errno module has none, or prefers
# an alias (95 is EOPNOTSUPP in the kernel's sources and in the API)
_KERNEL_NAMES = {
    95: "EOPNOTSUPP",
    35: "EDEADLK",
    11: "EAGAIN",
    117: "EUCLEAN",
    524: "ENOTSUPP",
    133: "EHWPOISON",
}


def errno_name(value: int) -> str:
    """The kernel's name for a positive errno value ("EBUSY")."""
    return _KERNEL_NAMES.get(value) or _errno.errorcode.get(value) or f"E{value}"


def errno_value(name: str) -> int | None:
    """The value of an errno name, the kernel's spellings included."""
    for value, kname in _KERNEL_NAMES.items():
        if kname == name:
            return value
    found = getattr(_errno, name, None)
    return found if isinstance(found, int) else None


def wrap(value: int, nbits: int, signed: bool) -> int:
    """Cast an int to a C integer type the way a C caller's cast would."""
    if type(value) is int and (
        (-(1 << (nbits - 1)) <= value < 1 << (nbits - 1)) if signed else 0 <= value < 1 << nbits
    ):
        return value  # the common case: already in range
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int):
        raise TypeError(f"expected an int, got {type(value).__name__}")
    mask = (1 << nbits) - 1
    value &= mask
    if signed and value >> (nbits - 1):
        value -= 1 << nbits
    return value


def i32(v: int) -> int:
    if type(v) is int and -(1 << 31) <= v < (1 << 31):  # the common case, fast
        return v
    return wrap(v, 32, True)


def u32(v: int) -> int:
    return wrap(v, 32, False)


def i64(v: int) -> int:
    return wrap(v, 64, True)


def u64(v: int) -> int:
    if type(v) is int and 0 <= v < (1 << 64):  # the common case, fast
        return v
    return wrap(v, 64, False)


def bits(names: Iterable[str | int] | str | int, table: Mapping[str, int], what: str) -> int:
    """OR the named bits; raw ints pass as they are; unknown names: ValueError.

    A single name (or int) may stand for a one-element iterable.
    """
    if isinstance(names, str | int):
        names = [names]
    value = 0
    for n in names:
        if isinstance(n, bool) or not isinstance(n, str | int):
            raise ValueError(f"{what} must be names or ints, got {n!r}")
        if isinstance(n, int):
            value |= n
        elif n in table:
            value |= table[n]
        else:
            known = ", ".join(table)
            raise ValueError(f"unknown {what} {n!r} (known: {known})")
    return value


def names_of(value: int, table: Mapping[str, int]) -> list[str]:
    """The names of the bits set in value, in table order; unnamed bits as hex."""
    out = [name for name, bit in table.items() if value & bit]
    rest = value & ~sum(table.values())
    bit = 1
    while rest:
        if rest & bit:
            out.append(hex(bit))
            rest &= ~bit
        bit <<= 1
    return out


def seal_table(profile: str) -> dict[str, int]:
    return SEALS[profile]


def lookup(name: str, table: Mapping[str, int], what: str) -> int:
    """One enum value by name; ValueError naming the choices otherwise."""
    try:
        return table[name]
    except (KeyError, TypeError):
        known = ", ".join(repr(k) for k in table)
        raise ValueError(f"unknown {what} {name!r} (one of {known})") from None
