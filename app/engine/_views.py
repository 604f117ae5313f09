"""Reading a machine's state: files, owners, an owner's gfn runs (the maps of pages and
frames: app/engine/_views_maps.py).

A mixin of Machine (callers of these methods need not hold the lock: each
takes it).  Views read runs of alike pages or frames through preallocated
C arrays, so their cost grows with the number of runs, never with sizes.
"""

from __future__ import annotations

from typing import Any

from app.engine._errors import make_error
from app.engine._events import EventReader
from app.engine._guard import FaceLock
from app.engine._lib import ffi, lib
from app.engine._names import (
    GMEM_FLAGS,
    KINDS,
    MFD_FLAGS,
    SEALS,
    names_of,
)
from app.engine._types import (
    Config,
    FileInfo,
    GfnRun,
    Memslot,
    OwnerInfo,
)
from app.engine._views_log import LogViews, read_all
from app.engine._views_maps import CHUNK, MapViews, fd_arg, index_arg, max_runs_arg, owner_ids


class Views(MapViews, LogViews):
    config: Config
    _m: Any
    _f: Any  # the machine's mutex (struct ss_face)
    _lock: FaceLock
    _out_seq: memoryview
    _reader: EventReader

    def _init_buffers(self) -> None:
        self._finfo = ffi.new("struct ss_file_info *")
        self._oinfo = ffi.new("struct ss_owner_info *")
        self._pinfo = ffi.new("struct ss_phys_info *")
        self._pages = ffi.new("struct ss_page_run[]", CHUNK)
        self._frames = ffi.new("struct ss_frame_run[]", CHUNK)
        self._gfns = ffi.new("struct ss_gfn_run[]", CHUNK)
        self._next = ffi.new("uint64_t *")
        self._reader = EventReader()

    # ---- files ----
    def _file_info(self, fd: int) -> FileInfo | None:
        i = self._finfo
        if lib.ss_file_info(self._m, fd, i) < 0:
            return None
        gmem = i.kind == lib.SS_KIND_GMEM
        return FileInfo(
            fd=i.fd,
            kind=KINDS.get(i.kind, str(i.kind)),
            name=ffi.string(i.name).decode("utf-8", "replace"),
            size=i.size,
            seals=[] if gmem else names_of(i.seals, SEALS[self.config.profile]),
            seals_value=i.seals,
            flags=names_of(i.flags, GMEM_FLAGS if gmem else MFD_FLAGS),
            owners=owner_ids(i.owners),
            nr_pages=i.nr_pages,
            mappings=i.mappings,
            writable_maps=i.writable_maps,
            pending=i.pending,
        )

    def file(self, fd: int) -> FileInfo:
        with self._lock:
            info = self._file_info(fd_arg(fd))
        if info is None:
            raise make_error("file", 9, f"fd {fd} is not an open file")
        return info

    def file_row(
        self, fd: int
    ) -> tuple[int, int, bytes, int, int, int, int, int, int, int, int] | None:
        """fd's struct ss_file_info as it is (None: not an open file): fd, kind, name bytes,
        size, seals, flags, owner mask, nr_pages, mappings, writable_maps, pending. For
        answers built straight from it (a batch's); file() is the same, named."""
        fd = fd_arg(fd)
        i = self._finfo
        with self._lock:
            if lib.ss_file_info(self._m, fd, i) < 0:
                return None
            return (
                i.fd,
                i.kind,
                ffi.string(i.name),
                i.size,
                i.seals,
                i.flags,
                i.owners,
                i.nr_pages,
                i.mappings,
                i.writable_maps,
                i.pending,
            )

    def files(self) -> list[FileInfo]:
        with self._lock:
            fds, n = read_all("int", lambda buf, size: lib.ss_file_list(self._m, buf, size))
            out = [self._file_info(fd) for fd in fds[0:n]]
        return [f for f in out if f is not None]

    def seal_names(self, value: int) -> list[str]:
        """Names of seal bits; 0x20 is F_SEAL_GUEST (rfc-v2) or F_SEAL_EXEC."""
        return names_of(value & 0xFFFFFFFF, SEALS[self.config.profile])

    # ---- owners ----
    def _owner_info(self, owner: int) -> OwnerInfo | None:
        o = self._oinfo
        if isinstance(owner, bool) or not isinstance(owner, int):
            raise TypeError(f"owner must be an int, got {owner!r}")
        if not 0 <= owner < lib.SS_MAX_OWNERS or lib.ss_owner_info(self._m, owner, o) < 0:
            return None
        n = max(o.nmemslots, 0)
        slots = ffi.new("struct ss_memslot[]", max(n, 1))
        got = lib.ss_owner_memslots(self._m, owner, slots, n) if n else 0
        memslots = [Memslot(s.slot, s.fd, s.gfn, s.index, s.npages) for s in slots[0 : max(got, 0)]]
        kind = {lib.SS_OWNER_KVM: "kvm", lib.SS_OWNER_RECORDER: "recorder"}
        return OwnerInfo(
            id=o.id,
            kind=kind.get(o.kind, str(o.kind)),
            name=ffi.string(o.name).decode("utf-8", "replace"),
            memslots=memslots,
            nmapped=o.nmapped,
            nzapped=o.nzapped,
            ncallbacks=o.ncallbacks,
        )

    def owner(self, owner: int) -> OwnerInfo:
        with self._lock:
            info = self._owner_info(owner)
        if info is None:
            raise make_error("owner", 2, f"no owner with id {owner}")
        return info

    def has_owner(self, owner: int) -> bool:
        """Whether owner is one of owners()' ids (without reading them all)."""
        if isinstance(owner, bool) or not isinstance(owner, int):
            raise TypeError(f"owner must be an int, got {owner!r}")
        if not 0 <= owner < lib.SS_MAX_OWNERS:
            return False
        with self._lock:  # owners() asks ids 0 .. ss_owner_count - 1
            if owner >= lib.ss_owner_count(self._m):
                return False
            return bool(lib.ss_owner_info(self._m, owner, self._oinfo) >= 0)

    def owners(self) -> list[OwnerInfo]:
        with self._lock:
            out = [self._owner_info(i) for i in range(lib.ss_owner_count(self._m))]
        return [o for o in out if o is not None]

    def gfn_runs(self, owner: int, start: int = 0, max_runs: int = 10000) -> list[GfnRun]:
        """Mapped gfn runs of an owner from gfn >= start, at most max_runs."""
        cur, limit = index_arg("start", start, 0), max_runs_arg(max_runs)
        out: list[GfnRun] = []
        with self._lock:
            if self._owner_info(owner) is None:
                raise make_error("owner", 2, f"no owner with id {owner}")
            while len(out) < limit:
                ask = min(CHUNK, limit - len(out))
                n = lib.ss_owner_gfn_runs(self._m, owner, cur, self._gfns, ask)
                out.extend(
                    GfnRun(r.gfn, r.npages, r.pfn, r.order) for r in self._gfns[0 : max(n, 0)]
                )
                if n < ask or not out:
                    break
                cur = out[-1].gfn + out[-1].npages
        return out
