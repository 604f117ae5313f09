"""Reading a machine's maps: runs of pages and of frames, the frames' totals, and
per-column densities for windows far wider than the screen.

A mixin of Machine through Views (each method takes the lock).  Runs come through
preallocated C arrays, so their cost grows with the number of runs, never with sizes.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from app.engine._errors import make_error
from app.engine._guard import FaceLock
from app.engine._lib import ffi, lib
from app.engine._names import FRAME_STATES, PAGE_LIFE, PAGE_STATES
from app.engine._types import Config, FileInfo, FrameRun, PageRun, PhysInfo
from app.engine._unpack import layout, rows

CHUNK = 1024  # runs fetched per C call
PAGE = lib.SS_PAGE_SIZE
U64_MAX = (1 << 64) - 1
_OWNER_IDS = [
    tuple(i for i in range(lib.SS_MAX_OWNERS) if mask >> i & 1)
    for mask in range(1 << lib.SS_MAX_OWNERS)
]
_OWNER_MASK = (1 << lib.SS_MAX_OWNERS) - 1


def owner_ids(mask: int) -> list[int]:
    """The owner ids of a bitmask (read off a table: a run of pages has one)."""
    return list(_OWNER_IDS[mask & _OWNER_MASK])


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


def index_arg(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= U64_MAX:
        raise ValueError(f"{name} must be an int in 0..2**64-1, got {value!r}")
    return value


def fd_arg(fd: int) -> int:
    """An fd for C; out of int range reads as -1 (EBADF), never as another fd."""
    if isinstance(fd, bool) or not isinstance(fd, int):
        raise TypeError(f"fd must be an int, got {fd!r}")
    return fd if -(2**31) <= fd < 2**31 else -1


def max_runs_arg(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"max_runs must be a positive int, got {value!r}")
    return value


class MapViews:
    config: Config
    _m: Any
    _lock: FaceLock
    _pages: Any  # the C arrays of Views._init_buffers
    _frames: Any
    _next: Any
    _pinfo: Any

    if TYPE_CHECKING:

        def _file_info(self, fd: int) -> FileInfo | None: ...  # Views'

    def page_runs(
        self, fd: int, start: int = 0, end: int | None = None, max_runs: int = 10000
    ) -> tuple[list[PageRun], int]:
        """Runs of alike pages of a file over [start, end) (page indexes).

        Returns (runs, next): next is where a following call should start;
        it equals end when done.  With end None the runs stop at the file's
        end (its size in pages, rounded up): a trailing hole is cut there.
        """
        cur, stop = index_arg("start", start, 0), index_arg("end", end, U64_MAX)
        limit = max_runs_arg(max_runs)
        out: list[PageRun] = []
        with self._lock:
            while len(out) < limit:
                ask = min(CHUNK, limit - len(out))
                n = lib.ss_file_runs(self._m, fd_arg(fd), cur, stop, self._pages, ask, self._next)
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
                info = self._file_info(fd_arg(fd))
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
        cur = index_arg("start", start, 0)
        stop = index_arg("end", end, self.config.phys_pages)
        limit = max_runs_arg(max_runs)
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
        a, b = index_arg("start", start, 0), index_arg("end", end, 0)
        present, flags = ffi.new("uint64_t[]", max(cols, 1)), ffi.new("uint8_t[]", max(cols, 1))
        with self._lock:
            rc = lib.ss_file_density(self._m, fd_arg(fd), a, b, cols, present, flags)
        if rc == -errno.EBADF:
            raise make_error("file", -rc, f"fd {fd} is not an open file")
        if rc < 0:
            raise ValueError(f"bad window [{start}, {end}) in {cols} columns")
        return list(present), list(flags)

    def frame_density(self, start: int, end: int, cols: int) -> tuple[list[int], list[int]]:
        """Frames [start, end) in `cols` columns: per column the frames in use and
        whose they are: an fd, or DENS_NONE / DENS_MANY / DENS_NOFILE."""
        a, b = index_arg("start", start, 0), index_arg("end", end, 0)
        used, fds = ffi.new("uint64_t[]", max(cols, 1)), ffi.new("int[]", max(cols, 1))
        with self._lock:
            rc = lib.ss_phys_density(self._m, a, b, cols, used, fds)
        if rc < 0:
            raise ValueError(f"bad window [{start}, {end}) in {cols} columns")
        return list(used), list(fds)
