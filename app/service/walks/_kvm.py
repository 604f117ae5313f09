"""The walkthrough language's KVM half: one function per ioctl (args as the op log
keeps them, API.md "The KVM side"), narration as arguments, as in _dsl.py."""

from __future__ import annotations

from typing import Any

from app.service.walks._dsl import Step, step

PRIVATE = "KVM_MEMORY_ATTRIBUTE_PRIVATE"
EXIT_PRIVATE = ["KVM_MEMORY_EXIT_FLAG_PRIVATE"]
SW = "KVM_X86_SW_PROTECTED_VM"
DEFAULT = "KVM_X86_DEFAULT_VM"
TOP = 0x7F0000000000  # the VMM address space's first mapping ends here (KVM_CONTRACT)


def addr(*lengths: int) -> int:
    """The address of the last of mappings of `lengths` bytes made in this order."""
    return TOP - sum(-(-n // 4096) * 4096 for n in lengths)


def vm(note: str, type: str = SW, name: str = "vm0", **kw: Any) -> Step:
    return step("vm_create", {"name": name, "type": type}, note, **kw)


def vcpu(note: str, vm_id: int = 0, **kw: Any) -> Step:
    return step("vcpu_create", {"vm_id": str(vm_id)}, note, **kw)


def gmem(note: str, size: int, flags: list[str] | None = None, vm_id: int = 0, **kw: Any) -> Step:
    args = {"vm_id": str(vm_id), "size": size, "flags": flags or []}
    return step("vm_guest_memfd", args, note, **kw)


def region(
    note: str,
    size: int,
    gpa: int = 0,
    slot: int = 0,
    uaddr: int = 0,
    gmem_fd: int | None = None,
    offset: int = 0,
    vm_id: int = 0,
    flags: list[str] | None = None,
    **kw: Any,
) -> Step:
    """KVM_SET_USER_MEMORY_REGION2; with gmem_fd, KVM_MEM_GUEST_MEMFD bound to it."""
    args: dict[str, Any] = {
        "vm_id": str(vm_id),
        "slot": slot,
        "flags": flags if flags is not None else (["KVM_MEM_GUEST_MEMFD"] if gmem_fd else []),
        "guest_phys_addr": gpa,
        "memory_size": size,
        "userspace_addr": uaddr,
        "guest_memfd_offset": offset,
        "guest_memfd": gmem_fd or 0,
    }
    return step("set_user_memory_region", args, note, **kw)


def fd_region(
    note: str,
    size: int,
    fd: int,
    private_fd: int,
    gpa: int = 0,
    slot: int = 0,
    vm_id: int = 0,
    **kw: Any,
) -> Step:
    """rfc-v2: an fd-based memslot (KVM_MEM_FD), userspace_addr the offset into both."""
    args = {
        "vm_id": str(vm_id),
        "slot": slot,
        "flags": ["KVM_MEM_FD"],
        "guest_phys_addr": gpa,
        "memory_size": size,
        "userspace_addr": 0,
        "fd": fd,
        "private_fd": private_fd,
    }
    return step("set_user_memory_region", args, note, **kw)


def attrs(note: str, gpa: int, size: int, private: bool, vm_id: int = 0, **kw: Any) -> Step:
    args = {
        "vm_id": str(vm_id),
        "address": gpa,
        "size": size,
        "attributes": [PRIVATE] if private else [],
        "flags": 0,
    }
    return step("set_memory_attributes", args, note, **kw)


def access(
    note: str,
    gpa: int,
    write: bool = False,
    private: bool | None = None,
    value: int = 0,
    vm_id: int = 0,
    vcpu_id: int = 0,
    **kw: Any,
) -> Step:
    args = {
        "vm_id": str(vm_id),
        "vcpu_id": vcpu_id,
        "gpa": gpa,
        "write": write,
        "private": private,
        "value": value,
    }
    return step("vcpu_access", args, note, **kw)


def host(
    note: str, map_id: int, offset: int, write: bool = False, value: int = 0, **kw: Any
) -> Step:
    args = {"map_id": map_id, "offset": offset, "write": write, "value": value}
    return step("mapping_access", args, note, **kw)


def exit_fault(gpa: int, private: bool) -> dict[str, Any]:
    """The answer's exit of a KVM_EXIT_MEMORY_FAULT."""
    return {
        "reason": "KVM_EXIT_MEMORY_FAULT",
        "gpa": gpa,
        "size": 4096,
        "flags": EXIT_PRIVATE if private else [],
        "errno": "EFAULT",
        "type": None,
    }


def exit_rfc(gpa: int, private: bool) -> dict[str, Any]:
    """The RFC's KVM_EXIT_MEMORY_ERROR, MAP_PRIVATE or MAP_SHARED."""
    kind = "KVM_EXIT_MEM_MAP_PRIVATE" if private else "KVM_EXIT_MEM_MAP_SHARED"
    return {
        "reason": "KVM_EXIT_MEMORY_ERROR",
        "gpa": gpa,
        "size": 4096,
        "flags": None,
        "errno": None,
        "type": kind,
    }
