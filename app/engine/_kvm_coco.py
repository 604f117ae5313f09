"""Confidential VMs (SNP, TDX) on the Machine: populate, the launch and its measurement.

A mixin of Machine under Kvm (every method takes the machine's lock).  The engine
(engine_c/kvm_coco.c) runs kvm_gmem_populate's order of checks, the arch hooks of
each page (callbacks of the event) and the SHA-384 measurement.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from app.engine._errors import EngineError, make_error
from app.engine._guard import FaceLock
from app.engine._kvm_messages import kvm_words
from app.engine._kvm_views import KvmViews
from app.engine._lib import ffi, lib
from app.engine._names import errno_name, i32, u64

LAUNCH_STATES = {
    lib.SS_LAUNCH_NONE: None,
    lib.SS_LAUNCH_INIT: "init",
    lib.SS_LAUNCH_DONE: "finalized",
}
PAGE = 4096


class LaunchUpdate(NamedTuple):
    """What a LAUNCH_UPDATE / INIT_MEM_REGION did: pages done, and what is left."""

    pages: int
    gpa: int
    size: int


class LaunchInfo(NamedTuple):
    """A confidential VM's launch: its state and measurement (hex, SHA-384)."""

    state: str | None
    pages: int
    measurement: str | None


class Pin(NamedTuple):
    """A GUP pin of a host mapping: its pages [offset, offset + pages * 4096) and pfns."""

    pin_id: int
    map_id: int
    offset: int
    pages: int
    pfns: list[int]


class KvmCoco(KvmViews):
    _m: Any
    _lock: FaceLock

    def _coco_fail(self, op: str, rc: int, before: int, args: dict[str, int]) -> None:
        rule = int(lib.ss_kvm_rule(self._m))
        raise make_error(op, -rc, kvm_words(rule, op, errno_name(-rc), args), None, before + 1)

    def launch_update(self, vm: int, gpa: int, data: bytes) -> LaunchUpdate:
        """SNP KVM_SEV_SNP_LAUNCH_UPDATE / TDX KVM_TDX_INIT_MEM_REGION of data at gpa.

        SNP answers success with the rest when some pages were done; TDX fails with
        the error of the page that stopped it (the message says how many were done)."""
        g = u64(gpa)
        view = ffi.from_buffer(data)
        done = ffi.new("uint64_t *")
        op = self._launch_op(vm, "update")
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_vm_launch_update(self._m, i32(vm), g, view, len(view), done)
            n = int(done[0])
            if rc < 0:
                self._coco_fail(op, rc, before, {"gfn": (g >> 12) + n, "done": n})
        return LaunchUpdate(pages=n, gpa=g + n * PAGE, size=len(view) - n * PAGE)

    def launch_finish(self, vm: int) -> None:
        """SNP KVM_SEV_SNP_LAUNCH_FINISH / TDX KVM_TDX_FINALIZE_VM."""
        op = self._launch_op(vm, "finish")
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_vm_launch_finish(self._m, i32(vm))
            if rc < 0:
                self._coco_fail(op, rc, before, {})

    def memory_failure(self, pfn: int) -> None:
        """memory_failure(pfn) of a guest_memfd page: zapped in every VM, kept (MF_DELAYED)."""
        p = u64(pfn)
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_memory_failure(self._m, p)
            if rc < 0:
                self._coco_fail("memory_failure", rc, before, {"pfn": p})

    def set_memory_attributes2(
        self, fd: int, offset: int, size: int, attributes: int, flags: int = 0
    ) -> None:
        """Proposal (in-place conversion v8, not merged): KVM_SET_MEMORY_ATTRIBUTES2 on a
        guest_memfd.  EAGAIN names error_offset in its message."""
        eo = ffi.new("uint64_t *")
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_gmem_set_attributes(
                self._m, i32(fd), u64(offset), u64(size), u64(attributes), u64(flags), eo
            )
            if rc < 0:
                try:
                    self._coco_fail(
                        "KVM_SET_MEMORY_ATTRIBUTES2", rc, before, {"error_offset": int(eo[0])}
                    )
                except EngineError as exc:  # the uapi struct's out field, set on EAGAIN
                    if exc.name == "EAGAIN":
                        exc.error_offset = int(eo[0])
                    raise

    def gmem_attr_runs(self, fd: int) -> list[tuple[int, int, int]]:
        """inplace_conversion: the guest_memfd's attribute runs (start, end, attributes)."""
        buf = ffi.new("struct ss_attr_run[]", 256)
        with self._lock:
            n = lib.ss_gmem_attr_runs(self._m, i32(fd), 0, 2**64 - 1, buf, 256)
        if n < 0:
            raise make_error("file", -n, f"fd {fd} is not a guest_memfd")
        return [(int(r.start), int(r.end), int(r.attributes)) for r in buf[0:n]]

    def mapping_pin(self, map_id: int, offset: int, length: int, write: bool = False) -> Pin:
        """pin_user_pages() of the pages of [offset, offset + length) of a mapping: each
        is faulted in as a host touch would and gets a reference.  A page whose touch
        would be a signal is EFAULT (its message names the signal), a hwpoisoned page
        EHWPOISON; nothing is pinned then.  write: FOLL_WRITE, faulted in as a write
        touch (dirty; through MAP_PRIVATE the copy is made and pinned), EFAULT through
        a mapping without PROT_WRITE."""
        sig, pin = ffi.new("int *"), ffi.new("int *")
        w = 1 if write else 0
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_mapping_pin(self._m, i32(map_id), u64(offset), u64(length), w, sig, pin)
            if rc < 0:
                ev = ffi.new("struct ss_event *")
                at = ev.out[0] if lib.ss_event_get(self._m, before + 1, ev) == 0 else 0
                args = {"signal": int(sig[0]), "offset": int(at)}
                self._coco_fail("mapping_pin", rc, before, args)
        return self.pin_info(int(pin[0]))

    def mapping_unpin(self, pin_id: int) -> None:
        """unpin_user_pages() of a pin: each page drops its reference (an orphan goes)."""
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_mapping_unpin(self._m, i32(pin_id))
            if rc < 0:
                self._coco_fail("mapping_unpin", rc, before, {"pin_id": i32(pin_id)})

    def pin_info(self, pin_id: int) -> Pin:
        """A pin's range and pfns; LookupError for no such pin."""
        out = ffi.new("struct ss_pin_info *")
        pfns = ffi.new("uint64_t[]", int(lib.SS_PIN_MAX_PAGES))
        with self._lock:
            rc = lib.ss_pin_info(self._m, i32(pin_id), out, pfns, int(lib.SS_PIN_MAX_PAGES))
        if rc < 0:
            raise make_error("pin", 2, f"no pin with id {pin_id}")
        n = int(out.npages)
        return Pin(pin_id, int(out.map_id), int(out.offset), n, [int(p) for p in pfns[0:n]])

    def launch_info(self, vm: int) -> LaunchInfo:
        out = ffi.new("struct ss_launch_info *")
        with self._lock:
            rc = lib.ss_vm_launch_info(self._m, i32(vm), out)
        if rc < 0:
            raise make_error("launch", -rc, f"owner {vm} is not a VM")
        digest = bytes(ffi.buffer(out.digest, 48)).hex() if out.have_digest else None
        return LaunchInfo(LAUNCH_STATES.get(out.state), int(out.pages), digest)

    def _launch_op(self, vm: int, what: str) -> str:
        """The ioctl's name for the VM's type (the error's op)."""
        with self._lock:
            info = ffi.new("struct ss_vm_info *")
            t = info.type if lib.ss_vm_info(self._m, i32(vm), info) == 0 else -1
        if t == lib.SS_VM_TDX:
            return "KVM_TDX_INIT_MEM_REGION" if what == "update" else "KVM_TDX_FINALIZE_VM"
        return "KVM_SEV_SNP_LAUNCH_UPDATE" if what == "update" else "KVM_SEV_SNP_LAUNCH_FINISH"
