"""The KVM side (API.md "The KVM side"): VMs, guest_memfd, memslots, attributes, vCPUs,
and the VMM touching its mappings.  A VM is an owner: its vm_id is its owner_id."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request, Response

from app.api import new_router
from app.deps import MapPath, OwnerPath, SessionId, registry
from app.models.common import UINT64_MAX
from app.models.kvm import (
    Access,
    AccessAnswer,
    GfnSources,
    GuestMemfdBody,
    HostAccessAnswer,
    HostAccessBody,
    KvmMemslot,
    MemoryAttributes,
    MemoryAttributesSet,
    MemoryRegion,
    PreFault,
    PreFaultAnswer,
    Vcpu,
    VcpuCreate,
    Vm,
    VmCreate,
    VmDetail,
    VmFile,
    Vms,
)
from app.service import kvm as svc

router = new_router("kvm")
VM = "/sessions/{sid}/vms/{vm_id}"
Gfn = Annotated[int, Query(ge=0, le=UINT64_MAX, description="gfn")]
VcpuPath = Annotated[int, Path(ge=0, le=2**31 - 1, description="vcpu id")]
MAX_GFN_END = 1 << 40  # 52-bit guest physical addresses


@router.post("/sessions/{sid}/vms", status_code=201, name="vm_create")
async def vm_create(request: Request, sid: SessionId, body: VmCreate) -> Vm:
    """KVM_CREATE_VM: a VM of a type (an owner of kind kvm)."""
    return await svc.vm_create(registry(request), sid, body)


@router.get("/sessions/{sid}/vms", name="vms")
async def vms(request: Request, sid: SessionId) -> Vms:
    return await svc.vms(registry(request), sid)


@router.get(VM, name="vm")
async def vm(
    request: Request,
    sid: SessionId,
    vm_id: OwnerPath,
    start: Gfn = 0,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> VmDetail:
    """The VM with its memslots, attribute runs and secondary-MMU runs (from gfn start)."""
    return await svc.vm(registry(request), sid, vm_id, start, limit)


@router.delete(VM, status_code=204, name="vm_close")
async def vm_close(request: Request, sid: SessionId, vm_id: OwnerPath) -> Response:
    """close(vm_fd): the VM fd goes (its ioctls answer EBADF after it).  A guest_memfd
    the VM made holds a reference on it (kvm_gmem_create: kvm_get_kvm), so with one
    open or mapped the VM lives on, memslots and mappings intact, until the last is
    closed; then kvm_destroy_vm frees its memslots, secondary MMU and attributes, and
    the VM answers 404.  rfc-v2: destroyed at once; its registrations on the memfds
    stay (patch 13's vm_is_dead): another VM registering them meets EPERM."""
    await svc.vm_close(registry(request), sid, vm_id)
    return Response(status_code=204)


@router.get(VM + "/capabilities", name="vm_capabilities")
async def capabilities(request: Request, sid: SessionId, vm_id: OwnerPath) -> dict[str, int]:
    """KVM_CHECK_EXTENSION on the VM fd (mainline x86 with a TDP MMU; rfc-v2: 5.15)."""
    return await svc.capabilities(registry(request), sid, vm_id)


@router.post(VM + "/guest_memfd", status_code=201, name="vm_guest_memfd")
async def guest_memfd(
    request: Request, sid: SessionId, vm_id: OwnerPath, body: GuestMemfdBody
) -> VmFile:
    """KVM_CREATE_GUEST_MEMFD: a guest_memfd of this VM."""
    return await svc.guest_memfd(registry(request), sid, vm_id, body)


@router.post(VM + "/memory_regions", name="set_user_memory_region")
async def memory_region(
    request: Request, sid: SessionId, vm_id: OwnerPath, body: MemoryRegion
) -> KvmMemslot:
    """KVM_SET_USER_MEMORY_REGION2 (rfc-v2: the RFC's region_ext with KVM_MEM_FD);
    memory_size 0 deletes (the answer is the slot as it was, deleted: true)."""
    return await svc.memory_region(registry(request), sid, vm_id, body)


@router.post(VM + "/memory_attributes", name="set_memory_attributes")
async def set_attributes(
    request: Request, sid: SessionId, vm_id: OwnerPath, body: MemoryAttributesSet
) -> MemoryAttributes:
    """KVM_SET_MEMORY_ATTRIBUTES; the answer: the range's runs after it."""
    return await svc.memory_attributes(registry(request), sid, vm_id, body)


@router.get(VM + "/memory_attributes", name="memory_attributes")
async def get_attributes(
    request: Request,
    sid: SessionId,
    vm_id: OwnerPath,
    start: Gfn = 0,
    end: Gfn = MAX_GFN_END,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> MemoryAttributes:
    """Runs of gfns [start, end) (the kernel has no getter; the simulator shows it)."""
    return await svc.attributes(registry(request), sid, vm_id, start, max(start, end), limit)


@router.get(VM + "/gfns", name="vm_gfns")
async def gfns(
    request: Request,
    sid: SessionId,
    vm_id: OwnerPath,
    start: Gfn = 0,
    end: Gfn = MAX_GFN_END,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> GfnSources:
    """Where each gfn of [start, end) is served from, as runs (memslot, attributes, file
    page, and what the secondary MMU maps now); `next` pages on."""
    return await svc.gfns(registry(request), sid, vm_id, start, max(start, end), limit)


@router.post(VM + "/vcpus", status_code=201, name="vcpu_create")
async def vcpu_create(
    request: Request, sid: SessionId, vm_id: OwnerPath, body: VcpuCreate | None = None
) -> Vcpu:
    """KVM_CREATE_VCPU: ids 0, 1, ... per VM."""
    return await svc.vcpu_create(registry(request), sid, vm_id)


@router.post(VM + "/vcpus/{n}/access", name="vcpu_access")
async def vcpu_access(
    request: Request, sid: SessionId, vm_id: OwnerPath, n: VcpuPath, body: Access
) -> AccessAnswer:
    """KVM_RUN for one guest access of a byte at gpa: an exit is an answer, not an error."""
    return await svc.vcpu_access(registry(request), sid, vm_id, n, body)


@router.post(VM + "/vcpus/{n}/pre_fault_memory", name="pre_fault_memory")
async def pre_fault_memory(
    request: Request, sid: SessionId, vm_id: OwnerPath, n: VcpuPath, body: PreFault
) -> PreFaultAnswer:
    """KVM_PRE_FAULT_MEMORY: map ahead as read faults; the answer is what is left."""
    return await svc.pre_fault_memory(registry(request), sid, vm_id, n, body)


@router.post("/sessions/{sid}/mappings/{map_id}/access", name="mapping_access")
async def mapping_access(
    request: Request, sid: SessionId, map_id: MapPath, body: HostAccessBody
) -> HostAccessAnswer:
    """The VMM touches its mapping: a signal (SIGBUS, SIGSEGV) or the byte."""
    return await svc.mapping_access(registry(request), sid, map_id, body)
