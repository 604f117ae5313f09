"""The reference model of the KVM side, part two: the VMM's address space, host access
to a mapping, the guest access path, and each VM's secondary MMU.

- VMM addresses follow the contract (KVM_CONTRACT.md): mapping n gets
  `lowest - round_up(length)` from 0x7f0000000000 down, never reused.
- Host access (mapping_access): no mapping at the address, or a store without
  PROT_WRITE: SIGSEGV; past the end of the file, or a guest_memfd page without
  INIT_SHARED: SIGBUS (kvm_gmem_fault_user_mapping); a store to MAP_PRIVATE copies
  the page (COW); a touch of a hole allocates, as shmem and guest_memfd faults do.
- Guest access (vcpu_access), guest-memfd profile: the access is private if the guest
  says so (SNP, TDX) or else if the attribute says so; a mismatch, a private access
  without a guest_memfd (no slot, a plain slot, a released file) exits
  KVM_EXIT_MEMORY_FAULT (flags PRIVATE for a private access, the page's gpa, 4096,
  EFAULT). A shared access to no slot exits KVM_EXIT_MMIO (the exact gpa, size 1: a
  byte access, as the real guest measures). Private, and every access to a
  guest_memfd-only slot (MMAP), is served from the guest_memfd; other shared ones
  from userspace_addr through the VMM's mappings, where a host fault (no mapping,
  SIGBUS, a store to a read-only mapping) is KVM_RUN failing EFAULT without an exit
  (measured: exit_reason stays KVM_EXIT_UNKNOWN). A guest_memfd-only slot whose file
  is released (closed and unmapped) exits MEMORY_FAULT for shared accesses too.
- rfc-v2: private iff allocated in private_fd; MEMORY_ERROR exits (MAP_PRIVATE for a
  private access to a hole, MAP_SHARED for a shared access to a private page).
- The secondary MMU maps gfn -> (backing, file, index, the page). After every op the
  model drops every entry that no longer points at the current page of that file
  index (punch, truncate, COW, a released file, a munmap of the VMM's mapping: the mmu
  notifier and kvm_gmem_invalidate zaps); deletion and attribute changes zap
  explicitly (refmodel_kvm.py), which on TDX clears a private page (tdx_clear_page).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.engine.refmodel import MAP_FLAGS, PAGE, PROTS, Inode, ModelError, Page, bits
from tests.engine.refmodel_kvm_cow import CowMixin

VMM_TOP, VMM_FLOOR = 0x7F00_0000_0000, 0x10000
SNP, TDX = 4, 5
FLAG_PRIVATE = "KVM_MEMORY_EXIT_FLAG_PRIVATE"


@dataclass(eq=False)
class KSlot:
    slot: int
    gfn: int
    npages: int
    flags: int
    uaddr: int
    ino: Inode | None = None  # the bound guest_memfd; None once its file is released
    pgoff: int = 0
    gmem: bool = False  # bound with KVM_MEM_GUEST_MEMFD
    only: bool = False  # guest_memfd-only (the file has GUEST_MEMFD_FLAG_MMAP)
    shared_ino: Inode | None = None  # rfc-v2: fd
    priv: Inode | None = None  # rfc-v2: private_fd


@dataclass(eq=False)
class VMap:
    addr: int
    span: int
    prot: int
    shared: bool
    ino: Inode
    pgoff: int
    cow: dict[int, Page] = field(default_factory=dict)  # MAP_PRIVATE copies by file index


@dataclass
class Spte:
    backing: str  # "private" | "shared"
    ino: Inode
    index: int
    page: Page
    vmap: VMap | None = None  # shared through the VMM's mapping


class AccessMixin(CowMixin):
    vms: dict[str, Any]

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.vmaps: dict[int, VMap] = {}
        self.lowest = VMM_TOP
        self.addrs: dict[int, int] = {}  # map id -> address, kept after munmap

    # ---- after every op: released guest_memfds, stale MMU entries ----
    def _call(self, op: str, fn: Callable[[], object]) -> object:
        try:
            return super()._call(op, fn)
        finally:
            self._kvm_sync()

    def _kvm_sync(self) -> None:
        for vm in self.vms.values():
            if vm.closed and not vm.dead and not self._vm_held(vm.vm_id):
                self._vm_destroy(vm)
            for s in vm.slots.values():
                if s.ino is not None and s.ino.fd is None and s.ino.maps == 0:
                    s.ino = None  # kvm_gmem_release(): the binding's file is gone
            for gfn in [g for g, e in vm.mmu.items() if not self._valid(vm, g, e)]:
                del vm.mmu[gfn]

    def _vm_held(self, vm_id: str) -> bool:
        """A guest_memfd the VM made, open or mapped, holds it (kvm_gmem_create's
        kvm_get_kvm; kvm_gmem_release puts it)."""
        gmem_vm: dict[Inode, str] = getattr(self, "gmem_vm", {})
        return any(
            v == vm_id and ino in self.inodes and (ino.fd is not None or ino.maps > 0)
            for ino, v in gmem_vm.items()
        )

    def _vm_destroy(self, vm: Any) -> None:
        """kvm_destroy_vm: memslots, secondary MMU, attributes and vCPUs go; files only
        the VM held (rfc-v2's memslots) go with them."""
        vm.slots.clear()
        vm.mmu.clear()
        vm.private = []
        vm.vcpus = 0
        vm.dead = True
        for ino in list(self.inodes):
            if ino.fd is None and ino.maps == 0:
                self._release(ino, "close(vm_fd)")

    def _owners_hold(self, ino: Inode) -> bool:
        """A destroyed VM's registration stays on the file but holds nothing."""
        vms: dict[str, Any] = getattr(self, "vms", {})
        return any(not (str(o) in vms and vms[str(o)].dead) for o in ino.owners)

    def _zap(self, vm: Any, gfn: int) -> None:
        """An explicit zap of gfn's mapping (attributes, a memslot deletion). On TDX a
        private mapping is its S-EPT entry: tdx_sept_remove_private_spte clears the page
        after TDH.MEM.PAGE.REMOVE (tdx_clear_page), so what the TD wrote is gone."""
        e = vm.mmu.pop(gfn)
        if vm.type == TDX and e.backing == "private":
            e.page.data = None

    def _valid(self, vm: Any, gfn: int, e: Spte) -> bool:
        s = vm.slot_of(gfn)
        if s is None or e.ino not in self.inodes:
            return False
        if e.vmap is not None:
            if all(v is not e.vmap for v in self.vmaps.values()):
                return False
            if e.index in e.vmap.cow:
                return e.vmap.cow[e.index] is e.page
        elif s.gmem and s.ino is not e.ino:
            return False
        return e.ino.pages.get(e.index) is e.page

    # ---- the VMM's address space ----
    def mmap(
        self,
        fd: int,
        offset: int,
        length: int,
        prot: Iterable[str | int],
        flags: Iterable[str | int],
    ) -> int:
        map_id = super().mmap(fd, offset, length, prot, flags)
        span = -(-length // PAGE) * PAGE
        if self.lowest - span < VMM_FLOOR:
            super().munmap(map_id)
            raise ModelError("ENOMEM")
        self.lowest -= span
        self.addrs[map_id] = self.lowest
        shared = bool(bits(flags, MAP_FLAGS) & 0x1)
        self.vmaps[map_id] = VMap(
            self.lowest, span, bits(prot, PROTS), shared, self.fds[fd], offset // PAGE
        )
        return map_id

    def munmap(self, map_id: int) -> bool:
        r = super().munmap(map_id)
        self.vmaps.pop(map_id, None)
        self._kvm_sync()
        return r

    def map_addr(self, map_id: int) -> int:
        return self.addrs[map_id]

    def _vmap_at(self, addr: int) -> VMap | None:
        return next((v for v in self.vmaps.values() if v.addr <= addr < v.addr + v.span), None)

    def _host_page(self, v: VMap, addr: int, write: bool) -> tuple[Page, int] | str:
        """The page a touch at addr reaches and its file index, or the signal."""
        if (write and not v.prot & 0x2) or not v.prot & 0x3:
            return "SIGSEGV"
        ino, idx = v.ino, v.pgoff + (addr - v.addr) // PAGE
        if idx >= -(-ino.size // PAGE):
            return "SIGBUS"
        if ino.kind == "guest_memfd" and not ino.flags & 0x2:
            return "SIGBUS"  # not INIT_SHARED: private, never in the host's page tables
        if not v.shared and (write or idx in v.cow):
            if idx not in v.cow:
                src = self._alloc(ino, idx)  # __do_fault, then the copy: one more frame
                if self.used_frames() >= self.phys_pages:
                    raise ModelError("ENOMEM")
                v.cow[idx] = Page(data=bytearray(src.data) if src.data else None)
            return v.cow[idx], idx
        return self._alloc(ino, idx), idx

    def mapping_access(
        self, map_id: int, offset: int, write: bool, value: int = 0
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            v = self.vmaps.get(map_id)
            if v is None:
                raise ModelError("EINVAL")  # no such mapping (as munmap's)
            addr = v.addr + offset
            at = self._vmap_at(addr)
            got = self._host_page(at, addr, write) if at is not None else "SIGSEGV"
            if isinstance(got, str):
                return {"signal": got, "value": None}
            return {"signal": None, "value": _touch(got[0], addr % PAGE, write, value)}

        return self._call("mapping_access", run)  # type: ignore[return-value]

    # ---- the guest's access ----
    def vcpu_access(
        self,
        vm_id: str,
        vcpu_id: int,
        gpa: int,
        write: bool = False,
        private: bool | None = None,
        value: int = 0,
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            vm = self.vms.get(str(vm_id))
            if vm is None:
                raise ModelError("EINVAL")  # the owner is not a VM
            if vm.closed:
                raise ModelError("EBADF")  # the VM fd (and its vCPUs') is closed
            if not 0 <= vcpu_id < vm.vcpus:
                raise ModelError("ENOENT")  # the VM has no such vCPU
            if self.rfc:
                return self._rfc_access(vm, gpa, write, bool(private), value)
            return self._gmem_access(vm, gpa, write, private, value)

        return self._call("vcpu_access", run)  # type: ignore[return-value]

    def _gmem_access(
        self, vm: Any, gpa: int, write: bool, private: bool | None, value: int
    ) -> dict[str, Any]:
        gfn, attr = gpa // PAGE, vm.is_private(gpa // PAGE)
        want = private if vm.type in (SNP, TDX) and private is not None else attr
        s = vm.slot_of(gfn)
        if want != attr or (want and (s is None or s.ino is None)):
            return _fault_exit(gpa, want)
        if s is None:
            return _exit({"reason": "KVM_EXIT_MMIO", "gpa": gpa, "size": 1})
        if want or s.only:
            if s.ino is None:
                return _fault_exit(gpa, want)
            idx = gfn - s.gfn + s.pgoff
            page = self._alloc(s.ino, idx)
            backing = "private" if want else "shared"
            vm.mmu[gfn] = Spte(backing, s.ino, idx, page)
            return self._served(backing, s.ino, idx, page, gpa, write, value)
        if write and s.flags & 0x2:  # KVM_MEM_READONLY: a write is emulated MMIO
            return _exit({"reason": "KVM_EXIT_MMIO", "gpa": gpa, "size": 1})
        return self._through_vmm(vm, s, gpa, write, value)

    def _through_vmm(self, vm: Any, s: KSlot, gpa: int, write: bool, value: int) -> dict[str, Any]:
        """A shared access served from userspace_addr, through the VMM's mappings."""
        gfn = gpa // PAGE
        hva = s.uaddr + (gfn - s.gfn) * PAGE + gpa % PAGE
        v = self._vmap_at(hva)
        got = self._host_page(v, hva, write) if v is not None else "SIGSEGV"
        if isinstance(got, str) or v is None:
            raise ModelError("EFAULT")  # KVM_RUN fails; no exit
        vm.mmu[gfn] = Spte("shared", v.ino, got[1], got[0], v)
        return self._served("shared", v.ino, got[1], got[0], gpa, write, value)

    def _rfc_access(
        self, vm: Any, gpa: int, write: bool, private: bool, value: int
    ) -> dict[str, Any]:
        gfn = gpa // PAGE
        s = vm.slot_of(gfn)
        if s is None:
            return _exit({"reason": "KVM_EXIT_MMIO", "gpa": gpa, "size": 1})
        idx = gfn - s.gfn + s.pgoff
        mem_error = {"reason": "KVM_EXIT_MEMORY_ERROR", "gpa": gfn * PAGE, "size": PAGE}
        if private:
            if s.priv is None:
                raise ModelError("EFAULT")  # no private file: the fault fails
            if idx not in s.priv.pages:
                return _exit(mem_error | {"type": "KVM_EXIT_MEM_MAP_PRIVATE"})
            page = s.priv.pages[idx]
            vm.mmu[gfn] = Spte("private", s.priv, idx, page)
            return self._served("private", s.priv, idx, page, gpa, write, value)
        if s.priv is not None and idx in s.priv.pages:
            return _exit(mem_error | {"type": "KVM_EXIT_MEM_MAP_SHARED"})
        if s.shared_ino is None:  # an ordinary memslot
            return self._through_vmm(vm, s, gpa, write, value)
        page = self._alloc(s.shared_ino, idx)
        vm.mmu[gfn] = Spte("shared", s.shared_ino, idx, page)
        return self._served("shared", s.shared_ino, idx, page, gpa, write, value)

    def _served(
        self, backing: str, ino: Inode, idx: int, page: Page, gpa: int, write: bool, value: int
    ) -> dict[str, Any]:
        got = _touch(page, gpa % PAGE, write, value)
        return {"exit": None, "backing": backing, "fd": ino.fd, "index": idx, "value": got}

    # ---- views ----
    def mmu_view(self, vm_id: str) -> list[tuple[int, int, str, int | None, int]]:
        """Runs of consecutive gfns mapped alike: (start, end, backing, fd, first index)."""
        vm = self.vms[str(vm_id)]
        out: list[tuple[int, int, str, int | None, int]] = []
        for gfn in sorted(vm.mmu):
            e = vm.mmu[gfn]
            last = out[-1] if out else None
            if (
                last is not None
                and last[1] == gfn
                and last[2:4] == (e.backing, e.ino.fd)
                and last[4] + (gfn - last[0]) == e.index
            ):
                out[-1] = (last[0], gfn + 1, *last[2:])
                continue
            out.append((gfn, gfn + 1, e.backing, e.ino.fd, e.index))
        return out


def _touch(page: Page, off: int, write: bool, value: int) -> int:
    if write:
        if page.data is None:
            page.data = bytearray(PAGE)
        page.data[off] = value & 0xFF
    return page.data[off] if page.data is not None else 0


def _exit(e: dict[str, Any]) -> dict[str, Any]:
    return {"exit": e, "backing": None, "fd": None, "index": None, "value": None}


def _fault_exit(gpa: int, private: bool) -> dict[str, Any]:
    flags = [FLAG_PRIVATE] if private else []
    e = {"reason": "KVM_EXIT_MEMORY_FAULT", "flags": flags, "gpa": gpa // PAGE * PAGE}
    return _exit(e | {"size": PAGE, "errno": "EFAULT"})
