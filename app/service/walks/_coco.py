"""The walkthrough language's confidential-VM half: populate, finalize, pre-fault, memory
failure, the in-place conversion proposal's ATTRIBUTES2 and GUP pins (args as the op log
keeps them, docs/service.md "Confidential VMs"), and the measurements the launch
reports, computed here with hashlib so a walkthrough's expected digest is independent
of the engine's SHA-384 (engine_c/sha384.c)."""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from app.service.walks._dsl import PAGE, Step, b64, step
from app.service.walks._kvm import PRIVATE

SNP = "KVM_X86_SNP_VM"
TDX = "KVM_X86_TDX_VM"
ZERO_MODE = "KVM_SET_MEMORY_ATTRIBUTES2_MODE_ZERO"


def source(tag: bytes, pages: int) -> bytes:
    """Launch source bytes: `tag` repeated over `pages` pages (an image's stand-in)."""
    n = pages * PAGE
    return (tag * (n // len(tag) + 1))[:n]


def launch_update(note: str, gpa: int, data: bytes, vm_id: int = 0, **kw: Any) -> Step:
    """SNP KVM_SEV_SNP_LAUNCH_UPDATE / TDX KVM_TDX_INIT_MEM_REGION of `data` at gpa."""
    args = {"vm_id": str(vm_id), "gpa": gpa, "data_b64": b64(data)}
    return step("launch_update", args, note, **kw)


def launch_finish(note: str, vm_id: int = 0, **kw: Any) -> Step:
    """SNP KVM_SEV_SNP_LAUNCH_FINISH / TDX KVM_TDX_FINALIZE_VM."""
    return step("launch_finish", {"vm_id": str(vm_id)}, note, **kw)


def pre_fault(note: str, gpa: int, size: int, vm_id: int = 0, vcpu_id: int = 0, **kw: Any) -> Step:
    """KVM_PRE_FAULT_MEMORY on a vCPU."""
    args = {"vm_id": str(vm_id), "vcpu_id": vcpu_id, "gpa": gpa, "size": size, "flags": 0}
    return step("pre_fault_memory", args, note, **kw)


def memory_failure(note: str, pfn: int, **kw: Any) -> Step:
    """memory_failure() of a frame (an uncorrectable memory error)."""
    return step("memory_failure", {"pfn": pfn}, note, **kw)


def attrs2(
    note: str,
    offset: int,
    size: int,
    private: bool,
    fd: int = 3,
    flags: list[str] | None = None,
    **kw: Any,
) -> Step:
    """Proposal: KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd `fd`."""
    args = {
        "fd": fd,
        "offset": offset,
        "size": size,
        "attributes": [PRIVATE] if private else [],
        "flags": flags or [],
    }
    return step("set_memory_attributes2", args, note, **kw)


def pin(note: str, map_id: int, offset: int, length: int, **kw: Any) -> Step:
    """pin_user_pages() on [offset, offset + length) of a mapping."""
    return step("mapping_pin", {"map_id": map_id, "offset": offset, "length": length}, note, **kw)


def unpin(note: str, pin_id: int, **kw: Any) -> Step:
    """unpin_user_pages() of a pin."""
    return step("mapping_unpin", {"pin_id": pin_id}, note, **kw)


# ---- the arch hooks, as callbacks of the event: [start, end) in pfns, owner the VM ----
def hook(fn: str, start: int, end: int | None = None, vm_id: int = 0) -> dict[str, Any]:
    """snp_rmp_assign / snp_rmp_reclaim / tdx_sept_add / tdx_sept_remove of pfns."""
    return {
        "fn": fn,
        "owner_id": str(vm_id),
        "start": start,
        "end": start + 1 if end is None else end,
    }


def snp_digest(pages: list[tuple[int, bytes]]) -> str:
    """SNP's launch digest (SNP ABI spec, PAGE_INFO; as sev-snp-measure computes it): per
    page, SHA-384(digest || SHA-384(page) || LENGTH 0x70 || PAGE_TYPE_NORMAL || 0s || gpa),
    from 48 zero bytes."""
    digest = bytes(48)
    for gpa, content in pages:
        info = digest + hashlib.sha384(content).digest()
        info += struct.pack("<HBBBBBBQ", 0x70, 1, 0, 0, 0, 0, 0, gpa)
        digest = hashlib.sha384(info).digest()
    return digest.hex()


def tdx_mrtd(pages: list[tuple[int, bytes]]) -> str:
    """TDX's MRTD (TDX module spec): one SHA-384 over, per page, TDH.MEM.PAGE.ADD's 128
    bytes ("MEM.PAGE.ADD", the gpa at byte 16) and, per 256 bytes, TDH.MR.EXTEND's 128
    bytes ("MR.EXTEND", the gpa) and the chunk; TDH.MR.FINALIZE ends it."""
    h = hashlib.sha384()
    for gpa, content in pages:
        for off in range(0, len(content), PAGE):
            base = gpa + off
            h.update(b"MEM.PAGE.ADD".ljust(16, b"\0") + struct.pack("<Q", base) + bytes(104))
            for k in range(0, PAGE, 256):
                h.update(b"MR.EXTEND".ljust(16, b"\0") + struct.pack("<Q", base + k) + bytes(104))
                h.update(content[off + k : off + k + 256])
    return h.hexdigest()
