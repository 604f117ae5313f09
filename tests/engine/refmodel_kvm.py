"""The reference model of the KVM side: VMs, attributes, vCPUs (memslots: refmodel_kvm_slots.py).

Written from the shared KVM.md, the kernel source (virt/kvm/kvm_main.c
kvm_set_memory_region(), virt/kvm/guest_memfd.c kvm_gmem_create() / kvm_gmem_bind(),
kvm_vm_ioctl_set_mem_attributes()) and this machine's measurements
(tests/oracle/kvm_binding_cases.py), not from the engine. It extends the file model
(tests/engine/refmodel.py): a VM is an owner of kind "kvm" (owner ids and VM ids share
one counter), a guest_memfd is one of its Inodes. The access path, the VMM's address
space and the secondary MMU are in refmodel_kvm_access.py, GUP pins in
refmodel_kvm_pin.py.

Every method takes the op's args as the session log spells them (KVM_CONTRACT.md) and
returns what the engine's face should, or raises ModelError(errno name).

Attributes are kept as runs: a sorted list of disjoint [start, end) gfn ranges that are
private (everything else is shared), so a 1 TiB VM with three runs is three pairs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.oracle import call_args
from tests.engine.refmodel import PAGE, Inode, ModelError
from tests.engine.refmodel_kvm_pin import PinMixin
from tests.engine.refmodel_kvm_slots import (
    ATTRS,
    DEFAULT,
    INIT_SHARED,
    KVM_OPS,
    KVM_QUIRKS,
    MAX_OWNERS,
    MAX_VCPUS,
    MEM_SLOTS_NUM,
    MMAP,
    PRIVATE_ATTR,
    SNP,
    TDX,
    U64,
    VM_TYPES,
    Vm,
    bits,
    set_runs,
)

__all__ = ["DEFAULT", "KVM_QUIRKS", "KvmModel", "set_runs"]


class KvmModel(PinMixin):
    """The file model plus the KVM side (see the module docstring)."""

    def __init__(
        self,
        profile: str = "guest-memfd",
        phys_pages: int = 1024,
        kvm_quirks: Iterable[str] = (),
        **kw: Any,
    ) -> None:
        super().__init__(profile=profile, phys_pages=phys_pages, **kw)
        self.kvm_quirks = frozenset(kvm_quirks)
        assert self.kvm_quirks <= KVM_QUIRKS.keys(), self.kvm_quirks - KVM_QUIRKS.keys()
        self.vms: dict[str, Vm] = {}
        self.gmem_vm: dict[Inode, str] = {}  # guest_memfd -> the VM it belongs to

    # ---- VMs ----
    def vm_create(self, name: str, type: str | int = "KVM_X86_DEFAULT_VM") -> str:
        def run() -> str:
            types = VM_TYPES[self.profile]
            if type not in types:  # an unknown name: the kernel's unknown value
                raise ModelError("EINVAL")
            if len(self.owner_kinds) == MAX_OWNERS:
                raise ModelError("ENOSPC")
            self.owner_kinds.append("kvm")
            vm_id = str(len(self.owner_kinds) - 1)
            self.vms[vm_id] = Vm(vm_id, types[str(type)])
            return vm_id

        return self._call("vm_create", run)  # type: ignore[return-value]

    def capabilities(self, vm_id: str) -> dict[str, int]:
        """KVM_CHECK_EXTENSION on the VM fd, mainline x86 with a TDP MMU (rfc-v2: 5.15)."""
        vm = self._vm(vm_id)
        if self.rfc:
            gmem = {"KVM_CAP_GUEST_MEMFD": 0, "KVM_CAP_GUEST_MEMFD_FLAGS": 0}
            return gmem | {"KVM_CAP_MEMORY_ATTRIBUTES": 0, "KVM_CAP_NR_MEMSLOTS": MEM_SLOTS_NUM}
        return {
            "KVM_CAP_GUEST_MEMFD": 1,
            "KVM_CAP_GUEST_MEMFD_FLAGS": MMAP if vm.has_private else MMAP | INIT_SHARED,
            "KVM_CAP_MEMORY_ATTRIBUTES": PRIVATE_ATTR if vm.has_private else 0,
            "KVM_CAP_NR_MEMSLOTS": MEM_SLOTS_NUM,
            "KVM_CAP_USER_MEMORY2": 1,
            "KVM_CAP_MEMORY_FAULT_INFO": 1,
            "KVM_CAP_PRE_FAULT_MEMORY": 1,
            "KVM_CAP_MULTI_ADDRESS_SPACE": 1 if vm.has_private else 2,  # SMM: not with private
            "KVM_CAP_READONLY_MEM": 0 if vm.type in (SNP, TDX) else 1,  # protected state
        }

    def vm_guest_memfd(self, vm_id: str, size: int, flags: Iterable[str | int] = ()) -> int:
        """KVM_CREATE_GUEST_MEMFD: kvm_gmem_create()'s checks, flags first."""
        f = bits(flags, {"GUEST_MEMFD_FLAG_MMAP": MMAP, "GUEST_MEMFD_FLAG_INIT_SHARED": 2}, 1 << 63)

        def run() -> int:
            vm = self._vm(vm_id)
            if self.rfc:
                raise ModelError("ENOTTY")  # no such VM ioctl in 5.15
            supported = MMAP if vm.has_private else MMAP | INIT_SHARED
            size_s = size & U64 if size & U64 < 2**63 else -1  # loff_t
            if f & ~supported or size_s <= 0 or size_s % PAGE:
                raise ModelError("EINVAL")
            ino = Inode("guest_memfd", f, size=size_s)
            self.gmem_vm[ino] = vm.vm_id
            return self._install(ino)

        return self._call("KVM_CREATE_GUEST_MEMFD", run)  # type: ignore[return-value]

    def vcpu_create(self, vm_id: str) -> int:
        def run() -> int:
            vm = self._vm(vm_id)
            if vm.vcpus == MAX_VCPUS:
                raise ModelError("EINVAL")
            vm.vcpus += 1
            return vm.vcpus - 1

        return self._call("vcpu_create", run)  # type: ignore[return-value]

    def vm_close(self, vm_id: str) -> None:
        """close(vm_fd): destroyed after this op unless a guest_memfd it made is open or
        mapped (then when the last goes: _kvm_sync)."""

        def run() -> None:
            self._vm(vm_id).closed = True

        self._call("close(vm_fd)", run)

    # ---- attributes ----
    def set_memory_attributes(
        self, vm_id: str, address: int, size: int, attributes: Iterable[str | int], flags: int = 0
    ) -> None:
        a = bits(attributes, ATTRS, 1 << 63) & U64
        addr, n = address & U64, size & U64

        def run() -> None:
            vm = self._vm(vm_id)
            if self.rfc:
                raise ModelError("ENOTTY")  # no such VM ioctl in 5.15
            supported = PRIVATE_ATTR if vm.has_private else 0
            if flags or a & ~supported:
                raise ModelError("EINVAL")
            if n == 0 or addr + n > U64 or addr % PAGE or n % PAGE:
                raise ModelError("EINVAL")
            start, end = addr // PAGE, (addr + n) // PAGE
            runs = set_runs(vm.private, start, end, bool(a & PRIVATE_ATTR))
            if runs == vm.private:
                return  # kvm_range_has_memory_attributes(): nothing changes
            vm.private = runs
            for gfn in [g for g in vm.mmu if start <= g < end]:
                self._zap(vm, gfn)  # kvm_pre_set_memory_attributes() unmaps the range

        self._call("KVM_SET_MEMORY_ATTRIBUTES", run)

    def attribute_runs(self, vm_id: str, start: int = 0, end: int = U64) -> list[dict[str, Any]]:
        """The API's view: runs of gfns in [start, end), private or not."""
        vm, out, pos = self.vms.get(str(vm_id)), [], start
        if vm is None or vm.dead:
            raise ModelError("EINVAL")
        for a, b in vm.private:
            a, b = max(a, start), min(b, end)
            if a >= b:
                continue
            if pos < a:
                out.append({"start": pos, "end": a, "attributes": []})
            out.append({"start": a, "end": b, "attributes": ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]})
            pos = b
        if pos < end:
            out.append({"start": pos, "end": end, "attributes": []})
        return out

    # ---- the log's steps, as app.oracle_kvm.KvmKernel.run answers them ----
    def run(self, op: str, args: dict[str, Any]) -> tuple[bool, object]:
        """(True, value) or (False, errno name), for the contract's op names and the
        file ops of app.oracle.call_args."""
        if op == "vm_capabilities":
            op, args = "capabilities", args
        if op in KVM_OPS:
            name, kw = op, dict(args)
        else:
            name, kw = call_args(op, args)
        try:
            value = getattr(self, name)(**kw)
        except ModelError as e:
            return False, e.name
        return True, None if name in ("fallocate", "close", "munmap", "vm_close") else value
