"""Name <-> number tables of the KVM side (uapi spellings)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from app.engine._lib import lib

VM_TYPES = {
    "KVM_X86_DEFAULT_VM": lib.SS_VM_DEFAULT,
    "KVM_X86_SW_PROTECTED_VM": lib.SS_VM_SW_PROTECTED,
    "KVM_X86_SNP_VM": lib.SS_VM_SNP,
    "KVM_X86_TDX_VM": lib.SS_VM_TDX,
}
VM_TYPE_NAMES = {v: k for k, v in VM_TYPES.items()}
REGION_FLAGS = {
    "guest-memfd": {
        "KVM_MEM_LOG_DIRTY_PAGES": lib.SS_MEM_LOG_DIRTY_PAGES,
        "KVM_MEM_READONLY": lib.SS_MEM_READONLY,
        "KVM_MEM_GUEST_MEMFD": lib.SS_MEM_GUEST_MEMFD,
    },
    "rfc-v2": {
        "KVM_MEM_LOG_DIRTY_PAGES": lib.SS_MEM_LOG_DIRTY_PAGES,
        "KVM_MEM_READONLY": lib.SS_MEM_READONLY,
        "KVM_MEM_FD": lib.SS_MEM_FD,
    },
}
ATTRIBUTES = {"KVM_MEMORY_ATTRIBUTE_PRIVATE": lib.SS_MEMORY_ATTRIBUTE_PRIVATE}
EXIT_FLAGS = {"KVM_MEMORY_EXIT_FLAG_PRIVATE": lib.SS_MEMORY_EXIT_FLAG_PRIVATE}
EXITS = {
    lib.SS_EXIT_MMIO: "KVM_EXIT_MMIO",
    lib.SS_EXIT_MEMORY_ERROR: "KVM_EXIT_MEMORY_ERROR",
    lib.SS_EXIT_MEMORY_FAULT: "KVM_EXIT_MEMORY_FAULT",
}
MEM_ERROR_TYPES = {
    lib.SS_EXIT_MEM_MAP_SHARED: "KVM_EXIT_MEM_MAP_SHARED",
    lib.SS_EXIT_MEM_MAP_PRIVATE: "KVM_EXIT_MEM_MAP_PRIVATE",
}
SIGNALS = {lib.SS_SIGBUS: "SIGBUS", lib.SS_SIGSEGV: "SIGSEGV"}
BACKINGS = {1: "private", 2: "shared"}
SOURCES = {
    lib.SS_SRC_NONE: "none",
    lib.SS_SRC_PRIVATE: "private",
    lib.SS_SRC_SHARED_GMEM: "shared_guest_memfd",
    lib.SS_SRC_SHARED_HVA: "shared_userspace_addr",
    lib.SS_SRC_SHARED_FD: "shared_fd",
    lib.SS_SRC_UNMAPPED_HVA: "unmapped_userspace_addr",
    lib.SS_SRC_CLOSED: "closed_guest_memfd",
    lib.SS_SRC_POISONED: "poisoned",
}

# a name the kernel does not know is an unknown value: a bit no VM supports
UNKNOWN_U32 = 1 << 31
UNKNOWN_U64 = 1 << 63


def kernel_bits(names: Iterable[str] | str, table: Mapping[str, int], unknown: int) -> int:
    """OR the named bits; a name the table lacks sets `unknown` (the kernel's EINVAL)."""
    if isinstance(names, str):
        names = [names]
    value = 0
    for n in names:
        value |= table.get(n, unknown) if isinstance(n, str) else unknown
    return value
