"""The KVM side's ops of the session log: one handler per ioctl (KVM_CONTRACT.md names).

ops.py registers them (KVM_SPECS: name, args model, handler, limit check).  Each
handler is one engine call (one event), so trace, replay, rewind, preview and diff
work on them as on the file ops.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from app.engine import AccessResult, Machine, VmInfo, VmMemslot
from app.errors import NotFound, TooMany
from app.models.kvm import (
    AccessAnswer,
    AccessArgs,
    AttrExtent,
    ExitOut,
    GuestMemfdArgs,
    HostAccessAnswer,
    HostAccessArgs,
    KvmMemslot,
    MemoryAttributes,
    MemoryAttributesArgs,
    MemoryRegionArgs,
    PreFaultAnswer,
    PreFaultArgs,
    Vcpu,
    Vm,
    VmArgs,
    VmCreate,
    VmFile,
)
from app.service.convert import INT_MAX, INT_MIN, file_fields
from app.settings import Settings

MAX_OWNERS = 8  # the engine's owner table (SS_MAX_OWNERS), VMs included


def vm_arg(m: Machine, vm_id: str, op: str) -> int:
    """The engine's number for an API vm id of an existing VM (else 404)."""
    if vm_id.isascii() and vm_id.isdigit() and str(int(vm_id)) == vm_id:
        value = int(vm_id)
        if value <= INT_MAX and m.is_vm(value):
            return value
    raise NotFound(f"no VM {vm_id[:64]!r}", op=op)


def slot_out(s: VmMemslot, deleted: bool = False) -> KvmMemslot:
    return KvmMemslot(**s._asdict(), deleted=deleted)


def vm_out(info: VmInfo) -> Vm:
    return Vm(
        vm_id=str(info.id),
        name=info.name,
        type=info.type,
        memslots=[slot_out(s) for s in info.memslots],
        vcpus=info.nvcpus,
        closed=info.closed,
    )


def vm_create(m: Machine, a: VmCreate) -> Vm:
    vm = m.vm_create(a.name.split("\0", 1)[0], a.type)
    return vm_out(m.vm(vm))


def vm_guest_memfd(m: Machine, a: GuestMemfdArgs) -> VmFile:
    vm = vm_arg(m, a.vm_id, "KVM_CREATE_GUEST_MEMFD")
    fd = m.vm_guest_memfd(vm, a.size, a.flags)
    return VmFile(**file_fields(m.file(fd)), vm_id=a.vm_id)


def set_user_memory_region(m: Machine, a: MemoryRegionArgs) -> KvmMemslot:
    vm = vm_arg(m, a.vm_id, "KVM_SET_USER_MEMORY_REGION2")
    old = next((s for s in m.vm(vm).memslots if s.slot == a.slot), None)
    now = m.set_user_memory_region(
        vm,
        a.slot,
        a.flags,
        a.guest_phys_addr,
        a.memory_size,
        a.userspace_addr,
        a.guest_memfd_offset,
        a.guest_memfd,
        a.fd,
        a.private_fd,
    )
    if now is not None:
        return slot_out(now)
    assert old is not None  # a deletion succeeded: the slot was there
    return slot_out(old, deleted=True)


def set_memory_attributes(m: Machine, a: MemoryAttributesArgs) -> MemoryAttributes:
    vm = vm_arg(m, a.vm_id, "KVM_SET_MEMORY_ATTRIBUTES")
    m.set_memory_attributes(vm, a.address, a.size, a.attributes, a.flags)
    seq = m.event_count
    start, end = a.address >> 12, (a.address + a.size) >> 12
    return MemoryAttributes(extents=attr_extents(m, vm, start, end, 1000), seq=seq)


def attr_extents(m: Machine, vm: int, start: int, end: int, limit: int) -> list[AttrExtent]:
    """Runs of [start, end) with the gaps between attribute runs as runs without."""
    out: list[AttrExtent] = []
    cur = start
    for r in m.attr_runs(vm, start, end, limit):
        if r.start > cur:
            out.append(AttrExtent(start=cur, end=r.start, attributes=[]))
        out.append(AttrExtent(start=r.start, end=r.end, attributes=r.attributes))
        cur = r.end
    if cur < end:
        out.append(AttrExtent(start=cur, end=end, attributes=[]))
    return out[:limit]


def vm_close(m: Machine, a: VmArgs) -> None:
    """close(vm_fd): destroyed now, or with the last guest_memfd it made (then 404)."""
    m.vm_close(vm_arg(m, a.vm_id, "close(vm_fd)"))


def vcpu_create(m: Machine, a: VmArgs) -> Vcpu:
    return Vcpu(vcpu_id=m.vcpu_create(vm_arg(m, a.vm_id, "KVM_CREATE_VCPU")))


def access_out(r: AccessResult) -> AccessAnswer:
    ex = None
    if r.exit is not None:
        e = r.exit
        fault = e.reason == "KVM_EXIT_MEMORY_FAULT"
        ex = ExitOut(
            reason=e.reason,
            gpa=e.gpa,
            size=e.size,
            flags=e.flags if fault else None,
            errno=e.errno,
            type=e.type,
        )
    return AccessAnswer(
        exit=ex,
        backing=r.backing,
        fd=r.fd,
        index=r.index,
        pfn=r.pfn,
        order=r.order,
        value=r.value,
        pending=r.pending,
        seq=r.seq,
    )


def vcpu_access(m: Machine, a: AccessArgs) -> AccessAnswer:
    vm = vm_arg(m, a.vm_id, "KVM_RUN")
    if a.vcpu_id >= m.vm(vm).nvcpus:
        raise NotFound(f"VM {a.vm_id} has no vCPU {a.vcpu_id}", op="KVM_RUN")
    return access_out(m.vcpu_access(vm, a.vcpu_id, a.gpa, a.write, a.private, a.value))


def pre_fault_memory(m: Machine, a: PreFaultArgs) -> PreFaultAnswer:
    vm = vm_arg(m, a.vm_id, "KVM_PRE_FAULT_MEMORY")
    if a.vcpu_id >= m.vm(vm).nvcpus:
        raise NotFound(f"VM {a.vm_id} has no vCPU {a.vcpu_id}", op="KVM_PRE_FAULT_MEMORY")
    gpa, size = m.pre_fault_memory(vm, a.vcpu_id, a.gpa, a.size, a.flags)
    return PreFaultAnswer(gpa=gpa, size=size, seq=m.event_count)


def mapping_access(m: Machine, a: HostAccessArgs) -> HostAccessAnswer:
    if not INT_MIN <= a.map_id <= INT_MAX:
        raise NotFound(f"no mapping with id {a.map_id}", op="mapping_access")
    try:
        m.mapping_addr(a.map_id)
    except LookupError:
        raise NotFound(f"no mapping with id {a.map_id}", op="mapping_access") from None
    r = m.mapping_access(a.map_id, a.offset, a.write, a.value)
    return HostAccessAnswer(signal=r.signal, value=r.value, seq=r.seq)


def _check_vm_create(s: Settings, m: Machine, a: VmCreate) -> None:
    if len(m.owners()) >= MAX_OWNERS:
        raise TooMany(
            f"the session has {MAX_OWNERS} owners (VMs included), the engine's limit max_owners",
            op="KVM_CREATE_VM",
            limit="max_owners",
        )


Handler = Callable[[Machine, Any], BaseModel | None]
Check = Callable[[Settings, Machine, Any], None]

Heavy = Callable[[Machine, Any], bool]
BIG_BYTES = 1024 * 4096  # a pre-fault of more runs in a worker thread (bounded by
# the frames it can allocate: it stops at the first page that fails)


KVM_SPECS: list[tuple[str, type[BaseModel], Handler, Check | None]] = [
    ("vm_create", VmCreate, vm_create, _check_vm_create),
    ("vm_guest_memfd", GuestMemfdArgs, vm_guest_memfd, None),
    ("set_user_memory_region", MemoryRegionArgs, set_user_memory_region, None),
    ("set_memory_attributes", MemoryAttributesArgs, set_memory_attributes, None),
    ("vcpu_create", VmArgs, vcpu_create, None),
    ("vm_close", VmArgs, vm_close, None),
    ("vcpu_access", AccessArgs, vcpu_access, None),
    ("mapping_access", HostAccessArgs, mapping_access, None),
    ("pre_fault_memory", PreFaultArgs, pre_fault_memory, None),
]


# ops that may take long (the registry runs them off the event loop)
def _many_mapped(m: Machine, a: Any) -> bool:
    """A change that may zap much of a VM's secondary MMU (a deletion, a move)."""
    try:
        return m.owner(vm_arg(m, a.vm_id, "vm")).nmapped > BIG_BYTES // 4096
    except (NotFound, LookupError):
        return False


KVM_HEAVY: dict[str, Heavy] = {
    "pre_fault_memory": lambda m, a: a.size > BIG_BYTES,
    "set_memory_attributes": lambda m, a: a.size > BIG_BYTES and _many_mapped(m, a),
    "set_user_memory_region": _many_mapped,
    "vm_close": _many_mapped,
}
