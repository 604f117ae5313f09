"""Machine: one simulated kernel, entered by one thread at a time.

Every method holds the machine's mutex (app/engine/_guard.py) for the whole call, so
the C engine is never entered twice at once and the events a method reads back are
the ones its own call recorded; the hot calls (get_lock_pfn, put_unlock_pfn,
fallocate) take it inside their C wrappers (engine_c/face.c), which return
with it held when the call failed.  Return codes cross into Python in one place,
``_check``, which raises EngineError with the rule's words.  The file syscalls are
here; the guest interface is app/engine/_guest.py, the KVM side _kvm.py, the views
_views.py (mixins of Machine).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

from app.engine._errors import make_error
from app.engine._guard import FaceLock, face_unlock
from app.engine._guest import Guest
from app.engine._kvm import Kvm
from app.engine._lib import ffi, lib
from app.engine._messages import Ctx, explain
from app.engine._names import (
    FALLOC_MODES,
    FOREIGN_SEALS,
    GMEM_FLAGS,
    HAZARDS,
    MAP_FLAGS,
    MFD_FLAGS,
    PROFILES,
    PROTS,
    SEALS,
    THP,
    VARIANTS,
    bits,
    errno_name,
    i32,
    i64,
    u32,
    u64,
)
from app.engine._types import Config, PhysInfo
from app.engine._views import Views

READ_CAP = 1 << 30  # the most bytes one pread copies into Python
_PHYS_ERRNOS = ("ENOMEM", "ENOSPC", "EINVAL")  # words that may cite the frame count

Names = Iterable[str | int] | str | int


# the hot call: the engine's, under the machine's mutex taken in C (engine_c/face.c)
_fallocate = lib.ss_face_fallocate
_PENDING = lib.SS_PENDING
_PUNCH_KEEP = lib.SS_FALLOC_FL_PUNCH_HOLE | lib.SS_FALLOC_FL_KEEP_SIZE
_PUNCH_LIST = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]
# fallocate modes as callers spell them most (a list of names -> bits)
_FALLOC_BITS: dict[tuple[str, ...] | str, int] = {
    (): 0,
    ("FALLOC_FL_KEEP_SIZE",): lib.SS_FALLOC_FL_KEEP_SIZE,
    ("FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"): _PUNCH_KEEP,
    ("FALLOC_FL_KEEP_SIZE", "FALLOC_FL_PUNCH_HOLE"): _PUNCH_KEEP,
    "FALLOC_FL_KEEP_SIZE": lib.SS_FALLOC_FL_KEEP_SIZE,
}


def _c_config(config: Config) -> Any:
    c = ffi.new("struct ss_config *")
    c.profile = PROFILES[config.profile]
    c.thp = THP[config.thp]
    c.variants = sum(VARIANTS[v] for v in config.variants)
    c.phys_pages = config.phys_pages
    return c


class Machine(Guest, Kvm, Views):
    """One simulated machine (see docs/engine-python-face.md)."""

    def __init__(self, config: Config | None = None) -> None:
        self.config = config if config is not None else Config()
        m = lib.ss_machine_new(_c_config(self.config))
        if m == ffi.NULL:
            raise MemoryError(f"the engine could not build a machine for {self.config}")
        self._adopt(m)

    def _adopt(self, m: Any) -> None:
        self._m = ffi.gc(m, lib.ss_machine_free)
        face = lib.ss_face_new(self._m)  # the mutex; it does not own the machine
        if face == ffi.NULL:
            raise MemoryError("the engine could not build a machine's lock")
        self._f = ffi.gc(face, lib.ss_face_free)
        self._lock = FaceLock(self._f)
        self._init_buffers()
        self._kvm_buffers()
        self._u64 = ffi.new("uint64_t[2]")  # fault's out-arguments: the pfn, the order
        self._int = ffi.cast("int *", self._u64 + 1)
        # the event counter, read under the lock (the failures' `before`)
        counter = lib.ss_event_counter(self._m)
        self._out_seq = memoryview(ffi.buffer(counter, 8)).cast("Q")  # [0]
        # get_lock_pfn's answers, left by its wrapper in the face (engine_c/face.h):
        # the first thread's to call, read after the mutex is dropped (only that
        # thread writes it), and any other thread's, read before it is dropped
        self._own_answer = ffi.buffer(lib.ss_face_answer(self._f, 0), 32)
        self._other_answer = ffi.buffer(lib.ss_face_answer(self._f, 1), 32)

    def clone(self, full: bool = False) -> Machine:
        """A copy with its own lock (for snapshots): copy on write, sharing the frames,
        trees and log with this machine until either writes; full: everything copied
        now (the baseline of bench/clone.py)."""
        with self._lock:
            m = (lib.ss_machine_clone_full if full else lib.ss_machine_clone)(self._m)
        if m == ffi.NULL:
            raise MemoryError("the engine could not clone the machine")
        twin = Machine.__new__(Machine)
        twin.config = self.config
        twin._adopt(m)
        return twin

    def __repr__(self) -> str:
        return f"Machine({self.config!r})"

    # ---- the one place return codes cross ----
    def _check(
        self, op: str, rc: int, before: int, args: dict[str, int], fd: int | None = None
    ) -> int:
        """rc when >= 0; else raise EngineError for the call (lock held)."""
        if rc >= 0:
            return rc
        self._raise(op, -rc, before, args, fd)

    def _raise(
        self, op: str, err: int, before: int, args: dict[str, int], fd: int | None
    ) -> NoReturn:
        seq = self._reader.find(self._m, before, op)
        hazard = None
        if seq is not None:
            e = self._reader.raw(self._m, seq)
            hazard = HAZARDS.get(e.hazard) if e is not None else None
        name = errno_name(err)
        ctx = Ctx(
            op=op,
            name=name,
            args={**args, **({"fd": fd} if fd is not None else {})},
            file=self._file_info(fd) if fd is not None else None,
            profile=self.config.profile,
            phys=self._phys_locked() if name in _PHYS_ERRNOS else None,
            hazard=hazard,
            nowners=int(lib.ss_owner_count(self._m)),
        )
        raise make_error(op, err, explain(ctx), hazard, seq)

    def _phys_locked(self) -> PhysInfo:
        lib.ss_phys_info(self._m, self._pinfo)
        p = self._pinfo
        return PhysInfo(p.total, p.free, p.used, {})

    def _seq(self, before: int, op: str) -> int:
        # every engine operation opens its event first: it is before + 1
        return before + 1

    def _count(self) -> int:
        return int(lib.ss_event_count(self._m))

    # ---- syscall-like, bytes ----
    def memfd_create(self, name: str, flags: Names = ()) -> int:
        raw = name.encode("utf-8")
        if b"\0" in raw:
            raise ValueError("a memfd name cannot contain NUL")
        f = u32(bits(flags, MFD_FLAGS, "memfd flag"))
        with self._lock:
            before = self._count()
            rc = lib.ss_memfd_create(self._m, raw, f)
            return self._check("memfd_create", rc, before, {"flags": f, "name_len": len(raw)})

    def gmem_create(self, size: int, flags: Names = ()) -> int:
        s, f = i64(size), u64(bits(flags, GMEM_FLAGS, "guest_memfd flag"))
        with self._lock:
            before = self._count()
            rc = lib.ss_gmem_create(self._m, s, f)
            return self._check("KVM_CREATE_GUEST_MEMFD", rc, before, {"size": s, "flags": f})

    def ftruncate(self, fd: int, length: int) -> None:
        fd, n = i32(fd), i64(length)
        with self._lock:
            before = self._count()
            self._check("ftruncate", lib.ss_ftruncate(self._m, fd, n), before, {"length": n}, fd)

    def add_seals(self, fd: int, seals: Names) -> None:
        """A seal the profile's kernel lacks (F_SEAL_EXEC in 5.15) is a bit it does not
        know: the engine answers EINVAL, as that kernel does."""
        foreign = FOREIGN_SEALS.get(self.config.profile, {})
        names = [seals] if isinstance(seals, str | int) else list(seals)
        missing = [n for n in names if isinstance(n, str) and n in foreign]
        table = {**SEALS[self.config.profile], **foreign}
        fd, s = i32(fd), u32(bits(names, table, "seal"))
        args = {"seals": s, "foreign": len(missing)}
        with self._lock:
            before = self._count()
            self._check("F_ADD_SEALS", lib.ss_add_seals(self._m, fd, s), before, args, fd)

    def get_seals(self, fd: int) -> int:
        fd = i32(fd)
        with self._lock:
            before = self._count()
            return self._check("F_GET_SEALS", lib.ss_get_seals(self._m, fd), before, {}, fd)

    def fallocate(self, fd: int, mode: Names, offset: int, length: int) -> bool:
        """True when pending: a punch waits on a page locked by get_lock_pfn."""
        # a hot path (a VMM's conversions), made as get_lock_pfn: the modes as callers
        # spell them most are one dict lookup, the lock is taken with bound acquire /
        # release, cffi refuses what does not fit the C types and only then are the
        # ints cast like C
        try:  # a punch as the bench and the service spell it first: a list compare
            if mode == _PUNCH_LIST:
                md = _PUNCH_KEEP
            else:
                md = _FALLOC_BITS.get(tuple(mode) if mode.__class__ is list else mode)  # type: ignore[arg-type]
        except TypeError:  # unhashable: a set, a dict, ...
            md = None
        if md is None:
            md = i32(bits(mode, FALLOC_MODES, "fallocate mode"))
        try:
            rc = _fallocate(self._f, fd, md, offset, length)
        except (OverflowError, TypeError):
            fd, offset, length = i32(fd), i64(offset), i64(length)
            rc = _fallocate(self._f, fd, md, offset, length)
        if rc == 0:
            return False
        if rc == _PENDING:
            return True
        try:  # failed: the wrapper returned with the lock held
            before = self._out_seq[0] - 1  # a failure makes one event: the last
            args = {"mode": md, "offset": i64(offset), "len": i64(length)}
            self._check("fallocate", rc, before, args, i32(fd))
            return False
        finally:
            face_unlock(self._f)

    def pread(self, fd: int, offset: int, count: int) -> bytes:
        fd, off, n = i32(fd), i64(offset), i64(count)
        with self._lock:
            room = 0  # the engine copies at most min(count, size - offset)
            if off >= 0 and n > 0 and lib.ss_file_info(self._m, fd, self._finfo) == 0:
                room = max(0, min(n, self._finfo.size - off))
            if room > READ_CAP:
                raise ValueError(f"pread of {room} bytes is more than one call copies ({READ_CAP})")
            buf = ffi.new("char[]", max(room, 1))
            before = self._count()
            got = lib.ss_pread(self._m, fd, buf, n, off)
            got = self._check("pread", got, before, {"count": n, "offset": off}, fd)
            if got > room:
                raise AssertionError(f"ss_pread returned {got} bytes into a {room}-byte buffer")
            return ffi.buffer(buf, got)[:]

    def pwrite(self, fd: int, offset: int, data: bytes) -> int:
        """Bytes written; 0 when pending (queued behind a sleeping operation)."""
        fd, off = i32(fd), i64(offset)
        view = ffi.from_buffer(bytes(data) if isinstance(data, memoryview) else data)
        with self._lock:
            before = self._count()
            rc = lib.ss_pwrite(self._m, fd, view, len(view), off)
            n = self._check("pwrite", rc, before, {"count": len(view), "offset": off}, fd)
            if n == lib.SS_PENDING and self._reader.slept(self._m, self._seq(before, "pwrite")):
                return 0  # queued behind a sleeping operation of this file
            return n

    def mmap(self, fd: int, offset: int, length: int, prot: Names, flags: Names) -> int:
        """A map id (>= 1)."""
        fd, off, n = i32(fd), i64(offset), i64(length)
        p, f = i32(bits(prot, PROTS, "prot")), i32(bits(flags, MAP_FLAGS, "map flag"))
        with self._lock:
            before = self._count()
            rc = lib.ss_mmap(self._m, fd, off, n, p, f)
            args = {"offset": off, "length": n, "prot": p, "flags": f}
            return self._check("mmap", rc, before, args, fd)

    def munmap(self, map_id: int) -> bool:
        """True when it sleeps: the file's last reference went and its final truncate
        waits on a page get_lock_pfn holds (as close)."""
        mid = i32(map_id)
        with self._lock:
            before = self._count()
            rc = self._check("munmap", lib.ss_munmap(self._m, mid), before, {"map_id": mid})
            return rc == lib.SS_PENDING

    def close(self, fd: int) -> bool:
        """True when it sleeps: the last reference went, and the final truncate freed the
        pages it could lock and waits for the ones get_lock_pfn holds (they go, and the
        file with them, at put_unlock_pfn)."""
        fd = i32(fd)
        with self._lock:
            before = self._count()
            return self._check("close", lib.ss_close(self._m, fd), before, {}, fd) == lib.SS_PENDING
