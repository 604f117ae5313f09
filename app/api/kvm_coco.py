"""Confidential VMs (SNP, TDX): populate the launch, finalize it, read its measurement."""

from __future__ import annotations

from fastapi import Request, Response

from app.api import new_router
from app.deps import FdPath, MapPath, OwnerPath, SessionId, registry
from app.models.kvm_coco import (
    Launch,
    LaunchAnswer,
    LaunchUpdate,
    LaunchUpdateAnswer,
    MemoryFailure,
    MemoryFailureAnswer,
)
from app.models.kvm_inplace import MemoryAttributes2, MemoryAttributes2Answer
from app.models.kvm_pin import PinAnswer, PinBody
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


@router.post("/sessions/{sid}/mappings/{map_id}/pin", status_code=201, name="mapping_pin")
async def mapping_pin(
    request: Request, sid: SessionId, map_id: MapPath, body: PinBody
) -> PinAnswer:
    """pin_user_pages() on the pages of [offset, offset + length) of a mapping (what
    O_DIRECT, vhost, VFIO do): each is faulted in as a host touch would and holds a
    reference.  A touch that would be SIGBUS / SIGSEGV is EFAULT, a hwpoisoned page
    EHWPOISON (nothing pinned).  A pinned page blocks shared -> private conversion
    (EAGAIN) and migration (EBUSY); a punch leaves it an orphan frame until the unpin."""
    return await svc.pin(registry(request), sid, map_id, body)


@router.delete("/sessions/{sid}/pins/{pin_id}", status_code=204, name="mapping_unpin")
async def mapping_unpin(request: Request, sid: SessionId, pin_id: MapPath) -> Response:
    """unpin_user_pages(): every page of the pin drops its reference (an orphan frame
    whose last reference it was goes back to the free lists)."""
    await svc.unpin(registry(request), sid, pin_id)
    return Response(status_code=204)
