"""The reference model of the KVM side, part three: memslots (kvm_set_memory_region()'s
checks in the kernel's order, kvm_gmem_bind(), the RFC's fd-based regions), with the
constants and records the model shares (refmodel_kvm.py has the VMs, attributes and
vCPUs; refmodel_kvm_access.py the access path)."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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
    "mapping_pin",
    "mapping_unpin",
    "vm_close",
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
    closed: bool = False  # close(vm_fd): no ioctl reaches it (EBADF)
    dead: bool = False  # kvm_destroy_vm ran: only its owner id (and rfc-v2 registrations) stay

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


class SlotsMixin(AccessMixin):
    vms: dict[str, Vm]
    gmem_vm: dict[Inode, str]
    kvm_quirks: frozenset[str]

    def _vm(self, vm_id: str) -> Vm:
        """The VM an ioctl names: EINVAL if none, EBADF once its fd is closed."""
        vm = self.vms.get(str(vm_id))
        if vm is None:
            raise ModelError("EINVAL")  # the owner is not a VM (the engine's convention)
        if vm.closed:
            raise ModelError("EBADF")
        return vm

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
        end_loff = off + new.npages * PAGE  # loff_t: wraps negative past 2^63 - 1
        if end_loff >= 2**63:
            end_loff -= 2**64
        if off >= 2**63 or end_loff > ino.size:
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
            self._zap(vm, gfn)  # kvm_arch_flush_shadow_memslot
