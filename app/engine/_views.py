"""Reading a machine's state: files, owners, runs of pages and frames.

A mixin of Machine (callers of these methods need not hold the lock: each
takes it).  Views read runs of alike pages or frames through preallocated
C arrays, so their cost grows with the number of runs, never with sizes.
"""

from __future__ import annotations

import errno
from typing import Any

from app.engine._errors import make_error
from app.engine._events import EventReader
from app.engine._guard import FaceLock
from app.engine._lib import ffi, lib
from app.engine._names import (
    FRAME_STATES,
    GMEM_FLAGS,
    KINDS,
    MFD_FLAGS,
    PAGE_LIFE,
    PAGE_STATES,
    SEALS,
    names_of,
)
from app.engine._types import (
    Config,
    FileInfo,
    FrameRun,
    GfnRun,
    Memslot,
    OwnerInfo,
    PageRun,
    PhysInfo,
)
from app.engine._unpack import layout, rows
from app.engine._views_log import LogViews, read_all

CHUNK = 1024  # runs fetched per C call
PAGE = lib.SS_PAGE_SIZE
U64_MAX = (1 << 64) - 1


_OWNER_IDS = [
    tuple(i for i in range(lib.SS_MAX_OWNERS) if mask >> i & 1)
    for mask in range(1 << lib.SS_MAX_OWNERS)
]


_OWNER_MASK = (1 << lib.SS_MAX_OWNERS) - 1
_PG_HOLE = lib.SS_PG_HOLE
_tuple_new = tuple.__new__  # builds a NamedTuple without its Python __new__
_PAGE_RUN = layout(
    "struct ss_page_run",
    [
        "start",
        "end",
        "state",
        "order",
        "pfn",
        "locked",
        "dirty",
        "refcount",
        "mapped_by",
        "waiters",
        "life",
    ],
)


def _owner_ids(mask: int) -> list[int]:
    """The owner ids of a bitmask (read off a table: a run of pages has one)."""
    return list(_OWNER_IDS[mask & ((1 << lib.SS_MAX_OWNERS) - 1)])


def _index(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise ValueError(f"{name} must be an int in 0..2**64-1, got {value!r}")
    return value


def _fd(fd: int) -> int:
    """An fd for C; out of int range reads as -1 (EBADF), never as another fd."""
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"fd must be an int, got {fd!r}")
    return fd if -(2**31) <= fd < 2**31 else -1


def _max_runs(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_runs must be a positive int, got {value!r}")
    return value


class Views(LogViews):
    config: Config
    _m: Any
    _f: Any  # the machine's mutex (struct ss_face)
    _lock: FaceLock
    _out_seq: memoryview
    _reader: EventReader

    def _init_buffers(self) -> None:
        self._finfo = ffi.new("struct ss_file_info *")
        self._oinfo = ffi.new("struct ss_owner_info *")
        self._vinfo = ffi.new("struct ss_vm_info *")  # is_vm's answer, never read
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
            owners=_owner_ids(i.owners),
            nr_pages=i.nr_pages,
            mappings=i.mappings,
            writable_maps=i.writable_maps,
            pending=i.pending,
        )

    def file(self, fd: int) -> FileInfo:
        with self._lock:
            info = self._file_info(_fd(fd))
        if info is None:
            raise make_error("file", 9, f"fd {fd} is not an open file")
        return info

    def file_row(
        self, fd: int
    ) -> tuple[int, int, bytes, int, int, int, int, int, int, int, int] | None:
        """fd's struct ss_file_info as it is (None: not an open file): fd, kind, name bytes,
        size, seals, flags, owner mask, nr_pages, mappings, writable_maps, pending. For
        answers built straight from it (a batch's); file() is the same, named."""
        fd = _fd(fd)
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
        cur, limit = _index("start", start, 0), _max_runs(max_runs)
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

    # ---- pages and frames ----
    def page_runs(
        self, fd: int, start: int = 0, end: int | None = None, max_runs: int = 10000
    ) -> tuple[list[PageRun], int]:
        """Runs of alike pages of a file over [start, end) (page indexes).

        Returns (runs, next): next is where a following call should start;
        it equals end when done.  With end None the runs stop at the file's
        end (its size in pages, rounded up): a trailing hole is cut there.
        """
        cur, stop = _index("start", start, 0), _index("end", end, U64_MAX)
        limit = _max_runs(max_runs)
        out: list[PageRun] = []
        with self._lock:
            while len(out) < limit:
                ask = min(CHUNK, limit - len(out))
                n = lib.ss_file_runs(self._m, _fd(fd), cur, stop, self._pages, ask, self._next)
                if n < 0:
                    raise make_error("file", -n, f"fd {fd} is not an open file")
                # the runs' fields in one unpack a run, the PageRun built positionally
                for st, e, state, order, pfn, lk, dt, ref, maps, wt, life in rows(
                    _PAGE_RUN, self._pages, n
                ):
                    hole = state == _PG_HOLE
                    out.append(
                        _tuple_new(
                            PageRun,
                            (
                                st,
                                e,
                                PAGE_STATES.get(state) or str(state),
                                None if hole else pfn,
                                None if hole else order,
                                lk != 0,
                                ref,
                                dt != 0,
                                list(_OWNER_IDS[maps & _OWNER_MASK]),
                                wt,
                                PAGE_LIFE.get(life),
                            ),
                        )
                    )
                nxt = int(self._next[0])
                if n < ask or nxt <= cur:
                    cur = nxt
                    break
                cur = nxt
            if end is None and out and out[-1].state == "hole" and out[-1].end == U64_MAX:
                # no end given: stop at the file's end (pages past it, kept by
                # FALLOC_FL_KEEP_SIZE, come before this trailing hole)
                info = self._file_info(_fd(fd))
                size_pages = -(-info.size // PAGE) if info is not None else 0
                last = out.pop()
                if size_pages > last.start:
                    out.append(last._replace(end=size_pages))
                cur = max(size_pages, last.start)
        return out, cur

    def frame_runs(
        self, start: int = 0, end: int | None = None, max_runs: int = 10000
    ) -> tuple[list[FrameRun], int]:
        """Runs of alike frames over [start, end) (pfns); (runs, next) as page_runs."""
        cur = _index("start", start, 0)
        stop = _index("end", end, self.config.phys_pages)
        limit = _max_runs(max_runs)
        out: list[FrameRun] = []
        with self._lock:
            while len(out) < limit:
                ask = min(CHUNK, limit - len(out))
                n = lib.ss_phys_runs(self._m, cur, stop, self._frames, ask, self._next)
                if n < 0:
                    raise ValueError(f"bad frame range [{start}, {end})")
                for r in self._frames[0:n]:
                    # a free frame, or a hwpoisoned one off the free lists, is in no file
                    free = r.state == lib.SS_FRAME_FREE or r.state == lib.SS_FRAME_HWPOISON
                    out.append(
                        FrameRun(
                            start=r.start,
                            end=r.end,
                            state=FRAME_STATES.get(r.state, str(r.state)),
                            fd=None if free or r.fd < 0 else r.fd,
                            index=None if free else r.index,
                            order=r.order,
                            no_direct_map=bool(r.no_direct_map),
                            map_id=r.map_id or None,
                        )
                    )
                nxt = int(self._next[0])
                if n < ask or nxt <= cur:
                    cur = nxt
                    break
                cur = nxt
        return out, cur

    def phys(self) -> PhysInfo:
        with self._lock:
            lib.ss_phys_info(self._m, self._pinfo)
            p = self._pinfo
            by_order = {o: int(p.free_by_order[o]) for o in range(lib.SS_MAX_ORDER + 1)}
            return PhysInfo(p.total, p.free, p.used, by_order)

    # ---- density: what a window far wider than the screen holds, per column ----
    def page_density(self, fd: int, start: int, end: int, cols: int) -> tuple[list[int], list[int]]:
        """[start, end) of file fd cut in `cols` columns (index x in column
        (x - start) * cols // (end - start)): per column the present pages and the
        DENS_* flags of what they are (huge, locked, dirty, mapped, waited on).
        ValueError on an empty window or cols outside 1..MAX_COLS."""
        a, b = _index("start", start, 0), _index("end", end, 0)
        present, flags = ffi.new("uint64_t[]", max(cols, 1)), ffi.new("uint8_t[]", max(cols, 1))
        with self._lock:
            rc = lib.ss_file_density(self._m, _fd(fd), a, b, cols, present, flags)
        if rc == -errno.EBADF:
            raise make_error("file", -rc, f"fd {fd} is not an open file")
        if rc < 0:
            raise ValueError(f"bad window [{start}, {end}) in {cols} columns")
        return list(present), list(flags)

    def frame_density(self, start: int, end: int, cols: int) -> tuple[list[int], list[int]]:
        """Frames [start, end) in `cols` columns: per column the frames in use and
        whose they are: an fd, or DENS_NONE / DENS_MANY / DENS_NOFILE."""
        a, b = _index("start", start, 0), _index("end", end, 0)
        used, fds = ffi.new("uint64_t[]", max(cols, 1)), ffi.new("int[]", max(cols, 1))
        with self._lock:
            rc = lib.ss_phys_density(self._m, a, b, cols, used, fds)
        if rc < 0:
            raise ValueError(f"bad window [{start}, {end}) in {cols} columns")
        return list(used), list(fds)
