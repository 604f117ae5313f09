"""Confidential VMs (SNP, TDX): populate the launch, finalize it, read its measurement."""

from __future__ import annotations

from fastapi import Request

from app.api import new_router
from app.deps import FdPath, OwnerPath, SessionId, registry
from app.models.kvm_coco import (
    Launch,
    LaunchAnswer,
    LaunchUpdate,
    LaunchUpdateAnswer,
    MemoryFailure,
    MemoryFailureAnswer,
)
from app.models.kvm_inplace import MemoryAttributes2, MemoryAttributes2Answer
from app.service import kvm_coco as svc

router = new_router("kvm")
VM = "/sessions/{sid}/vms/{vm_id}"


@router.post(VM + "/launch/update", name="launch_update")
async def launch_update(
    request: Request, sid: SessionId, vm_id: OwnerPath, body: LaunchUpdate
) -> LaunchUpdateAnswer:
    """SNP KVM_SEV_SNP_LAUNCH_UPDATE / TDX KVM_TDX_INIT_MEM_REGION (through vCPU 0):
    copy the source into private guest_memfd pages, prepare and measure them."""
    return await svc.update(registry(request), sid, vm_id, body)


@router.post(VM + "/launch/finish", name="launch_finish")
async def launch_finish(request: Request, sid: SessionId, vm_id: OwnerPath) -> LaunchAnswer:
    """SNP KVM_SEV_SNP_LAUNCH_FINISH / TDX KVM_TDX_FINALIZE_VM: the measurement is final,
    KVM_PRE_FAULT_MEMORY is allowed from now on, populate no longer."""
    return await svc.finish(registry(request), sid, vm_id)


@router.get(VM + "/launch", name="launch")
async def launch(request: Request, sid: SessionId, vm_id: OwnerPath) -> Launch:
    """The launch's state and measurement (SNP launch digest; TDX MRTD once finalized)."""
    return await svc.launch(registry(request), sid, vm_id)


@router.post("/sessions/{sid}/memory_failure", name="memory_failure")
async def memory_failure(
    request: Request, sid: SessionId, body: MemoryFailure
) -> MemoryFailureAnswer:
    """memory_failure() of a pfn (an uncorrectable error): a guest_memfd page is zapped in
    every VM and kept (MF_DELAYED); the guest's next access fails with EHWPOISON, a host
    touch is SIGBUS; punching the page drops it."""
    return await svc.memory_failure(registry(request), sid, body)


@router.post("/sessions/{sid}/files/{fd}/memory_attributes2", name="memory_attributes2")
async def memory_attributes2(
    request: Request, sid: SessionId, fd: FdPath, body: MemoryAttributes2
) -> MemoryAttributes2Answer:
    """PROPOSAL, not merged (variant inplace_conversion: guest_memfd in-place conversion
    v8, June 2026): KVM_SET_MEMORY_ATTRIBUTES2 on the guest_memfd.  Shared -> private is
    EAGAIN while a page has an extra reference (the error names error_offset); without
    the variant the ioctl does not exist (ENOTTY)."""
    return await svc.memory_attributes2(registry(request), sid, fd, body)
