"""The guest interface of Machine (the RFC's hooks, page indexes): owners, their
registration on a file, get_lock_pfn / put_unlock_pfn, migrate_page, invalidate, and
the legacy owner's memslots and faults.

A mixin of Machine (app/engine/_machine.py), which holds the lock and the one place
return codes cross (``_check``).  get_lock_pfn and put_unlock_pfn are the hot path: their
C wrappers take the machine's mutex themselves (engine_c/face.c) and return with it held
when the call failed.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from app.engine._errors import make_error
from app.engine._events import MAX_ITEMS, EventReader
from app.engine._guard import FaceLock, face_unlock
from app.engine._kvm_types import VmInfo
from app.engine._lib import lib
from app.engine._names import OWNER_KINDS, i32, lookup, u64
from app.engine._types import Callback, Memslot, PfnResult

_tuple_new = tuple.__new__  # builds a NamedTuple without its Python __new__
# the hot calls: the engine's, under the machine's mutex taken in C (engine_c/face.c)
_get_lock_pfn = lib.ss_face_get_lock_pfn
_put_unlock_pfn = lib.ss_face_put_unlock_pfn
_HELD = lib.SS_FACE_HELD
_EINVAL = 22
_VM_SLOTS = (
    "this owner is a VM: it takes memslots through KVM_SET_USER_MEMORY_REGION2 "
    "(POST .../vms/{vm_id}/memory_regions)"
)
_VM_FAULTS = (
    "this owner is a VM: its guest accesses go through KVM_RUN "
    "(POST .../vms/{vm_id}/vcpus/{n}/access)"
)
# {pfn, order, 0, seq} -> (pfn, order, False, seq): a PfnResult's fields in one call
_unpack_pfn = struct.Struct("=QQ?7xQ").unpack_from


class Guest:
    _m: Any
    _f: Any  # the machine's mutex (struct ss_face)
    _lock: FaceLock
    _reader: EventReader
    _u64: Any  # fault's out-arguments: the pfn, the order
    _int: Any
    _out_seq: memoryview
    _own_answer: Any
    _other_answer: Any

    if TYPE_CHECKING:  # Machine's (app/engine/_machine.py)

        def _check(
            self, op: str, rc: int, before: int, args: dict[str, int], fd: int | None = None
        ) -> int: ...

        def _seq(self, before: int, op: str) -> int: ...

        def _count(self) -> int: ...

        def _vm_info(self, vm: int) -> VmInfo | None: ...

    def _not_for_vms(self, rc: int, owner: int, before: int, op: str, words: str) -> None:
        """The legacy memslot / fault calls refuse a VM (EINVAL): say why (lock held)."""
        if rc == -_EINVAL and 0 <= owner < lib.SS_MAX_OWNERS and self._vm_info(owner):
            raise make_error(op, _EINVAL, words, None, before + 1)

    def owner_create(self, kind: str, name: str) -> int:
        k, raw = lookup(kind, OWNER_KINDS, "owner kind"), name.encode("utf-8")
        if b"\0" in raw:
            raise ValueError("an owner name cannot contain NUL")
        with self._lock:
            before = self._count()
            rc = lib.ss_owner_create(self._m, k, raw)
            return self._check("owner_create", rc, before, {"kind": k})

    def register_guest(self, fd: int, owner: int | None) -> None:
        """memfd_register_guest; owner None is "no owner" (EINVAL)."""
        fd, o = i32(fd), -1 if owner is None else i32(owner)
        with self._lock:
            before = self._count()
            rc = lib.ss_register_guest(self._m, fd, o)
            self._check("memfd_register_guest", rc, before, {"owner": o}, fd)

    def unregister_guest(self, fd: int, owner: int) -> None:
        fd, o = i32(fd), i32(owner)
        with self._lock:
            before = self._count()
            rc = lib.ss_unregister_guest(self._m, fd, o)
            self._check("memfd_unregister_guest", rc, before, {"owner": o}, fd)

    def _pfn_result(
        self, op: str, rc: int, before: int, args: dict[str, int], fd: int | None
    ) -> PfnResult:
        self._check(op, rc, before, args, fd)
        seq = self._seq(before, op)
        if rc == lib.SS_PENDING:
            return PfnResult(None, None, True, seq)
        return PfnResult(int(self._u64[0]), int(self._int[0]), False, seq)

    def get_lock_pfn(self, fd: int, index: int, alloc: bool) -> PfnResult:
        # the hot path of the API: the wrapper takes the mutex in C and makes any
        # alloc but 0 a 1; cffi itself refuses what does not fit the C types
        # (OverflowError, TypeError, before the call); only then are the ints cast
        # like C and alloc made a bool
        try:
            rc = _get_lock_pfn(self._f, fd, index, alloc)
        except (OverflowError, TypeError):
            fd, index, alloc = i32(fd), u64(index), bool(alloc)
            rc = _get_lock_pfn(self._f, fd, index, alloc)
        if rc == 0:  # no dicts, no lookups: pfn, order and the call's seq
            return _tuple_new(PfnResult, _unpack_pfn(self._own_answer))
        try:  # the wrapper returned with the lock held
            if rc == _HELD:  # another thread's answer than the first caller's
                return _tuple_new(PfnResult, _unpack_pfn(self._other_answer))
            # failed or pending: get_lock_pfn makes exactly one event (it wakes nobody)
            before = self._out_seq[0] - 1
            args = {"index": u64(index), "alloc": 1 if alloc else 0}
            return self._pfn_result("get_lock_pfn", rc, before, args, i32(fd))
        finally:
            face_unlock(self._f)

    def put_unlock_pfn(self, pfn: int) -> None:
        try:
            rc = _put_unlock_pfn(self._f, pfn)
        except (OverflowError, TypeError):
            pfn = u64(pfn)
            rc = _put_unlock_pfn(self._f, pfn)
        if rc:  # failed, the lock held: one event, it wakes nobody: the last
            try:
                before = self._out_seq[0] - 1
                self._check("put_unlock_pfn", rc, before, {"pfn": u64(pfn)})
            finally:
                face_unlock(self._f)

    def migrate_page(self, pfn: int) -> int:
        """Move the page holding pfn to new frames, as compaction would; the pfn that
        4 KiB page has now.  A guest-sealed page refuses (ENOTSUPP, the RFC's pinning)."""
        p = u64(pfn)
        with self._lock:
            before = self._count()
            return self._check("migrate_page", lib.ss_migrate_page(self._m, p), before, {"pfn": p})

    def invalidate(
        self, fd: int, start: int, end: int, max_items: int = MAX_ITEMS
    ) -> list[Callback]:
        """Run the owners' invalidate_page_range over [start, end]; the first max_items
        callbacks made (the event counts them all: one per page, page the rest with
        event_callbacks)."""
        fd, s, e = i32(fd), u64(start), u64(end)
        with self._lock:
            before = self._count()
            rc = lib.ss_invalidate(self._m, fd, s, e)
            self._check("invalidate", rc, before, {"start": s, "end": e}, fd)
            seq = self._seq(before, "invalidate")
            ev = self._reader.raw(self._m, seq)
            n = min(ev.callbacks_kept, max(0, max_items)) if ev is not None else 0
            return self._reader.callbacks(self._m, seq, n)

    def memslot_create(self, owner: int, fd: int, gfn: int, index: int, npages: int) -> Memslot:
        o, fd = i32(owner), i32(fd)
        g, ix, n = u64(gfn), u64(index), u64(npages)
        with self._lock:
            before = self._count()
            rc = lib.ss_memslot_create(self._m, o, fd, g, ix, n)
            self._not_for_vms(rc, o, before, "memslot", _VM_SLOTS)
            args = {"owner": o, "gfn": g, "index": ix, "npages": n}
            slot = self._check("memslot", rc, before, args, fd)
        return Memslot(slot, fd, g, ix, n)

    def fault(self, owner: int, gfn: int) -> PfnResult:
        """The guest touched gfn: the owner maps it via get_lock_pfn / put_unlock_pfn."""
        o, g = i32(owner), u64(gfn)
        with self._lock:
            before = self._count()
            rc = lib.ss_fault(self._m, o, g, self._u64, self._int)
            self._not_for_vms(rc, o, before, "fault", _VM_FAULTS)
            return self._pfn_result("fault", rc, before, {"owner": o, "gfn": g}, None)
