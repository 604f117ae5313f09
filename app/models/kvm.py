"""The KVM side of the API (API.md "The KVM side"): bodies use the uapi field names.

Fields that are __u64 in the uapi structs take any JSON integer 0 .. 2^64 - 1: the
kernel (the engine) decides what is too big (EINVAL, not 422).  Flag, type and
attribute names are strings: one the kernel does not know is its EINVAL (409).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from app.models.common import Fd, OwnerId, UInt64, examples, utf8_name
from app.models.files import File
from app.models.guest import GfnRun

UInt32 = Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)]
Byte = Annotated[int, Field(strict=True, ge=0, le=255)]
KName = Annotated[str, Field(max_length=64)]
KNames = Annotated[list[KName], Field(max_length=16)]


class VmCreate(BaseModel):
    name: Annotated[str, AfterValidator(utf8_name), Field(max_length=63)] = "vm0"
    type: KName = Field(
        default="KVM_X86_DEFAULT_VM",
        description="KVM_X86_DEFAULT_VM | KVM_X86_SW_PROTECTED_VM | KVM_X86_SNP_VM | "
        "KVM_X86_TDX_VM (rfc-v2: the default only); another name is EINVAL",
    )
    model_config = examples({"name": "vm0", "type": "KVM_X86_SW_PROTECTED_VM"})


class KvmMemslot(BaseModel):
    """A memslot as KVM holds it (guest-memfd: guest_memfd fields; rfc-v2: fd and
    private_fd, userspace_addr the offset into both)."""

    slot: int
    flags: list[str]
    guest_phys_addr: int
    memory_size: int
    userspace_addr: int
    guest_memfd_offset: int = 0
    guest_memfd: int | None = Field(default=None, description="its fd; null: none or closed")
    fd: int | None = None
    private_fd: int | None = None
    gmem_closed: bool = Field(default=False, description="bound to a guest_memfd that was closed")
    gmem_only: bool = Field(
        default=False, description="KVM_MEMSLOT_GMEM_ONLY: an mmap-able guest_memfd"
    )
    deleted: bool = Field(
        default=False, description="memory_size 0 deleted it (the slot as it was)"
    )
    model_config = examples(
        {
            "slot": 0,
            "flags": ["KVM_MEM_GUEST_MEMFD"],
            "guest_phys_addr": 0,
            "memory_size": 2097152,
            "userspace_addr": 139637974630400,
            "guest_memfd_offset": 0,
            "guest_memfd": 3,
        }
    )


class Vm(BaseModel):
    vm_id: str
    name: str
    type: str
    memslots: list[KvmMemslot]
    vcpus: int
    closed: bool = Field(
        False,
        description="the VM fd is closed (DELETE): it lives on, ioctl-less, while a "
        "guest_memfd it made is open or mapped; then it is destroyed (404)",
    )
    model_config = examples(
        {"vm_id": "0", "name": "vm0", "type": "KVM_X86_DEFAULT_VM", "memslots": [], "vcpus": 0}
    )


class AttrExtent(BaseModel):
    start: int = Field(description="gfn")
    end: int = Field(description="gfn, exclusive")
    attributes: list[str]
    model_config = examples(
        {"start": 0, "end": 512, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]}
    )


class MemoryAttributes(BaseModel):
    extents: list[AttrExtent]
    seq: int | None = Field(default=None, description="POST: engine event seq of the call")
    model_config = examples(
        {"extents": [{"start": 0, "end": 512, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]}]}
    )


class VmDetail(Vm):
    attributes: list[AttrExtent] = Field(description="runs of gfns with attributes")
    mapped: list[GfnRun] = Field(description="the secondary MMU, as runs")
    next_gfn: int | None = Field(
        default=None, description="more MMU runs from this gfn on (?start=)"
    )
    nattr_runs: int
    attr_bytes: int = Field(description="memory the attribute runs take")


class Vms(BaseModel):
    vms: list[Vm]
    model_config = examples(
        {
            "vms": [
                {
                    "vm_id": "0",
                    "name": "vm0",
                    "type": "KVM_X86_DEFAULT_VM",
                    "memslots": [],
                    "vcpus": 1,
                }
            ]
        }
    )


class VmFile(File):
    vm_id: str


class GuestMemfdBody(BaseModel):
    size: UInt64
    flags: KNames = Field(default_factory=list)
    model_config = examples({"size": 2097152, "flags": []})


class MemoryRegion(BaseModel):
    slot: UInt32 = 0
    flags: KNames = Field(default_factory=list)
    guest_phys_addr: UInt64 = 0
    memory_size: UInt64 = 0
    userspace_addr: UInt64 = 0
    guest_memfd_offset: UInt64 = 0
    guest_memfd: Fd = Field(default=0, description="__u32 fd; ignored without KVM_MEM_GUEST_MEMFD")
    fd: Fd = Field(default=0, description="rfc-v2: the shared file")
    private_fd: Fd = Field(default=-1, description="rfc-v2: the private file, -1 for none")
    model_config = examples(
        {
            "slot": 0,
            "flags": ["KVM_MEM_GUEST_MEMFD"],
            "guest_phys_addr": 0,
            "memory_size": 2097152,
            "userspace_addr": 139637974630400,
            "guest_memfd_offset": 0,
            "guest_memfd": 3,
        },
        {
            "slot": 0,
            "flags": ["KVM_MEM_FD"],
            "guest_phys_addr": 0,
            "memory_size": 2097152,
            "userspace_addr": 0,
            "fd": 3,
            "private_fd": 4,
        },
    )


class MemoryAttributesSet(BaseModel):
    address: UInt64
    size: UInt64
    attributes: KNames = Field(default_factory=list)
    flags: UInt64 = 0
    model_config = examples(
        {"address": 0, "size": 4096, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"], "flags": 0}
    )


class Vcpu(BaseModel):
    vcpu_id: int
    model_config = examples({"vcpu_id": 0})


class VcpuCreate(BaseModel):
    model_config = examples({})


class Access(BaseModel):
    gpa: UInt64
    write: bool = Field(default=False, strict=True)
    private: bool | None = Field(
        None,
        strict=True,
        description="the guest's view (TDX shared bit, SNP C-bit, rfc-v2's private access); "
        "null: the attributes decide (default and SW_PROTECTED VMs), shared in rfc-v2",
    )
    value: Byte = Field(default=0, description="the byte a write stores")
    model_config = examples({"gpa": 4096, "write": True, "private": None, "value": 90})


class ExitOut(BaseModel):
    reason: str
    gpa: int
    size: int
    flags: list[str] | None = Field(default=None, description="KVM_EXIT_MEMORY_FAULT")
    errno: str | None = Field(default=None, description="KVM_EXIT_MEMORY_FAULT: KVM_RUN's errno")
    type: str | None = Field(default=None, description="KVM_EXIT_MEMORY_ERROR: KVM_EXIT_MEM_MAP_*")
    model_config = examples(
        {
            "reason": "KVM_EXIT_MEMORY_ERROR",
            "gpa": 4096,
            "size": 4096,
            "type": "KVM_EXIT_MEM_MAP_PRIVATE",
        }
    )


class AccessAnswer(BaseModel):
    exit: ExitOut | None
    backing: str | None = Field(description='"private" | "shared" | null (an exit)')
    fd: int | None
    index: int | None
    pfn: int | None
    order: int | None
    value: int | None = Field(description="the byte at gpa after the access")
    pending: bool = Field(
        False,
        description="rfc-v2: the vCPU sleeps on a page get_lock_pfn holds; the access "
        "is retried at its put_unlock_pfn (a wake event ends it)",
    )
    seq: int = Field(description="engine event seq of the call")
    model_config = examples(
        {
            "exit": None,
            "backing": "shared",
            "fd": 4,
            "index": 1,
            "pfn": 1024,
            "order": 0,
            "value": 90,
            "seq": 9,
        },
        {
            "exit": {
                "reason": "KVM_EXIT_MEMORY_FAULT",
                "flags": ["KVM_MEMORY_EXIT_FLAG_PRIVATE"],
                "gpa": 8192,
                "size": 4096,
                "errno": "EFAULT",
            },
            "backing": None,
            "fd": None,
            "index": None,
            "pfn": None,
            "order": None,
            "value": None,
            "seq": 10,
        },
    )


class PreFault(BaseModel):
    gpa: UInt64
    size: UInt64
    flags: UInt64 = 0
    model_config = examples({"gpa": 0, "size": 2097152, "flags": 0})


class PreFaultAnswer(BaseModel):
    gpa: int = Field(description="where the rest starts")
    size: int = Field(description="what is left (0: all mapped)")
    seq: int = Field(description="engine event seq of the call")
    model_config = examples({"gpa": 2097152, "size": 0, "seq": 12})


class HostAccessBody(BaseModel):
    offset: UInt64 = Field(description="bytes into the mapping")
    write: bool = Field(default=False, strict=True)
    value: Byte = 0
    model_config = examples({"offset": 4096, "write": False, "value": 0})


class HostAccessAnswer(BaseModel):
    signal: str | None = Field(description='null | "SIGBUS" | "SIGSEGV"')
    value: int | None = Field(description="the byte read (after a write: the byte written)")
    seq: int
    model_config = examples({"signal": None, "value": 90, "seq": 11})


_SOURCE = {
    "start": 16,
    "end": 17,
    "source": "private",
    "slot": 0,
    "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"],
    "fd": 3,
    "index": 16,
    "mapped": True,
    "pfn": 1024,
    "order": 0,
}


class GfnSourceRun(BaseModel):
    start: int
    end: int
    source: str = Field(
        description="none (no memslot: MMIO) | private | shared_guest_memfd | "
        "shared_userspace_addr | shared_fd (rfc-v2) | unmapped_userspace_addr | "
        "closed_guest_memfd | poisoned (its guest_memfd page is hwpoisoned: the guest's "
        "access fails with EHWPOISON)"
    )
    slot: int | None
    attributes: list[str]
    fd: int | None
    index: int | None = Field(description="file page index at start")
    mapped: bool = Field(description="the secondary MMU maps these gfns now")
    pfn: int | None
    order: int | None
    model_config = examples(_SOURCE)


class GfnSources(BaseModel):
    runs: list[GfnSourceRun]
    next: int | None = Field(description="go on from this gfn (?start=), null when done")
    model_config = examples({"runs": [_SOURCE], "next": None})


# Op-log arguments: the body plus the ids from the path.
class VmArgs(BaseModel):
    vm_id: OwnerId


class GuestMemfdArgs(GuestMemfdBody, VmArgs):
    pass


class MemoryRegionArgs(MemoryRegion, VmArgs):
    pass


class MemoryAttributesArgs(MemoryAttributesSet, VmArgs):
    pass


class AccessArgs(Access, VmArgs):
    vcpu_id: Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]


class HostAccessArgs(HostAccessBody):
    map_id: Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]


class PreFaultArgs(PreFault, VmArgs):
    vcpu_id: Annotated[int, Field(strict=True, ge=0, le=2**31 - 1)]
