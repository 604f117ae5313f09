"""The KVM side of Machine: VMs, memslots, attributes, vCPUs and the VMM's mappings.

A mixin of Machine (every method takes the machine's lock).  Values the uapi
structs hold as __u64 pass to the engine as they are, over the whole range:
the engine answers what the kernel answers (EINVAL), never an overflow.  A flag
or type name the kernel does not know becomes a bit no VM supports, so it is the
kernel's EINVAL in the kernel's order of checks.  Failures raise EngineError with
the words of the rule the engine names (ss_kvm_rule).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

from app.engine._errors import make_error
from app.engine._guard import FaceLock, face_unlock
from app.engine._kvm_coco import KvmCoco
from app.engine._kvm_messages import kvm_words
from app.engine._kvm_names import (
    ATTRIBUTES,
    BACKINGS,
    EXIT_FLAGS,
    EXITS,
    MEM_ERROR_TYPES,
    REGION_FLAGS,
    SIGNALS,
    UNKNOWN_U32,
    UNKNOWN_U64,
    VM_TYPES,
    kernel_bits,
)
from app.engine._kvm_types import AccessResult, Exit, HostAccess, VmMemslot
from app.engine._lib import ffi, lib
from app.engine._names import GMEM_FLAGS, HAZARDS, errno_name, i32, i64, names_of, u32, u64

Names = Iterable[str] | str

U32_MAX = (1 << 32) - 1
_tuple_new = tuple.__new__  # builds a NamedTuple without its Python __new__
_vcpu_access = lib.ss_vcpu_access
_set_attrs = lib.ss_face_vm_set_memory_attributes  # takes the mutex in C (engine_c/face.c)
_event_count = lib.ss_event_count
_PRIV = lib.SS_MEMORY_ATTRIBUTE_PRIVATE
_PRIV_LIST = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
# attributes as callers spell them most (a tuple of names, or one name -> bits)
_ATTR_BITS: dict[object, int] = {
    (): 0,
    ("KVM_MEMORY_ATTRIBUTE_PRIVATE",): lib.SS_MEMORY_ATTRIBUTE_PRIVATE,
    "KVM_MEMORY_ATTRIBUTE_PRIVATE": lib.SS_MEMORY_ATTRIBUTE_PRIVATE,
}


def _fd32(fd: int) -> int:
    """An s32 fd of the RFC's region_ext: one no kernel hands out is EBADF (-2)."""
    return fd if -(1 << 31) <= fd < 1 << 31 else -2


class Kvm(KvmCoco):
    _m: Any
    _f: Any  # the machine's mutex (struct ss_face)
    _lock: FaceLock

    def _kvm_buffers(self) -> None:
        self._region = ffi.new("struct ss_region *")
        self._access = ffi.new("struct ss_access *")
        self._ares = ffi.new("struct ss_access_result *")
        self._sig = ffi.new("int *")
        self._byte = ffi.new("uint8_t *")
        self._addr = ffi.new("uint64_t *")
        self._vinfo = ffi.new("struct ss_vm_info *")  # is_vm's answer, never read

    def _kvm_fail(self, op: str, rc: int, before: int, args: dict[str, int]) -> NoReturn:
        rule = int(lib.ss_kvm_rule(self._m))
        name = errno_name(-rc)
        ev = ffi.new("struct ss_event *")
        hazard = None
        if lib.ss_event_get(self._m, before + 1, ev) == 0 and ev.hazard:
            hazard = HAZARDS.get(ev.hazard)
        words = kvm_words(rule, op, name, args)
        if hazard == "errno_as_pfn":
            words += (
                "; the posted patch 07 would map the errno as a pfn (it tests an unsigned "
                "pfn for >= 0)"
            )
        elif hazard == "dead_owner":
            words += (
                "; that owner is a destroyed VM: patch 13 checks vm_is_dead instead of "
                "unregistering, so nobody can register the file again"
            )
        raise make_error(op, -rc, words, hazard, before + 1)

    def _kvm(self, op: str, rc: int, before: int, args: dict[str, int]) -> int:
        if rc < 0:
            self._kvm_fail(op, rc, before, args)
        return rc

    # ---- VMs ----
    def vm_create(self, name: str, type: str | int = "KVM_X86_DEFAULT_VM") -> int:
        """KVM_CREATE_VM: the VM's id (an owner id).  An unknown type name is EINVAL."""
        raw = name.encode("utf-8")
        if b"\0" in raw:
            raise ValueError("a VM name cannot contain NUL")
        t = u64(type) if isinstance(type, int) else VM_TYPES.get(type, UNKNOWN_U64)
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_vm_create(self._m, t, raw)
            return self._kvm("KVM_CREATE_VM", rc, before, {"type": t})

    def vm_guest_memfd(self, vm: int, size: int, flags: Names = ()) -> int:
        """KVM_CREATE_GUEST_MEMFD on the VM: the fd."""
        s, f = u64(size), kernel_bits(flags, GMEM_FLAGS, UNKNOWN_U64)
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_vm_gmem_create(self._m, i32(vm), s, f)
            return self._kvm("KVM_CREATE_GUEST_MEMFD", rc, before, {"size": s, "flags": f})

    def vm_close(self, vm: int) -> None:
        """close(vm_fd): the VM is destroyed now, or when the last guest_memfd it made
        is closed and unmapped (that file holds a reference on it)."""
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            self._kvm("close(vm_fd)", lib.ss_vm_close(self._m, i32(vm)), before, {})

    def vcpu_create(self, vm: int) -> int:
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            return self._kvm("KVM_CREATE_VCPU", lib.ss_vcpu_create(self._m, i32(vm)), before, {})

    def set_user_memory_region(
        self,
        vm: int,
        slot: int,
        flags: Names,
        guest_phys_addr: int,
        memory_size: int,
        userspace_addr: int,
        guest_memfd_offset: int = 0,
        guest_memfd: int = 0,
        fd: int = -1,
        private_fd: int = -1,
    ) -> VmMemslot | None:
        """KVM_SET_USER_MEMORY_REGION2 (rfc-v2: the RFC's region_ext): the memslot as it
        is now, None when memory_size 0 deleted it."""
        table = REGION_FLAGS[self.config.profile]
        r = self._region
        r.slot, r.flags = u32(slot), kernel_bits(flags, table, UNKNOWN_U32)
        r.guest_phys_addr, r.memory_size = u64(guest_phys_addr), u64(memory_size)
        r.userspace_addr, r.guest_memfd_offset = u64(userspace_addr), u64(guest_memfd_offset)
        r.guest_memfd = guest_memfd if 0 <= guest_memfd <= U32_MAX else u32(i64(guest_memfd))
        if not -(1 << 31) <= guest_memfd <= U32_MAX:
            r.guest_memfd = U32_MAX  # no fd: EBADF
        r.fd, r.private_fd = _fd32(fd), _fd32(private_fd)
        op = (
            "KVM_SET_USER_MEMORY_REGION"
            if self.config.profile == "rfc-v2"
            else ("KVM_SET_USER_MEMORY_REGION2")
        )
        args = {
            "slot": int(r.slot),
            "flags": int(r.flags),
            "gpa": int(r.guest_phys_addr),
            "memory_size": int(r.memory_size),
            "uaddr": int(r.userspace_addr),
            "offset": int(r.guest_memfd_offset),
        }
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_vm_set_memory_region(self._m, i32(vm), r)
            self._kvm(op, rc, before, args)
            slots = self._vm_slots(i32(vm))
        return next((s for s in slots if s.slot == args["slot"]), None)

    def set_memory_attributes(
        self, vm: int, address: int, size: int, attributes: Names, flags: int = 0
    ) -> None:
        """KVM_SET_MEMORY_ATTRIBUTES."""
        # a hot path (a VMM's conversions): the names as callers spell them most are
        # one dict lookup; the wrapper takes the mutex in C; cffi refuses what does not
        # fit the C types, and only then are the ints cast like C
        try:  # the bench's and the service's spellings first: a list compare is ~20 ns
            if attributes == _PRIV_LIST:
                at = _PRIV
            elif attributes.__class__ is list:
                at = 0 if not attributes else _ATTR_BITS.get(tuple(attributes))
            else:
                at = _ATTR_BITS.get(attributes)
        except TypeError:  # unhashable: a set, a dict, ...
            at = None
        if at is None:
            at = kernel_bits(attributes, ATTRIBUTES, UNKNOWN_U64)
        try:
            rc = _set_attrs(self._f, vm, address, size, at, flags)
        except (OverflowError, TypeError):
            rc = _set_attrs(self._f, i32(vm), u64(address), u64(size), at, u64(flags))
        if rc < 0:  # failed, the lock held: one event, no wakes: the last
            try:
                before = int(lib.ss_event_count(self._m)) - 1
                args = {"attributes": at, "flags": u64(flags)}
                self._kvm_fail("KVM_SET_MEMORY_ATTRIBUTES", rc, before, args)
            finally:
                face_unlock(self._f)

    # ---- the guest and the VMM touching memory ----
    def vcpu_access(
        self,
        vm: int,
        vcpu: int,
        gpa: int,
        write: bool = False,
        private: bool | None = None,
        value: int = 0,
    ) -> AccessResult:
        """KVM_RUN for one byte at gpa: an exit is a result, not an error."""
        a, out = self._access, self._ares
        a.gpa, a.write = u64(gpa), 1 if write else 0
        a.private_ = -1 if private is None else (1 if private else 0)
        a.value = value & 0xFF
        with self._lock:
            rc = _vcpu_access(self._m, i32(vm), i32(vcpu), a, out)
            seq = int(_event_count(self._m))  # one event, no wakes: the last
            if rc < 0:
                self._kvm_fail("KVM_RUN", rc, seq - 1, {"vcpu": i32(vcpu)})
            if out.exit_reason:
                reason = EXITS.get(out.exit_reason, str(out.exit_reason))
                fault = out.exit_reason == lib.SS_EXIT_MEMORY_FAULT
                ex = Exit(
                    reason=reason,
                    gpa=int(out.exit_gpa),
                    size=int(out.exit_size),
                    flags=names_of(int(out.exit_flags), EXIT_FLAGS) if fault else [],
                    errno=errno_name(out.exit_errno) if fault else None,
                    type=MEM_ERROR_TYPES.get(out.exit_type),
                )
                return AccessResult(ex, None, None, None, None, None, None, False, seq)
            if rc == lib.SS_PENDING:
                return AccessResult(None, None, None, None, None, None, None, True, seq)
            return _tuple_new(
                AccessResult,
                (
                    None,
                    BACKINGS.get(out.backing),
                    out.fd if out.fd >= 0 else None,
                    int(out.index),
                    int(out.pfn),
                    int(out.order),
                    int(out.value),
                    False,
                    seq,
                ),
            )

    def pre_fault_memory(
        self, vm: int, vcpu: int, gpa: int, size: int, flags: int = 0
    ) -> tuple[int, int]:
        """KVM_PRE_FAULT_MEMORY: maps ahead as read faults; (gpa, size) left to do."""
        g, s = ffi.new("uint64_t *", u64(gpa)), ffi.new("uint64_t *", u64(size))
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_vcpu_pre_fault(self._m, i32(vm), i32(vcpu), g, s, u64(flags))
            self._kvm("KVM_PRE_FAULT_MEMORY", rc, before, {"vcpu": i32(vcpu)})
            return int(g[0]), int(s[0])

    def mapping_access(
        self, map_id: int, offset: int, write: bool = False, value: int = 0
    ) -> HostAccess:
        """The VMM touches byte `offset` of its mapping: a signal or the byte there."""
        off = u64(offset)
        with self._lock:
            before = int(lib.ss_event_count(self._m))
            rc = lib.ss_mapping_access(
                self._m, i32(map_id), off, 1 if write else 0, value & 0xFF, self._sig, self._byte
            )
            self._kvm("mapping_access", rc, before, {"map_id": i32(map_id)})
            sig = SIGNALS.get(int(self._sig[0]))
            return HostAccess(sig, None if sig else int(self._byte[0]), before + 1)

    def mapping_addr(self, map_id: int) -> int:
        """The mapping's address in the VMM address space (what userspace_addr points at)."""
        with self._lock:
            if lib.ss_mapping_addr(self._m, i32(map_id), self._addr) < 0:
                raise make_error("mapping", 2, f"no mapping with id {map_id}")
            return int(self._addr[0])
