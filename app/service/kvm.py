"""The KVM side of the service: each ioctl one op of the log; the views read under the
session's lock."""

from __future__ import annotations

from typing import cast

from app.models.guest import GfnRun
from app.models.kvm import (
    Access,
    AccessAnswer,
    AccessArgs,
    GfnSourceRun,
    GfnSources,
    GuestMemfdArgs,
    GuestMemfdBody,
    HostAccessAnswer,
    HostAccessArgs,
    HostAccessBody,
    KvmMemslot,
    MemoryAttributes,
    MemoryAttributesArgs,
    MemoryAttributesSet,
    MemoryRegion,
    MemoryRegionArgs,
    PreFault,
    PreFaultAnswer,
    PreFaultArgs,
    Vcpu,
    Vm,
    VmArgs,
    VmCreate,
    VmDetail,
    VmFile,
    Vms,
)
from app.registry import Registry
from app.service.kvm_ops import attr_extents, vm_arg, vm_out
from app.service.runner import execute


async def vm_create(reg: Registry, sid: str, body: VmCreate) -> Vm:
    return cast(Vm, await execute(reg, sid, "vm_create", body))


async def guest_memfd(reg: Registry, sid: str, vm_id: str, body: GuestMemfdBody) -> VmFile:
    args = GuestMemfdArgs(vm_id=vm_id, **body.model_dump())
    return cast(VmFile, await execute(reg, sid, "vm_guest_memfd", args))


async def memory_region(reg: Registry, sid: str, vm_id: str, body: MemoryRegion) -> KvmMemslot:
    args = MemoryRegionArgs(vm_id=vm_id, **body.model_dump())
    return cast(KvmMemslot, await execute(reg, sid, "set_user_memory_region", args))


async def memory_attributes(
    reg: Registry, sid: str, vm_id: str, body: MemoryAttributesSet
) -> MemoryAttributes:
    args = MemoryAttributesArgs(vm_id=vm_id, **body.model_dump())
    return cast(MemoryAttributes, await execute(reg, sid, "set_memory_attributes", args))


async def vm_close(reg: Registry, sid: str, vm_id: str) -> None:
    await execute(reg, sid, "vm_close", VmArgs(vm_id=vm_id))


async def vcpu_create(reg: Registry, sid: str, vm_id: str) -> Vcpu:
    return cast(Vcpu, await execute(reg, sid, "vcpu_create", VmArgs(vm_id=vm_id)))


async def vcpu_access(reg: Registry, sid: str, vm_id: str, vcpu: int, body: Access) -> AccessAnswer:
    args = AccessArgs(vm_id=vm_id, vcpu_id=vcpu, **body.model_dump())
    return cast(AccessAnswer, await execute(reg, sid, "vcpu_access", args))


async def pre_fault_memory(
    reg: Registry, sid: str, vm_id: str, vcpu: int, body: PreFault
) -> PreFaultAnswer:
    args = PreFaultArgs(vm_id=vm_id, vcpu_id=vcpu, **body.model_dump())
    return cast(PreFaultAnswer, await execute(reg, sid, "pre_fault_memory", args))


async def mapping_access(
    reg: Registry, sid: str, map_id: int, body: HostAccessBody
) -> HostAccessAnswer:
    args = HostAccessArgs(map_id=map_id, **body.model_dump())
    return cast(HostAccessAnswer, await execute(reg, sid, "mapping_access", args))


# ---- views ----
async def vms(reg: Registry, sid: str) -> Vms:
    s = reg.get(sid)
    async with s.lock:
        return Vms(vms=[vm_out(v) for v in s.machine.vms()])


async def vm(reg: Registry, sid: str, vm_id: str, start: int, limit: int) -> VmDetail:
    s = reg.get(sid)
    async with s.lock:
        m = s.machine
        v = vm_arg(m, vm_id, "vm")
        info = m.vm(v)
        runs = m.gfn_runs(v, start, limit + 1)
        attrs = [a for a in attr_extents(m, v, 0, 2**64 - 1, limit) if a.attributes]
    more = len(runs) > limit
    runs = runs[:limit]
    return VmDetail(
        **vm_out(info).model_dump(),
        attributes=attrs,
        mapped=[GfnRun(gfn=r.gfn, npages=r.npages, pfn=r.pfn, order=r.order) for r in runs],
        next_gfn=runs[-1].gfn + runs[-1].npages if more and runs else None,
        nattr_runs=info.nattr_runs,
        attr_bytes=info.attr_bytes,
    )


async def capabilities(reg: Registry, sid: str, vm_id: str) -> dict[str, int]:
    s = reg.get(sid)
    async with s.lock:
        return s.machine.vm_caps(vm_arg(s.machine, vm_id, "KVM_CHECK_EXTENSION"))


async def attributes(
    reg: Registry, sid: str, vm_id: str, start: int, end: int, limit: int
) -> MemoryAttributes:
    s = reg.get(sid)
    async with s.lock:
        v = vm_arg(s.machine, vm_id, "memory_attributes")
        return MemoryAttributes(extents=attr_extents(s.machine, v, start, end, limit))


async def gfns(reg: Registry, sid: str, vm_id: str, start: int, end: int, limit: int) -> GfnSources:
    s = reg.get(sid)
    async with s.lock:
        v = vm_arg(s.machine, vm_id, "gfns")
        runs, nxt = s.machine.gfn_sources(v, start, end, limit)
    return GfnSources(
        runs=[GfnSourceRun(**r._asdict()) for r in runs], next=nxt if nxt < end else None
    )
