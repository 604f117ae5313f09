"""Words for the KVM side's failures: the rule the engine says refused (ss_kvm_rule)."""

from __future__ import annotations

from collections.abc import Callable

from app.engine._lib import lib

Args = dict[str, int]
Words = Callable[[Args], str]


_SIGNALS = {lib.SS_SIGBUS: "SIGBUS", lib.SS_SIGSEGV: "SIGSEGV"}


def _hex(v: int) -> str:
    return hex(v & (1 << 64) - 1)


RULES: dict[int, Words] = {
    lib.SS_R_NO_VM: lambda a: "the owner is not a VM (make one with KVM_CREATE_VM)",
    lib.SS_R_VM_TYPE: lambda a: (
        f"VM type {a.get('type')} is not supported here (kvm_is_vm_type_supported; rfc-v2's "
        "5.15 takes KVM_X86_DEFAULT_VM only)"
    ),
    lib.SS_R_NO_IOCTL: lambda a: "this ioctl does not exist in the rfc-v2 profile (Linux 5.15)",
    lib.SS_R_TOO_MANY: lambda a: f"at most {lib.SS_MAX_OWNERS} owners (VMs included) per machine",
    lib.SS_R_GMEM_FLAGS: lambda a: (
        f"flags {_hex(a.get('flags', 0))} are not in kvm_gmem_get_supported_flags() for this "
        "VM (GUEST_MEMFD_FLAG_INIT_SHARED only on a VM without private memory)"
    ),
    lib.SS_R_GMEM_SIZE: lambda a: f"size {a.get('size')} must be > 0 and page aligned",
    lib.SS_R_SLOT_ID: lambda a: (
        f"slot id {a.get('slot', 0) & 0xFFFF} is not below KVM_USER_MEM_SLOTS "
        f"({lib.SS_USER_MEM_SLOTS})"
    ),
    lib.SS_R_REGION_FLAGS: lambda a: (
        f"check_memory_region_flags: flags {_hex(a.get('flags', 0))} are not valid here "
        "(KVM_MEM_GUEST_MEMFD excludes LOG_DIRTY_PAGES and READONLY; SNP and TDX have no "
        "READONLY)"
    ),
    lib.SS_R_SIZE_ALIGN: lambda a: f"memory_size {a.get('memory_size')} is not page aligned",
    lib.SS_R_GPA_ALIGN: lambda a: f"guest_phys_addr {_hex(a.get('gpa', 0))} is not page aligned",
    lib.SS_R_UADDR: lambda a: (
        f"userspace_addr {_hex(a.get('uaddr', 0))} is not page aligned or the range is not "
        "access_ok (userspace_addr + memory_size past the user address space)"
    ),
    lib.SS_R_GMEM_OFFSET: lambda a: (
        f"guest_memfd_offset {_hex(a.get('offset', 0))} is not page aligned or "
        "offset + memory_size wraps"
    ),
    lib.SS_R_AS_ID: lambda a: (
        f"address space {a.get('slot', 0) >> 16} does not exist (slot >> 16; a VM with private "
        "memory has one, others two)"
    ),
    lib.SS_R_GPA_WRAP: lambda a: "guest_phys_addr + memory_size wraps around",
    lib.SS_R_TOO_BIG: lambda a: "memory_size is more than KVM_MEM_MAX_NR_PAGES (2^31 - 1 pages)",
    lib.SS_R_DELETE_NONE: lambda a: (
        f"memory_size 0 deletes a slot, and slot {a.get('slot')} does not exist"
    ),
    lib.SS_R_IMMUTABLE: lambda a: (
        "private memslots are immutable (KVM_MEM_GUEST_MEMFD / KVM_MEM_FD): only deletion "
        "(memory_size 0)"
    ),
    lib.SS_R_MODIFY: lambda a: (
        "a modify may not change userspace_addr, memory_size, READONLY or GUEST_MEMFD"
    ),
    lib.SS_R_OVERLAP: lambda a: "the gpa range overlaps another memslot (EEXIST)",
    lib.SS_R_MAX_GFN: lambda a: (
        "the range ends past the MMU's largest gfn, or in a TDX VM's shared alias "
        "(kvm_arch_prepare_memory_region)"
    ),
    lib.SS_R_BADF: lambda a: "the fd is not open (fget fails: EBADF)",
    lib.SS_R_NOT_GMEM: lambda a: "kvm_gmem_bind: the fd is not a guest_memfd",
    lib.SS_R_OTHER_VM: lambda a: "kvm_gmem_bind: the guest_memfd belongs to another VM",
    lib.SS_R_GMEM_RANGE: lambda a: (
        f"kvm_gmem_bind: guest_memfd_offset {a.get('offset')} + memory_size "
        f"{a.get('memory_size')} is past the guest_memfd's end"
    ),
    lib.SS_R_GMEM_BOUND: lambda a: (
        "kvm_gmem_bind: part of this guest_memfd range is bound by another memslot"
    ),
    lib.SS_R_RFC_NOT_MEMFD: lambda a: "memfd_register_guest: only shmem (memfd) files",
    lib.SS_R_RFC_OWNER: lambda a: (
        "memfd_register_guest: the file already has another owner (one VM per file)"
    ),
    lib.SS_R_ATTR_FLAGS: lambda a: "KVM_SET_MEMORY_ATTRIBUTES: flags must be 0",
    lib.SS_R_ATTR_UNSUPPORTED: lambda a: (
        f"attributes {_hex(a.get('attributes', 0))} are not supported by this VM "
        "(kvm_supported_mem_attributes: KVM_MEMORY_ATTRIBUTE_PRIVATE on VMs with private "
        "memory only)"
    ),
    lib.SS_R_ATTR_RANGE: lambda a: "size is 0 or address + size wraps",
    lib.SS_R_ATTR_ALIGN: lambda a: "address and size must be page aligned",
    lib.SS_R_NO_VCPU: lambda a: f"the VM has no vCPU {a.get('vcpu')}",
    lib.SS_R_VCPUS: lambda a: f"at most {lib.SS_MAX_VCPUS} vCPUs per VM",
    lib.SS_R_RUN_HVA: lambda a: (
        "KVM_RUN: the gfn's shared page cannot be faulted in: userspace_addr points at no "
        "mapping of the VMM, past the file's end, at a private guest_memfd mapping or a "
        "mapping without that access (hva_to_pfn fails: EFAULT)"
    ),
    lib.SS_R_RUN_NO_PRIVATE_FD: lambda a: (
        "KVM_RUN: a private access to a memslot without private_fd fails (patch 07: RET_PF_INVALID)"
    ),
    lib.SS_R_RUN_LOCKED: lambda a: (
        "the page is locked by get_lock_pfn: a pre-fault does not sleep on it (EAGAIN); "
        "a vCPU access does (answer pending, woken by the holder's put_unlock_pfn)"
    ),
    lib.SS_R_RUN_COW: lambda a: (
        "a write through a MAP_PRIVATE mapping copies the page (engine_c/cow.c); this rule "
        "no longer fails"
    ),
    lib.SS_R_NO_MAPPING: lambda a: f"no mapping with id {a.get('map_id')}",
    lib.SS_R_NOMEM: lambda a: "no free frames (or no memory for the engine's tables)",
    lib.SS_R_PREFAULT_FLAGS: lambda a: "KVM_PRE_FAULT_MEMORY: flags must be 0",
    lib.SS_R_PREFAULT_RANGE: lambda a: (
        "KVM_PRE_FAULT_MEMORY: gpa and size must be page aligned, size > 0, and gpa + size "
        "must not wrap"
    ),
    lib.SS_R_PREFAULT_NOT_YET: lambda a: (
        "pre-faulting is not allowed on this VM yet (SNP and TDX: only after the launch is "
        "finalized)"
    ),
    lib.SS_R_PREFAULT_NOSLOT: lambda a: "the first page has no memslot (RET_PF_EMULATE: ENOENT)",
    lib.SS_R_PREFAULT_FAULT: lambda a: (
        "the first page's fault failed (a memory fault exit, or no page at userspace_addr)"
    ),
    lib.SS_R_NOT_COCO: lambda a: (
        "launch ops exist for SNP and TDX VMs only (KVM_MEMORY_ENCRYPT_OP: ENOTTY)"
    ),
    lib.SS_R_LAUNCH_DONE: lambda a: (
        "the launch is finalized already (TDX: state is not TD_STATE_INITIALIZED, EINVAL; "
        "SNP: the firmware's guest left the launch state, EIO)"
    ),
    lib.SS_R_LAUNCH_NO_VCPU: lambda a: (
        "KVM_TDX_INIT_MEM_REGION is a vCPU ioctl: create a vCPU first"
    ),
    lib.SS_R_POPULATE_RANGE: lambda a: (
        "populate: gpa and the source's length must be page aligned, non-empty, not wrapping"
    ),
    lib.SS_R_POPULATE_SLOT: lambda a: (
        "populate: the first gfn has no memslot with a guest_memfd (kvm_gmem_populate: EINVAL)"
    ),
    lib.SS_R_POPULATE_CLOSED: lambda a: "populate: the memslot's guest_memfd is closed (EFAULT)",
    lib.SS_R_POPULATE_SHARED: lambda a: (
        f"populate: gfn {a.get('gfn', '?')} is not private (kvm_gmem_populate needs "
        "KVM_MEMORY_ATTRIBUTE_PRIVATE; the page was allocated first); "
        f"{a.get('done', 0)} pages done"
    ),
    lib.SS_R_POPULATE_EXISTS: lambda a: (
        f"populate: the page of gfn {a.get('gfn', '?')} is uptodate (prepared) already "
        f"(kvm_gmem_populate: EEXIST); {a.get('done', 0)} pages done"
    ),
    lib.SS_R_MF_PFN: lambda a: f"memory_failure: no pfn {a.get('pfn')} on this machine (ENXIO)",
    lib.SS_R_MF_NOT_GMEM: lambda a: (
        "memory_failure: the simulator models the failure of guest_memfd pages only "
        "(kvm_gmem_error_folio); this frame is free or another file's"
    ),
    lib.SS_R_MF_AGAIN: lambda a: "memory_failure: the page is hardware-poisoned already",
    lib.SS_R_RUN_HWPOISON: lambda a: (
        f"the page of gfn {a.get('gfn', '?')} is hardware-poisoned (kvm_gmem_get_pfn: "
        f"EHWPOISON); {a.get('done', 0)} pages done"
    ),
    lib.SS_R_CONTENT_MODE: lambda a: (
        "KVM_SET_MEMORY_ATTRIBUTES2 (proposal, in-place conversion v8): this VM's arch "
        "cannot honour the content mode (PRESERVE on SNP / TDX: the conversion encrypts)"
    ),
    lib.SS_R_CONVERT_BUSY: lambda a: (
        "KVM_SET_MEMORY_ATTRIBUTES2 (proposal, in-place conversion v8): the page at "
        f"error_offset={_hex(a.get('error_offset', 0))} has a reference beyond "
        "guest_memfd's own (a get_lock_pfn hold, a pin): drop it and retry"
    ),
    lib.SS_R_NO_PIN: lambda a: f"mapping_unpin: no pin with id {a.get('pin_id')} (EINVAL)",
    lib.SS_R_PIN_RANGE: lambda a: (
        "pin_user_pages: the range is empty, wraps, or is longer than "
        f"{lib.SS_PIN_MAX_PAGES} pages (EINVAL)"
    ),
    lib.SS_R_PIN_FAULT: lambda a: (
        f"pin_user_pages: a host touch of the page at offset {_hex(a.get('offset', 0))} "
        f"would be {_SIGNALS.get(a.get('signal', 0), 'a signal')} (faultin_page: EFAULT); "
        "nothing pinned"
    ),
    lib.SS_R_PIN_READONLY: lambda a: (
        "pin_user_pages(FOLL_WRITE): the mapping has no PROT_WRITE (check_vma_flags: "
        "FOLL_WRITE on a VMA without VM_WRITE and no FOLL_FORCE is EFAULT; a write touch "
        "there would be SIGSEGV); nothing pinned"
    ),
    lib.SS_R_PIN_HWPOISON: lambda a: (
        f"pin_user_pages: the page at offset {_hex(a.get('offset', 0))} is hardware-poisoned "
        "(VM_FAULT_HWPOISON: EHWPOISON); nothing pinned"
    ),
    lib.SS_R_PIN_MAX: lambda a: (
        f"pin_user_pages: the machine holds {lib.SS_MAX_PINS} pins, the engine's limit (ENOSPC)"
    ),
    lib.SS_R_RUN_HVA_HWPOISON: lambda a: (
        "KVM_RUN: the gfn's userspace_addr maps a hardware-poisoned guest_memfd page: "
        "hva_to_pfn answers KVM_PFN_ERR_HWPOISON, kvm_send_hwpoison_signal sends the vCPU "
        "thread SIGBUS (BUS_MCEERR_AR) and the pending signal ends KVM_RUN (KVM_EXIT_INTR, "
        "EINTR)"
    ),
    lib.SS_R_VM_CLOSED: lambda a: (
        "the VM's fd is closed (EBADF): no ioctl reaches it; it lives on, memslots and "
        "mappings intact, while a guest_memfd it made is open or mapped"
    ),
}


def kvm_words(rule: int, op: str, errno_name: str, args: Args) -> str:
    words = RULES.get(rule)
    return words(args) if words is not None else f"{op} failed: {errno_name}"
