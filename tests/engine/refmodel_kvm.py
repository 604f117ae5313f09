"""The reference model of the KVM side: VMs, memslots, attributes, vCPUs.

Written from /work/shared/KVM.md, the kernel source (virt/kvm/kvm_main.c
kvm_set_memory_region(), virt/kvm/guest_memfd.c kvm_gmem_create() / kvm_gmem_bind(),
kvm_vm_ioctl_set_mem_attributes()) and this machine's measurements
(tests/oracle/kvm_binding_cases.py), not from the engine. It extends the file model
(tests/engine/refmodel.py): a VM is an owner of kind "kvm" (owner ids and VM ids share
one counter), a guest_memfd is one of its Inodes. The access path, the VMM's address
space and the secondary MMU are in refmodel_kvm_access.py.

Every method takes the op's args as the session log spells them (KVM_CONTRACT.md) and
returns what the engine's face should, or raises ModelError(errno name).

Attributes are kept as runs: a sorted list of disjoint [start, end) gfn ranges that are
private (everything else is shared), so a 1 TiB VM with three runs is three pairs.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.oracle import call_args
from tests.engine.refmodel import PAGE, Inode, ModelError
from tests.engine.refmodel import bits as _bits
from tests.engine.refmodel_kvm_access import AccessMixin, KSlot, Spte

U64 = 2**64 - 1
TASK_SIZE_MAX = 0x7FFF_FFFF_F000  # x86-64, 4-level paging: access_ok's limit
MEM_SLOTS_NUM = 32764
MAX_NR_PAGES = (1 << 31) - 1
MAX_VCPUS = 1024
MAX_GFN = (1 << 40) - 1  # 52 physical address bits
TDX_SHARED_GFN = 1 << 39  # the GPA's shared bit (51): its alias
MAX_OWNERS = 8  # the file model's owner limit (ENOSPC), VMs being owners
LOG_DIRTY, READONLY, GUEST_MEMFD = 0x1, 0x2, 0x4
MEM_FD = 0x4  # rfc-v2: KVM_MEM_FD has the same bit
MEM_FLAGS = {"KVM_MEM_LOG_DIRTY_PAGES": 1, "KVM_MEM_READONLY": 2, "KVM_MEM_GUEST_MEMFD": 4}
RFC_MEM_FLAGS = {"KVM_MEM_LOG_DIRTY_PAGES": 1, "KVM_MEM_READONLY": 2, "KVM_MEM_FD": 4}
PRIVATE_ATTR = 1 << 3
ATTRS = {"KVM_MEMORY_ATTRIBUTE_PRIVATE": PRIVATE_ATTR}
DEFAULT, SW_PROTECTED, SNP, TDX = 0, 1, 4, 5
VM_TYPES = {
    "rfc-v2": {"KVM_X86_DEFAULT_VM": DEFAULT},
    "guest-memfd": {
        "KVM_X86_DEFAULT_VM": DEFAULT,
        "KVM_X86_SW_PROTECTED_VM": SW_PROTECTED,
        "KVM_X86_SNP_VM": SNP,
        "KVM_X86_TDX_VM": TDX,
    },
}
MMAP, INIT_SHARED = 0x1, 0x2
KVM_OPS = (
    "vm_create",
    "capabilities",
    "vm_guest_memfd",
    "set_user_memory_region",
    "set_memory_attributes",
    "vcpu_create",
    "vcpu_access",
    "mapping_access",
)


def bits(
    names: Iterable[str | int] | str | int, table: dict[str, int], unknown: int = 1 << 31
) -> int:
    """The file model's bits, a name the kernel does not know being a bit it does not
    know (the contract: the kernel's answer to an unknown value)."""
    if isinstance(names, str | int):
        names = [names]
    return _bits([n if isinstance(n, int) else table.get(n, unknown) for n in names], table)


# Known engine divergences the model can imitate, so the property tests keep covering
# the rest (each pinned by a test in tests/engine/test_kvm_model.py).
KVM_QUIRKS = {
    "rfc_fd_slots_immutable": (
        "rfc-v2: the engine refuses (EINVAL) every modify of an fd-based slot (its "
        "documented choice); patch 06 "
        "refuses a request with KVM_MEM_FD and private_fd >= 0 (and, by its comment's "
        "intent, a private slot), so a shared-only slot (private_fd -1) can be modified"
    ),
}


@dataclass(eq=False)
class Vm:
    vm_id: str
    type: int
    slots: dict[int, KSlot] = field(default_factory=dict)  # slot id -> memslot
    private: list[tuple[int, int]] = field(default_factory=list)  # runs [start, end)
    vcpus: int = 0
    mmu: dict[int, Spte] = field(default_factory=dict)  # gfn -> what it maps

    @property
    def has_private(self) -> bool:
        return self.type != DEFAULT

    def is_private(self, gfn: int) -> bool:
        i = bisect.bisect_right(self.private, (gfn, U64 + 1)) - 1
        return i >= 0 and self.private[i][0] <= gfn < self.private[i][1]

    def slot_of(self, gfn: int) -> KSlot | None:
        """The address space 0 slot of gfn (SMM's space 1 serves no guest access here)."""
        return next(
            (
                s
                for s in self.slots.values()
                if s.slot >> 16 == 0 and s.gfn <= gfn < s.gfn + s.npages
            ),
            None,
        )


def set_runs(runs: list[tuple[int, int]], start: int, end: int, on: bool) -> list[tuple[int, int]]:
    """The runs with [start, end) made private (on) or shared: cut, insert, merge."""
    out = [(a, b) for a, b in runs if b <= start or end <= a]
    for a, b in runs:  # the parts of overlapping runs outside [start, end)
        if a < start < b or a < end < b:
            if a < start:
                out.append((a, start))
            if end < b:
                out.append((end, b))
    if on:
        out.append((start, end))
    out.sort()
    merged: list[tuple[int, int]] = []
    for a, b in out:
        if merged and merged[-1][1] >= a:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


class KvmModel(AccessMixin):
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

    def _vm(self, vm_id: str) -> Vm:
        vm = self.vms.get(str(vm_id))
        if vm is None:
            raise ModelError("EINVAL")  # the owner is not a VM (the engine's convention)
        return vm

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

    # ---- memslots ----
    def set_user_memory_region(
        self,
        vm_id: str,
        slot: int,
        flags: Iterable[str | int],
        guest_phys_addr: int,
        memory_size: int,
        userspace_addr: int,
        guest_memfd_offset: int = 0,
        guest_memfd: int = 0,
        fd: int | None = None,
        private_fd: int | None = None,
    ) -> None:
        f = bits(flags, RFC_MEM_FLAGS if self.rfc else MEM_FLAGS) & 0xFFFFFFFF
        gpa, size, ua = guest_phys_addr & U64, memory_size & U64, userspace_addr & U64
        off = guest_memfd_offset & U64

        def run() -> None:
            vm = self._vm(vm_id)
            spaces = 1 if vm.has_private else 2
            protected = vm.type in (SNP, TDX)
            self._region_checks(f, gpa, size, ua, off, slot & 0xFFFFFFFF, spaces, not protected)
            sid = slot & 0xFFFFFFFF  # (address space << 16) | id, checked above
            old = vm.slots.get(sid)
            if not size:
                if old is None:
                    raise ModelError("EINVAL")
                self._delete_slot(vm, old)
                return
            gfn, npages = gpa // PAGE, size // PAGE
            if old is not None:  # a modify
                if not self.rfc and (f & GUEST_MEMFD or old.gmem):
                    raise ModelError("EINVAL")  # guest_memfd slots are immutable
                # rfc-v2 patch 06 checks the request (KVM_MEM_FD with a private_fd);
                # its comment's intent, "private memslots are immutable", the old slot
                rfc_private = f & MEM_FD and isinstance(private_fd, int) and private_fd >= 0
                fd_slot = old.shared_ino is not None or f & MEM_FD
                quirk = "rfc_fd_slots_immutable" in self.kvm_quirks and fd_slot
                if self.rfc and (rfc_private or old.priv is not None or quirk):
                    raise ModelError("EINVAL")
                if ua != old.uaddr or npages != old.npages or (f ^ old.flags) & READONLY:
                    raise ModelError("EINVAL")
                if gfn == old.gfn:
                    old.flags = f  # nothing to change, or the flags only
                    return
            if any(
                s.slot != sid
                and s.slot >> 16 == sid >> 16  # overlaps count within one address space
                and gfn < s.gfn + s.npages
                and s.gfn < gfn + npages
                for s in vm.slots.values()
            ):
                raise ModelError("EEXIST")
            new = KSlot(sid, gfn, npages, f, ua)
            if self.rfc and f & MEM_FD:
                self._rfc_bind(vm, new, fd, private_fd)
            elif f & GUEST_MEMFD:
                self._gmem_bind(vm, new, guest_memfd, off)
            last = gfn + npages - 1  # kvm_arch_prepare_memory_region(), after the bind
            if not self.rfc and (last > MAX_GFN or (vm.type == TDX and last & TDX_SHARED_GFN)):
                raise ModelError("EINVAL")
            if old is not None:  # a move
                self._delete_slot(vm, old)
            vm.slots[sid] = new

        self._call("KVM_SET_USER_MEMORY_REGION2", run)

    def _region_checks(
        self,
        f: int,
        gpa: int,
        size: int,
        ua: int,
        off: int,
        slot: int,
        address_spaces: int,
        readonly_ok: bool = True,
    ) -> None:
        """kvm_set_memory_region()'s checks before it looks at the slots, in order."""
        valid = LOG_DIRTY | (MEM_FD if self.rfc else GUEST_MEMFD)
        if not self.rfc and f & GUEST_MEMFD:
            valid &= ~LOG_DIRTY
        elif readonly_ok:  # kvm_arch_has_readonly_mem(): not with protected state
            valid |= READONLY
        if f & ~valid or size % PAGE or gpa % PAGE:
            raise ModelError("EINVAL")
        if ua % PAGE or ua + size > TASK_SIZE_MAX:
            raise ModelError("EINVAL")  # access_ok()
        if not self.rfc and f & GUEST_MEMFD and (off % PAGE or off + size > U64):
            raise ModelError("EINVAL")
        if slot >> 16 >= address_spaces or slot & 0xFFFF >= MEM_SLOTS_NUM:
            raise ModelError("EINVAL")  # SMM's second address space: not with private memory
        if gpa + size > U64 or size // PAGE > MAX_NR_PAGES:
            raise ModelError("EINVAL")

    def _gmem_bind(self, vm: Vm, new: KSlot, fd: Any, off: int) -> None:
        """kvm_gmem_bind(): the fd, its kind, its VM, the range, the other bindings."""
        ino = self.fds.get(fd) if isinstance(fd, int) else None
        if ino is None:
            raise ModelError("EBADF")
        if ino.kind != "guest_memfd" or self.gmem_vm.get(ino) != vm.vm_id:
            raise ModelError("EINVAL")
        start, end = off // PAGE, off // PAGE + new.npages
        if off >= 2**63 or off + new.npages * PAGE > ino.size:
            raise ModelError("EINVAL")
        for s in vm.slots.values():
            if s.ino is ino and start < s.pgoff + s.npages and s.pgoff < end:
                raise ModelError("EINVAL")  # 6.18; later kernels EEXIST
        new.ino, new.pgoff, new.gmem = ino, start, True
        new.only = bool(ino.flags & MMAP)

    def _rfc_bind(self, vm: Vm, new: KSlot, fd: Any, private_fd: Any) -> None:
        """The RFC's fd-based region: a shared memfd, an optional private one, both
        registered with the VM (memfd_register_guest: another owner is EPERM)."""
        files = [self.fds.get(fd) if isinstance(fd, int) else None]
        if private_fd is not None and private_fd != -1:
            files.append(self.fds.get(private_fd) if isinstance(private_fd, int) else None)
        if any(i is None for i in files):
            raise ModelError("EBADF")
        owner = int(vm.vm_id)
        for ino in files:
            assert ino is not None
            if ino.kind != "memfd":
                raise ModelError("EINVAL")
            if ino.owners and owner not in ino.owners:
                raise ModelError("EPERM")
        for ino in files:
            assert ino is not None
            if owner not in ino.owners:
                ino.owners.append(owner)
        new.shared_ino = files[0]
        new.priv = files[1] if len(files) > 1 else None
        new.pgoff = new.uaddr // PAGE  # userspace_addr is the offset into both files

    def _delete_slot(self, vm: Vm, s: KSlot) -> None:
        del vm.slots[s.slot]
        for gfn in [g for g in vm.mmu if s.gfn <= g < s.gfn + s.npages]:
            del vm.mmu[gfn]  # kvm_arch_flush_shadow_memslot

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
                del vm.mmu[gfn]  # kvm_pre_set_memory_attributes() unmaps the range

        self._call("KVM_SET_MEMORY_ATTRIBUTES", run)

    def attribute_runs(self, vm_id: str, start: int = 0, end: int = U64) -> list[dict[str, Any]]:
        """The API's view: runs of gfns in [start, end), private or not."""
        vm, out, pos = self._vm(vm_id), [], start
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
        return True, None if name in ("fallocate", "close", "munmap") else value
