"""Reading the KVM side: VMs with their memslots, attribute runs, gfn sources."""

from __future__ import annotations

import errno
from typing import Any

from app.engine._errors import make_error
from app.engine._guard import FaceLock
from app.engine._kvm_names import ATTRIBUTES, REGION_FLAGS, SOURCES, VM_TYPE_NAMES
from app.engine._kvm_types import AttrRun, GfnSource, VmInfo, VmMemslot
from app.engine._lib import ffi, lib
from app.engine._names import names_of
from app.engine._types import Config

CHUNK = 1024


def _fd(v: int) -> int | None:
    return v if v >= 0 else None


class KvmViews:
    _m: Any
    _lock: FaceLock
    _vinfo: Any
    config: Config

    def _vm_slots(self, vm: int) -> list[VmMemslot]:
        """The VM's memslots (lock held)."""
        table = REGION_FLAGS[self.config.profile]
        n = 64
        while True:
            buf = ffi.new("struct ss_vm_memslot[]", n)
            got = int(lib.ss_vm_memslots(self._m, vm, buf, n))
            if got < n:
                break
            n *= 4
        return [
            VmMemslot(
                slot=s.slot,
                flags=names_of(s.flags, table),
                guest_phys_addr=s.guest_phys_addr,
                memory_size=s.memory_size,
                userspace_addr=s.userspace_addr,
                guest_memfd_offset=s.guest_memfd_offset,
                guest_memfd=_fd(s.guest_memfd),
                fd=_fd(s.fd),
                private_fd=_fd(s.private_fd),
                gmem_closed=bool(s.gmem_closed),
                gmem_only=bool(s.gmem_only),
            )
            for s in buf[0 : max(got, 0)]
        ]

    def _vm_info(self, vm: int) -> VmInfo | None:
        info = ffi.new("struct ss_vm_info *")
        oinfo = ffi.new("struct ss_owner_info *")
        if not 0 <= vm < lib.SS_MAX_OWNERS or lib.ss_vm_info(self._m, vm, info) < 0:
            return None
        lib.ss_owner_info(self._m, vm, oinfo)
        return VmInfo(
            id=vm,
            name=ffi.string(oinfo.name).decode("utf-8", "replace"),
            type=VM_TYPE_NAMES.get(info.type, str(info.type)),
            nvcpus=info.nvcpus,
            memslots=self._vm_slots(vm),
            nattr_runs=int(info.nattr_runs),
            attr_bytes=int(info.attr_bytes),
            closed=bool(info.closed),
        )

    def is_vm(self, vm: int) -> bool:
        """Whether vm is a VM's id (one C call: no VmInfo, no memslots read)."""
        if not 0 <= vm < lib.SS_MAX_OWNERS:
            return False
        with self._lock:
            return bool(lib.ss_vm_info(self._m, vm, self._vinfo) >= 0)

    def vm(self, vm: int) -> VmInfo:
        with self._lock:
            info = self._vm_info(vm) if isinstance(vm, int) else None
        if info is None:
            raise make_error("vm", 2, f"no VM with id {vm}")
        return info

    def vms(self) -> list[VmInfo]:
        with self._lock:
            out = [self._vm_info(i) for i in range(lib.ss_owner_count(self._m))]
        return [v for v in out if v is not None]

    def vm_caps(self, vm: int) -> dict[str, int]:
        """KVM_CHECK_EXTENSION on the VM fd, for the capabilities the simulator knows."""
        buf = ffi.new("struct ss_cap[]", 64)
        with self._lock:
            n = int(lib.ss_vm_caps(self._m, vm, buf, 64))
        if n == -errno.EBADF:
            raise make_error("KVM_CHECK_EXTENSION", errno.EBADF, "the VM's fd is closed (EBADF)")
        if n < 0:
            raise make_error("vm", 2, f"no VM with id {vm}")
        return {ffi.string(c.name).decode(): int(c.value) for c in buf[0:n]}

    def attr_runs(
        self, vm: int, start: int = 0, end: int = 1 << 64, max_runs: int = 10000
    ) -> list[AttrRun]:
        """Runs of gfns [start, end) with attributes (gfns without any are left out)."""
        n = max(1, min(max_runs, 1 << 20))
        buf = ffi.new("struct ss_attr_run[]", n)
        with self._lock:
            got = int(lib.ss_vm_attr_runs(self._m, vm, start, min(end, (1 << 64) - 1), buf, n))
        if got < 0:
            raise make_error("vm", 2, f"no VM with id {vm}")
        return [AttrRun(r.start, r.end, names_of(r.attributes, ATTRIBUTES)) for r in buf[0:got]]

    def attr_spans(
        self, vm: int, start: int, end: int, max_runs: int = 10000
    ) -> list[tuple[int, int, int]]:
        """attr_runs as raw (start, end, attribute bits): for views reading thousands."""
        n = max(1, min(max_runs, 1 << 20))
        buf = ffi.new("struct ss_attr_run[]", n)
        with self._lock:
            got = int(lib.ss_vm_attr_runs(self._m, vm, start, min(end, (1 << 64) - 1), buf, n))
        if got < 0:
            raise make_error("vm", 2, f"no VM with id {vm}")
        return [(r.start, r.end, int(r.attributes)) for r in buf[0:got]]

    def gfn_sources(
        self, vm: int, start: int, end: int, max_runs: int = 1000
    ) -> tuple[list[GfnSource], int]:
        """Where gfns [start, end) are served from, as runs; and the gfn to go on from
        (== end when done: the engine walks at most 65536 gfns inside memslots a call)."""
        n = max(1, min(max_runs, CHUNK * 16))
        buf = ffi.new("struct ss_gfn_source[]", n)
        nxt = ffi.new("uint64_t *")
        with self._lock:
            got = int(lib.ss_vm_gfn_sources(self._m, vm, start, end, buf, n, nxt))
        if got < 0:
            raise make_error("vm", 2, f"no VM with id {vm}")
        runs = [
            GfnSource(
                start=r.start,
                end=r.end,
                source=SOURCES.get(r.source, str(r.source)),
                slot=r.slot if r.source != lib.SS_SRC_NONE else None,
                attributes=names_of(r.attributes, ATTRIBUTES),
                fd=_fd(r.fd),
                index=r.index if r.source not in (lib.SS_SRC_NONE,) else None,
                mapped=bool(r.mapped),
                pfn=r.pfn if r.mapped else None,
                order=r.order if r.mapped else None,
            )
            for r in buf[0:got]
        ]
        return runs, int(nxt[0])

    def poisoned_gfns(
        self, vm: int, start: int, end: int, max_runs: int = 1000
    ) -> list[tuple[int, int]]:
        """The gfns of [start, end) whose source is "poisoned" (their guest_memfd page is
        hwpoisoned), as sorted (start, end) runs: read from the machine's short list of
        poisoned frames, at no cost that grows with the window."""
        n = max(1, min(max_runs, 1 << 16))
        buf = ffi.new("struct ss_gfn_span[]", n)
        with self._lock:
            got = int(lib.ss_vm_poisoned_gfns(self._m, vm, start, min(end, (1 << 64) - 1), buf, n))
        if got < 0:
            raise make_error("vm", 2, f"no VM with id {vm}")
        return [(int(r.start), int(r.end)) for r in buf[0:got]]
