"""A small pure-Python reference model of the engine's files, for property tests.

It follows ../shared/SEMANTICS.md and tests/oracle/kernel-answers.txt, not
the engine's C code: each rule is written out once, in the kernel's check
order, as plainly as possible (pages are a dict from page index to a Page,
data is a bytearray per written page). thp is "never": every page is one
4 KiB frame, so frames in use = resident pages + orphaned pages.

What it knows:
- memfds (rfc-v2: 5.15 plus F_SEAL_GUEST; guest-memfd: 6.18 with F_SEAL_EXEC)
  and guest_memfd files: size, seals, resident pages and their data, mappings
  (all, and those that block F_SEAL_WRITE), registered owners, memslots;
- the RFC's guest interface: get_lock_pfn locks a page (+1 reference),
  put_unlock_pfn unlocks it; in guest-memfd get_lock_pfn only takes a
  reference (kvm_gmem_get_pfn) and put_unlock_pfn drops it;
- the callbacks an owner receives: fallocate(start, end) once per successful
  allocation of a memfd (end exclusive), invalidate_page_range(i, i) once per
  removed or invalidated memfd page (end inclusive), gmem_invalidate(a, b)
  once per memslot overlapping a guest_memfd punch (end exclusive);
- sleeping: a removal (punch, shrinking ftruncate) meeting a page locked by
  get_lock_pfn removes the other pages now and sleeps on the first locked
  one; it goes on when that page is unlocked.  While it sleeps it holds the
  file's i_rwsem, so ftruncate, fallocate, F_ADD_SEALS and pwrite of that
  file queue behind it (after the checks the kernel makes before taking
  i_rwsem).  get_lock_pfn on a locked page sleeps on it too.

Pfns are the engine's business: the model learns a page's pfn when the
engine reports it (get_lock_pfn) and from then on expects the same one.

Every public method mirrors app.engine.Machine: it returns what the Python
face returns or raises ModelError(errno name, hazard).  Each call appends
its events (the call's own, then any wakes it caused) to `events`.

`quirks` (names from QUIRKS) make the model imitate engine bugs that are
known and reported, so property tests keep covering everything else; the
model without quirks is the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from app import oracle

PAGE = 4096
MAX_FILESIZE = (1 << 63) - 1
MAX_RW_COUNT = 0x7FFFF000
NO_END = 1 << 64  # a removal "to the end of the file"
PENDING = 1  # what the engine's events record for an operation that sleeps

# the uapi values, as the kernel oracle spells them
MFD_FLAGS = oracle.MFD_FLAGS
GMEM_FLAGS = oracle.GMEM_FLAGS
SEAL_SEAL, SEAL_SHRINK, SEAL_GROW, SEAL_WRITE, SEAL_FUTURE_WRITE = 0x1, 0x2, 0x4, 0x8, 0x10
SEAL_GUEST = SEAL_EXEC = 0x20
_SEALS = {
    "F_SEAL_SEAL": SEAL_SEAL,
    "F_SEAL_SHRINK": SEAL_SHRINK,
    "F_SEAL_GROW": SEAL_GROW,
    "F_SEAL_WRITE": SEAL_WRITE,
    "F_SEAL_FUTURE_WRITE": SEAL_FUTURE_WRITE,
}
SEALS = {
    "rfc-v2": {**_SEALS, "F_SEAL_GUEST": SEAL_GUEST},
    "guest-memfd": {**_SEALS, "F_SEAL_EXEC": SEAL_EXEC},
}
KEEP_SIZE, PUNCH_HOLE = 0x1, 0x2
FALLOC_MODES = {"FALLOC_FL_KEEP_SIZE": KEEP_SIZE, "FALLOC_FL_PUNCH_HOLE": PUNCH_HOLE}
PROTS = {"PROT_READ": 0x1, "PROT_WRITE": 0x2}
MAP_FLAGS = {"MAP_SHARED": 0x1, "MAP_PRIVATE": 0x2}
MAP_SYNC = 0x80000


# Known engine divergences the model can imitate, so that property tests keep
# covering everything else until the engine is fixed (each has a strict xfail
# repro in tests/engine/test_model.py).
QUIRKS = {
    "checks_after_wait": (
        "F_ADD_SEALS, fallocate and pwrite on a file with a sleeping removal queue "
        "before the checks the kernel makes before taking i_rwsem (unknown seal bits, "
        "offset / len / mode / EFBIG, rw_verify_area), so those errors come late"
    ),
    "orphan_of_dead_file": (
        "a file that dies while get_lock_pfn holds one of its pages leaves an orphan "
        "frame that names a freed inode: ss_check() fails ('frame N belongs to no file')"
    ),
    "sleeper_requeued_last": (
        "a queued ftruncate / fallocate that starts and sleeps on a locked page is "
        "requeued at the end of the waiters, so operations queued behind it on the same "
        "file run while it still holds i_rwsem"
    ),
    "getlock_waiter_no_pin": (
        "a get_lock_pfn sleeping on a page lock does not keep the file alive: after "
        "close() it wakes with EBADF (and its inode slot may be reused by a new file); "
        "the tests do not close such files, the model needs no imitation"
    ),
    "waiter_sleeps_on_frame": (
        "a sleeping get_lock_pfn waits on a frame, not on a page it holds a reference "
        "to: when its page is removed and the frame at once reused for a new page that "
        "is locked, it sleeps on that unrelated page instead of retrying"
    ),
}


def bits(names: Iterable[str | int] | str | int, table: dict[str, int]) -> int:
    if isinstance(names, str | int):
        names = [names]
    value = 0
    for n in names:
        value |= n if isinstance(n, int) else table[n]
    return value


def as_i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & (1 << 31) else v


class ModelError(Exception):
    def __init__(self, name: str, hazard: str | None = None) -> None:
        super().__init__(name)
        self.name = name
        self.hazard = hazard


@dataclass(eq=False)
class Page:
    data: bytearray | None = None  # None: reads as zeros
    locked: bool = False  # rfc-v2: held by a get_lock_pfn caller
    refs: int = 0  # references beyond the page cache's one
    pfn: int | None = None  # learned from the engine
    home: Inode | None = None  # the file it was in (for orphans)
    dead: bool = False  # an orphan whose file has died


@dataclass(eq=False)
class Inode:
    kind: str  # "memfd" | "guest_memfd"
    flags: int
    size: int = 0
    seals: int = 0
    pages: dict[int, Page] = field(default_factory=dict)
    maps: int = 0  # live mappings
    shared_maps: int = 0  # mappings that block F_SEAL_WRITE
    owners: list[int] = field(default_factory=list)  # registered (RFC)
    fd: int | None = None


@dataclass(eq=False)
class Waiter:
    kind: str  # "remove" | "getlock" | "blocked"
    op: str  # the sleeping operation, as the engine names it
    ino: Inode
    page: Page | None = None  # remove / getlock: the page it sleeps on
    start: int = 0  # remove: pages [start, end), going on from resume
    end: int = 0
    resume: int = 0
    index: int = 0  # getlock
    alloc: bool = False
    call: Callable[[], int | Waiter] | None = None  # blocked: the rest of the call


@dataclass(eq=False)
class Memslot:
    owner: int
    ino: Inode
    gfn: int
    index: int
    npages: int


@dataclass
class MEvent:
    op: str
    ok: bool = True
    errno: str | None = None
    result: int | None = None
    pending: bool = False
    hazard: str | None = None
    callbacks: list[tuple[str, int, int, int]] = field(default_factory=list)
    wakes_op: str | None = None
    page: Page | None = None  # get_lock_pfn and its wake: the page handed out


class Model:
    """The reference model of one machine (thp never)."""

    def __init__(
        self, profile: str = "rfc-v2", phys_pages: int = 1024, quirks: Iterable[str] = ()
    ) -> None:
        self.quirks = frozenset(quirks)
        unknown = self.quirks - QUIRKS.keys()
        assert not unknown, f"unknown quirks {unknown}"
        self.profile = profile
        self.rfc = profile == "rfc-v2"
        self.phys_pages = phys_pages
        self.fds: dict[int, Inode] = {}
        self.inodes: list[Inode] = []  # alive: open, mapped, registered, waited on
        self.orphans: list[Page] = []  # out of the page cache, still referenced
        self.maps: dict[int, tuple[Inode, bool]] = {}  # map id -> (inode, blocks WRITE)
        self.next_map = 1
        self.owner_kinds: list[str] = []
        self.memslots: list[Memslot] = []
        self.waiters: list[Waiter] = []
        self.events: list[MEvent] = []
        self._ev: MEvent | None = None
        # the engine's pfn of a page (fd's file, index), for the quirk above
        self.pfn_hint: Callable[[Inode, int], int | None] | None = None

    # ---- bookkeeping ----
    def _call(self, op: str, fn: Callable[[], object]) -> object:
        ev = MEvent(op)
        self.events.append(ev)
        self._ev = ev
        try:
            value = fn()
        except ModelError as e:
            ev.ok, ev.errno = False, e.name
            ev.hazard = ev.hazard or e.hazard
            e.hazard = ev.hazard
            raise
        finally:
            self._ev = None
        return value

    def _cb(self, fn: str, owner: int, start: int, end: int) -> None:
        assert self._ev is not None
        self._ev.callbacks.append((fn, owner, start, end))

    def _file(self, fd: int) -> Inode:
        ino = self.fds.get(fd)
        if ino is None:
            raise ModelError("EBADF")
        return ino

    def pending(self, ino: Inode) -> int:
        """Operations holding or waiting for the file's i_rwsem."""
        return sum(1 for w in self.waiters if w.ino is ino and w.kind != "getlock")

    def waiting(self, ino: Inode) -> int:
        """Operations of this file that sleep (what FileInfo.pending counts)."""
        return sum(1 for w in self.waiters if w.ino is ino)

    def used_frames(self) -> int:
        return sum(len(i.pages) for i in self.inodes) + len(self.orphans)

    def live_pages(self) -> list[Page]:
        return [p for i in self.inodes for p in i.pages.values()] + self.orphans

    def held(self) -> list[Page]:
        """Pages a get_lock_pfn caller holds (locked, or referenced in guest-memfd)."""
        return [p for p in self.live_pages() if p.refs]

    def _owners_hold(self, ino: Inode) -> bool:
        """Whether the file's registrations hold it (the KVM model drops dead VMs')."""
        return bool(ino.owners)

    def _in_use(self, ino: Inode, but: Waiter | None = None) -> bool:
        """Whether anything holds the file (page locks aside), waiter `but` not counted."""
        return (
            ino.fd is not None
            or ino.maps > 0
            or self._owners_hold(ino)
            or any(w.ino is ino and w is not but for w in self.waiters)
            or any(s.ino is ino for s in self.memslots)
        )

    def _put_inode(self, ino: Inode) -> None:
        """The file goes if nothing holds it, nor a page lock (never freed under it)."""
        if ino in self.inodes and not self._in_use(ino) and not self._locked(ino):
            for idx in sorted(ino.pages):
                self._drop(ino, idx)
            for page in self.orphans:
                page.dead = page.dead or page.home is ino
            self.inodes.remove(ino)

    def _locked(self, ino: Inode) -> bool:
        return any(p.locked for p in ino.pages.values())

    def _release(self, ino: Inode, op: str) -> int | Waiter:
        """The last reference went (close, munmap): the final truncate frees what it can
        lock and sleeps on each page get_lock_pfn holds; the file goes with the last."""
        if ino in self.inodes and not self._in_use(ino) and self._locked(ino):
            return self._removal(ino, 0, 2**64, op)
        self._put_inode(ino)
        return 0

    def _drop(self, ino: Inode, idx: int) -> None:
        page = ino.pages.pop(idx)
        page.data, page.home = None, ino
        if page.refs:
            self.orphans.append(page)

    def _alloc(self, ino: Inode, idx: int, used: int | None = None) -> Page:
        """The page at idx, allocated if missing (used: frames in use, if known)."""
        page = ino.pages.get(idx)
        if page is not None:
            return page
        if (self.used_frames() if used is None else used) >= self.phys_pages:
            raise ModelError("ENOMEM")
        page = ino.pages[idx] = Page()
        return page

    def _install(self, ino: Inode) -> int:
        fd = 3
        while fd in self.fds:
            fd += 1
        self.fds[fd] = ino
        ino.fd = fd
        self.inodes.append(ino)
        return fd

    # ---- files ----
    def memfd_create(self, name: str, flags: Iterable[str | int] = ()) -> int:
        f = bits(flags, MFD_FLAGS) & 0xFFFFFFFF

        def run() -> int:
            allowed = 0x7 if self.rfc else 0x1F
            if f & MFD_FLAGS["MFD_HUGETLB"]:
                allowed |= 0x3F << 26
            if f & ~allowed or len(name.encode()) > 249:
                raise ModelError("EINVAL")
            if f & 0x10 and f & 0x8:
                raise ModelError("EINVAL")
            seals = SEAL_SEAL
            if f & MFD_FLAGS["MFD_NOEXEC_SEAL"]:
                seals = SEAL_EXEC
            elif f & MFD_FLAGS["MFD_ALLOW_SEALING"]:
                seals = 0
            return self._install(Inode("memfd", f, seals=seals))

        return self._call("memfd_create", run)  # type: ignore[return-value]

    def gmem_create(self, size: int, flags: Iterable[str | int] = ()) -> int:
        f = bits(flags, GMEM_FLAGS)

        def run() -> int:
            if self.rfc:
                raise ModelError("ENOTTY")
            if f & ~0x3 or size <= 0 or size % PAGE:
                raise ModelError("EINVAL")
            return self._install(Inode("guest_memfd", f, size=size))

        return self._call("KVM_CREATE_GUEST_MEMFD", run)  # type: ignore[return-value]

    def close(self, fd: int) -> bool:
        def run() -> bool:
            ino = self._file(fd)
            del self.fds[fd]
            ino.fd = None
            return self._finish(self._release(ino, "close")) == PENDING

        return self._call("close", run)  # type: ignore[return-value]

    # ---- sleeping: the i_rwsem queue and page locks ----
    def _blocked(self, op: str, ino: Inode, call: Callable[[], int | Waiter]) -> bool:
        """Queue the rest of a call behind a sleeper of this file; True if queued."""
        if not self.pending(ino):
            return False
        self.waiters.append(Waiter("blocked", op, ino, call=call))
        assert self._ev is not None
        self._ev.pending = True
        self._ev.result = PENDING
        return True

    def _finish(self, r: int | Waiter) -> int:
        """A call's result; a removal that sleeps is queued and reported pending."""
        if isinstance(r, Waiter):
            self.waiters.append(r)
            assert self._ev is not None
            self._ev.pending = True
            return PENDING
        return r

    def _run_waiters(self) -> None:
        progress = True
        while progress:
            progress = False
            for i, w in enumerate(self.waiters):
                if self._try(i, w):
                    progress = True
                    break

    def _try(self, i: int, w: Waiter) -> bool:
        if w.kind == "blocked":
            if any(v.ino is w.ino and v.kind != "getlock" for v in self.waiters[:i]):
                return False
        elif w.kind == "getlock" and "waiter_sleeps_on_frame" in self.quirks:
            assert w.page is not None
            if w.page.locked or any(p.locked and p.pfn == w.page.pfn for p in self.live_pages()):
                return False
        elif w.page is not None and w.page.locked:
            return False
        ev = MEvent("wake", wakes_op=w.op)
        self.events.append(ev)
        self._ev = ev
        try:
            if w.kind == "remove":
                got = self._remove(w.ino, w.start, w.end, w.resume)
                if got is not None:
                    w.resume, w.page = got
                    ev.result, ev.pending = PENDING, True
                    return False
                ev.result = 0
            elif w.kind == "getlock":
                page, sleeps = self._get_lock(w.ino, w.index, w.alloc)
                if sleeps:
                    w.page = page
                    ev.result, ev.pending = PENDING, True
                    return False
                ev.result, ev.page = 0, page
                if page.pfn is None and self.pfn_hint is not None:
                    page.pfn = self.pfn_hint(w.ino, w.index)  # locked: still there
            else:
                assert w.call is not None
                r = w.call()
                if isinstance(r, Waiter):
                    # it sleeps in turn, still holding i_rwsem: it keeps its
                    # place ahead of the operations queued behind it
                    r.op = "wake"
                    if "sleeper_requeued_last" in self.quirks:
                        self.waiters.remove(w)
                        self.waiters.append(r)
                    else:
                        self.waiters[i] = r
                    ev.result, ev.pending = 0, True
                    return True
                ev.result = r
        except ModelError as e:
            ev.ok, ev.errno, ev.hazard = False, e.name, e.hazard
        finally:
            self._ev = None
        last = w.ino in self.inodes and not self._in_use(w.ino, but=w)
        if w.kind in ("remove", "blocked") and last and self._locked(w.ino):
            # the woken syscall held the file's last reference (it was closed while
            # the call slept): its final truncate frees what it can lock, sleeps on the rest
            self._ev = ev
            try:
                got = self._remove(w.ino, 0, 2**64, 0)
            finally:
                self._ev = None
            if got is not None:
                i = self.waiters.index(w)
                self.waiters[i] = Waiter(
                    "remove", w.op, w.ino, page=got[1], start=0, end=2**64, resume=got[0]
                )
                ev.pending = True
                return False
        self.waiters.remove(w)
        self._put_inode(w.ino)
        return True

    # ---- removing pages ----
    def _invalidate_cb(self, ino: Inode, start: int, end_incl: int) -> None:
        for o in ino.owners:
            self._cb("invalidate_page_range", o, start, end_incl)

    def _gmem_invalidate(self, ino: Inode, start: int, end: int) -> None:
        for o in range(len(self.owner_kinds)):
            for s in self.memslots:
                if s.owner != o or s.ino is not ino:
                    continue
                a, b = max(start, s.index), min(end, s.index + s.npages)
                if a < b:
                    self._cb("gmem_invalidate", o, a, b)

    def _remove(self, ino: Inode, start: int, end: int, resume: int) -> tuple[int, Page] | None:
        """Remove the unlocked pages of [resume, end); the first locked one, if any."""
        first: tuple[int, Page] | None = None
        for idx in sorted(i for i in ino.pages if resume <= i < end):
            page = ino.pages[idx]
            if page.locked:
                first = first or (idx, page)
                continue
            if ino.kind == "memfd":
                self._invalidate_cb(ino, idx, idx)
            self._drop(ino, idx)
        return first

    def _removal(self, ino: Inode, start: int, end: int, op: str) -> int | Waiter:
        got = self._remove(ino, start, end, start)
        if got is None:
            return 0
        return Waiter("remove", op, ino, page=got[1], start=start, end=end, resume=got[0])

    def _zero(self, ino: Inode, lstart: int, lend: int) -> None:
        """Zero the partial pages at the byte edges of [lstart, lend)."""
        for pos in (lstart, lend):
            if pos % PAGE == 0:
                continue
            page = ino.pages.get(pos // PAGE)
            if page is None or page.data is None:
                continue
            lo, hi = pos // PAGE * PAGE, pos // PAGE * PAGE + PAGE
            a, b = max(lo, lstart), min(hi, lend)
            page.data[a - lo : b - lo] = bytes(b - a)

    # ---- ftruncate ----
    def ftruncate(self, fd: int, length: int) -> None:
        def run() -> None:
            if length < 0:
                raise ModelError("EINVAL")
            ino = self._file(fd)
            call = lambda: self._do_ftruncate(ino, length, "wake")  # noqa: E731
            if not self._blocked("ftruncate", ino, call):
                self._finish(self._do_ftruncate(ino, length, "ftruncate"))

        self._call("ftruncate", run)

    def _do_ftruncate(self, ino: Inode, length: int, op: str) -> int | Waiter:
        if ino.kind == "guest_memfd":
            raise ModelError("EINVAL")
        if (length < ino.size and ino.seals & SEAL_SHRINK) or (
            length > ino.size and ino.seals & SEAL_GROW
        ):
            raise ModelError("EPERM")
        if self.rfc and ino.seals & SEAL_GUEST and length % PAGE:
            raise ModelError("EINVAL")
        old, ino.size = ino.size, length
        if length > old:
            return 0
        # shmem_setattr: the same size or smaller truncates from length on
        self._zero(ino, length, -(-length // PAGE) * PAGE)
        self._cow_truncated(ino, -(-length // PAGE))
        return self._removal(ino, -(-length // PAGE), NO_END, op)

    def _cow_truncated(self, ino: Inode, start: int) -> None:
        """MAP_PRIVATE copies past the new end go (the access model keeps them)."""

    def _cow_punched(self, ino: Inode, start: int, end: int) -> None:
        """A punch of [start, end) keeps MAP_PRIVATE copies (the access model's)."""

    # ---- seals ----
    def add_seals(self, fd: int, seals: Iterable[str | int]) -> None:
        s = bits(seals, SEALS[self.profile]) & 0xFFFFFFFF

        def run() -> None:
            ino = self._file(fd)
            # memfd_add_seals: these two before inode_lock()
            if "checks_after_wait" not in self.quirks and (ino.kind != "memfd" or s & ~0x3F):
                raise ModelError("EINVAL")
            if not self._blocked("F_ADD_SEALS", ino, lambda: self._do_add_seals(ino, s)):
                self._do_add_seals(ino, s)

        self._call("F_ADD_SEALS", run)

    def _do_add_seals(self, ino: Inode, s: int) -> int:
        if ino.kind != "memfd" or s & ~0x3F:
            raise ModelError("EINVAL")
        if ino.seals & SEAL_SEAL:
            raise ModelError("EPERM")
        if not self.rfc and s & SEAL_EXEC and not ino.flags & MFD_FLAGS["MFD_NOEXEC_SEAL"]:
            s |= SEAL_SHRINK | SEAL_GROW | SEAL_WRITE | SEAL_FUTURE_WRITE
        if s & SEAL_WRITE and not ino.seals & SEAL_WRITE:
            if ino.shared_maps:
                raise ModelError("EBUSY")
            if any(p.refs for p in ino.pages.values()):
                raise ModelError("EBUSY")  # pinned pages stay pinned
        if self.rfc and s & SEAL_GUEST and (ino.maps or ino.size):
            raise ModelError("EBUSY")
        ino.seals |= s
        return 0

    def get_seals(self, fd: int) -> int:
        def run() -> int:
            ino = self._file(fd)
            if ino.kind != "memfd":
                raise ModelError("EINVAL")
            return ino.seals

        return self._call("F_GET_SEALS", run)  # type: ignore[return-value]

    # ---- fallocate ----
    def fallocate(self, fd: int, mode: Iterable[str | int], offset: int, length: int) -> bool:
        md = as_i32(bits(mode, FALLOC_MODES))

        def run() -> bool:
            ino = self._file(fd)
            if "checks_after_wait" not in self.quirks:
                fallocate_prechecks(md, offset, length)
            call = lambda: self._do_fallocate(ino, md, offset, length, "wake")  # noqa: E731
            if self._blocked("fallocate", ino, call):
                return True
            r = self._do_fallocate(ino, md, offset, length, "fallocate")
            return self._finish(r) == PENDING

        return self._call("fallocate", run)  # type: ignore[return-value]

    def _do_fallocate(self, ino: Inode, md: int, offset: int, length: int, op: str) -> int | Waiter:
        fallocate_prechecks(md, offset, length)
        end_byte = offset + length
        if ino.kind == "guest_memfd":
            if not md & KEEP_SIZE:
                raise ModelError("EOPNOTSUPP")
            if offset % PAGE or length % PAGE:
                raise ModelError("EINVAL")
            if not md & PUNCH_HOLE and end_byte > ino.size:
                raise ModelError("EINVAL")
        if md & PUNCH_HOLE:
            if ino.kind == "memfd":
                if ino.seals & (SEAL_WRITE | SEAL_FUTURE_WRITE):
                    raise ModelError("EPERM")
                if self.rfc and ino.seals & SEAL_GUEST and (offset % PAGE or length % PAGE):
                    raise ModelError("EINVAL")
            start, end = -(-offset // PAGE), end_byte // PAGE
            self._zero(ino, offset, end_byte)
            if ino.kind == "guest_memfd" and start < end:
                self._gmem_invalidate(ino, start, end)
            if start >= end:
                return 0
            if ino.kind == "memfd":
                self._cow_punched(ino, start, end)
            return self._removal(ino, start, end, op)
        if ino.seals & SEAL_GROW and end_byte > ino.size:
            raise ModelError("EPERM")  # before any allocation, hugetlbfs too
        if ino.flags & MFD_FLAGS["MFD_HUGETLB"]:
            raise ModelError("ENOSPC")
        start, end = offset // PAGE, -(-end_byte // PAGE)
        new: list[int] = []
        used = self.used_frames()
        for idx in range(start, end):
            if idx in ino.pages:
                continue
            try:
                self._alloc(ino, idx, used + len(new))
            except ModelError:
                for n in new:  # give back what this call allocated; no callback
                    self._drop(ino, n)
                raise
            new.append(idx)
        if not md & KEEP_SIZE and end_byte > ino.size:
            ino.size = end_byte
        if ino.kind == "memfd":
            for o in ino.owners:
                self._cb("fallocate", o, start, end)
        return 0

    # ---- read, write ----
    def pread(self, fd: int, offset: int, count: int) -> bytes:
        def run() -> bytes:
            if offset < 0:
                raise ModelError("EINVAL")
            ino = self._file(fd)
            if ino.kind == "guest_memfd":
                raise ModelError("ESPIPE")
            if count < 0:
                raise ModelError("EFAULT")
            if count > MAX_FILESIZE - offset:
                raise ModelError("EINVAL")
            n = min(count, MAX_RW_COUNT)
            if not n or offset >= ino.size:
                return b""
            if self.rfc and ino.seals & SEAL_GUEST:
                raise ModelError("EPERM")
            n = min(n, ino.size - offset)
            out = bytearray(n)
            for idx in range(offset // PAGE, (offset + n - 1) // PAGE + 1):
                page = ino.pages.get(idx)
                if page is None or page.data is None:
                    continue
                lo = idx * PAGE
                a, b = max(lo, offset), min(lo + PAGE, offset + n)
                out[a - offset : b - offset] = page.data[a - lo : b - lo]
            return bytes(out)

        return self._call("pread", run)  # type: ignore[return-value]

    def pwrite(self, fd: int, offset: int, data: bytes) -> int:
        count = len(data)

        def run() -> int:
            if offset < 0:
                raise ModelError("EINVAL")
            ino = self._file(fd)
            if "checks_after_wait" not in self.quirks:
                pwrite_prechecks(ino, offset, count)
            if self._blocked("pwrite", ino, lambda: self._do_pwrite(ino, offset, data)):
                return 0
            return self._do_pwrite(ino, offset, data)

        return self._call("pwrite", run)  # type: ignore[return-value]

    def _do_pwrite(self, ino: Inode, offset: int, data: bytes) -> int:
        pwrite_prechecks(ino, offset, len(data))
        if ino.flags & MFD_FLAGS["MFD_HUGETLB"]:
            raise ModelError("EINVAL")
        done = 0
        while done < len(data):
            pos = offset + done
            chunk = min(PAGE - pos % PAGE, len(data) - done)
            try:
                if ino.seals & (SEAL_WRITE | SEAL_FUTURE_WRITE):
                    raise ModelError("EPERM")
                if self.rfc and ino.seals & SEAL_GUEST:
                    raise ModelError("EPERM")
                if ino.seals & SEAL_GROW and pos + chunk > ino.size:
                    raise ModelError("EPERM")
                page = self._alloc(ino, pos // PAGE)
            except ModelError:
                if done:
                    return done  # a short write
                raise
            if page.data is None:
                page.data = bytearray(PAGE)
            page.data[pos % PAGE : pos % PAGE + chunk] = data[done : done + chunk]
            done += chunk
            ino.size = max(ino.size, pos + chunk)
        return done

    # ---- mappings ----
    def mmap(
        self,
        fd: int,
        offset: int,
        length: int,
        prot: Iterable[str | int],
        flags: Iterable[str | int],
    ) -> int:
        p, f = bits(prot, PROTS), bits(flags, MAP_FLAGS)

        def run() -> int:
            if offset % PAGE:
                raise ModelError("EINVAL")
            ino = self._file(fd)
            if p & ~0x3:
                raise ModelError("EINVAL")
            # do_mmap(): the length, its rounding, the offset, then the type
            kind = f & 0x3
            if length == 0:
                raise ModelError("EINVAL")
            if length < 0 or length > 1 << 47:
                raise ModelError("ENOMEM")
            if offset < 0 or offset > MAX_FILESIZE - length:
                raise ModelError("EOVERFLOW")
            if not kind:
                raise ModelError("EINVAL")
            shared = bool(kind & 0x1)
            if kind == 0x3 and f & MAP_SYNC:
                raise ModelError("EOPNOTSUPP")
            counts = shared
            if ino.kind == "guest_memfd":
                if not ino.flags & GMEM_FLAGS["GUEST_MEMFD_FLAG_MMAP"]:
                    raise ModelError("ENODEV")
                if not shared:
                    raise ModelError("EINVAL")
            else:
                if ino.flags & MFD_FLAGS["MFD_HUGETLB"]:
                    raise ModelError("ENOMEM")
                if self.rfc and ino.seals & SEAL_GUEST:
                    raise ModelError("EPERM")
                if ino.seals & (SEAL_WRITE | SEAL_FUTURE_WRITE):
                    if shared and p & PROTS["PROT_WRITE"]:
                        raise ModelError("EPERM")
                    counts = False  # VM_MAYWRITE cleared
            map_id, self.next_map = self.next_map, self.next_map + 1
            self.maps[map_id] = (ino, counts)
            ino.maps += 1
            ino.shared_maps += counts
            return map_id

        return self._call("mmap", run)  # type: ignore[return-value]

    def munmap(self, map_id: int) -> bool:
        def run() -> bool:
            if map_id not in self.maps:
                raise ModelError("EINVAL")
            ino, counts = self.maps.pop(map_id)
            ino.maps -= 1
            ino.shared_maps -= counts
            return self._finish(self._release(ino, "munmap")) == PENDING

        return self._call("munmap", run)  # type: ignore[return-value]

    # ---- owners and the guest interface ----
    def owner_create(self, kind: str, name: str) -> int:
        def run() -> int:
            if len(self.owner_kinds) == 8:
                raise ModelError("ENOSPC")
            self.owner_kinds.append(kind)
            return len(self.owner_kinds) - 1

        return self._call("owner_create", run)  # type: ignore[return-value]

    def register_guest(self, fd: int, owner: int | None) -> None:
        def run() -> None:
            ino = self._file(fd)
            if not self.rfc:
                raise ModelError("EINVAL")
            if owner is None or not 0 <= owner < len(self.owner_kinds):
                raise ModelError("EINVAL")
            if ino.kind != "memfd":
                raise ModelError("EINVAL")
            if owner in ino.owners:
                pass  # the same owner again: its ops replace the old ones
            elif ino.owners:
                raise ModelError("EPERM")
            else:
                ino.owners.append(owner)
            if not ino.seals & SEAL_GUEST:
                assert self._ev is not None
                self._ev.hazard = "unsealed_register"

        self._call("memfd_register_guest", run)

    def memslot_create(
        self, owner: int, fd: int, gfn: int, index: int, npages: int
    ) -> tuple[int, int, int, int, int]:
        """(slot, fd, gfn, index, npages); only the rules the property tests reach."""

        def run() -> tuple[int, int, int, int, int]:
            if not 0 <= owner < len(self.owner_kinds) or self.owner_kinds[owner] != "kvm":
                raise ModelError("EINVAL")
            ino = self._file(fd)
            if not npages:
                raise ModelError("EINVAL")
            if ino.kind != ("memfd" if self.rfc else "guest_memfd"):
                raise ModelError("EINVAL")
            if ino.kind == "guest_memfd" and index + npages > ino.size // PAGE:
                raise ModelError("EINVAL")
            for s in self.memslots:
                if s.owner == owner and gfn < s.gfn + s.npages and s.gfn < gfn + npages:
                    raise ModelError("EEXIST")
                if s.ino is ino and index < s.index + s.npages and s.index < index + npages:
                    raise ModelError("EEXIST")
            assert not self.rfc, "the model has no RFC memslots (they register the owner)"
            slot = sum(1 for s in self.memslots if s.owner == owner)
            self.memslots.append(Memslot(owner, ino, gfn, index, npages))
            return slot, fd, gfn, index, npages

        return self._call("memslot", run)  # type: ignore[return-value]

    def _get_lock(self, ino: Inode, index: int, alloc: bool) -> tuple[Page, bool]:
        """The page and whether the caller sleeps on its lock."""
        if index >= -(-ino.size // PAGE):
            raise ModelError("EINVAL")
        page = ino.pages.get(index)
        if page is None:
            if not alloc and ino.kind == "memfd":
                raise ModelError("EFAULT", "null_page")  # the RFC oopses here
            page = self._alloc(ino, index)
        if ino.kind == "guest_memfd":
            page.refs += 1  # kvm_gmem_get_pfn: a reference, no lock held
            return page, False
        if page.locked:
            return page, True
        page.locked = True
        page.refs += 1
        return page, False

    def get_lock_pfn(self, fd: int, index: int, alloc: bool) -> tuple[Page | None, bool]:
        """(the page handed out, or None when the caller sleeps; whether it sleeps)."""

        def run() -> tuple[Page | None, bool]:
            ino = self._file(fd)
            if self.rfc != (ino.kind == "memfd"):
                raise ModelError("EINVAL")
            try:
                page, sleeps = self._get_lock(ino, index, alloc)
            except ModelError as e:
                if self.rfc and e.hazard is None:
                    e.hazard = "errno_as_pfn"  # the errno travels back as a pfn
                raise
            assert self._ev is not None
            if sleeps:
                self.waiters.append(
                    Waiter("getlock", "get_lock_pfn", ino, page, index=index, alloc=alloc)
                )
                self._ev.pending = True
                return None, True
            self._ev.page = page
            return page, False

        return self._call("get_lock_pfn", run)  # type: ignore[return-value]

    def put_unlock_pfn(self, pfn: int) -> None:
        def run() -> None:
            if pfn >= self.phys_pages:
                raise ModelError("EINVAL")
            page = next((p for p in self.live_pages() if p.pfn == pfn and p.refs), None)
            if self.rfc:
                if page is None or not page.locked:
                    raise ModelError("EINVAL", "vm_bug_on_page")
                page.locked = False
            elif page is None:
                raise ModelError("EINVAL")
            page.refs -= 1
            if not page.refs and page in self.orphans:
                self.orphans.remove(page)  # its last reference: the frame is freed

        self._call("put_unlock_pfn", run)
        self._run_waiters()
        for ino in [i for i in self.inodes if i.fd is None]:
            self._put_inode(ino)  # a closed file waited for its page

    def invalidate(self, fd: int, start: int, end: int) -> list[tuple[str, int, int, int]]:
        def run() -> list[tuple[str, int, int, int]]:
            ino = self._file(fd)
            if start > end:
                raise ModelError("EINVAL")
            if ino.kind == "guest_memfd":
                self._gmem_invalidate(ino, start, end + 1)
            elif not self.rfc:
                raise ModelError("EINVAL")
            else:
                for idx in sorted(i for i in ino.pages if start <= i <= end):
                    self._invalidate_cb(ino, idx, idx)
            assert self._ev is not None
            return list(self._ev.callbacks)

        return self._call("invalidate", run)  # type: ignore[return-value]


def pwrite_prechecks(ino: Inode, offset: int, count: int) -> None:
    """vfs_write()'s checks, before i_rwsem (rw_verify_area)."""
    if ino.kind == "guest_memfd":
        raise ModelError("ESPIPE")
    if count > MAX_FILESIZE - offset:
        raise ModelError("EINVAL")


def fallocate_prechecks(mode: int, offset: int, length: int) -> None:
    """vfs_fallocate() and the file system's mode check, before inode_lock()."""
    if offset < 0 or length <= 0:
        raise ModelError("EINVAL")
    vfs_mode_check(mode)
    if offset > MAX_FILESIZE - length:
        raise ModelError("EFBIG")
    if mode & ~(KEEP_SIZE | PUNCH_HOLE):
        raise ModelError("EOPNOTSUPP")


def vfs_mode_check(mode: int) -> None:
    """vfs_fallocate()'s mode rules (6.18): the modes it knows pass."""
    mask = 0x02 | 0x08 | 0x10 | 0x20 | 0x40 | 0x80
    if mode & ~(mask | KEEP_SIZE):
        raise ModelError("EOPNOTSUPP")
    op = mode & mask
    if op in (0, 0x10, 0x40):
        return
    if op == PUNCH_HOLE:
        if not mode & KEEP_SIZE:
            raise ModelError("EOPNOTSUPP")
        return
    if op in (0x08, 0x20, 0x80):
        if mode & KEEP_SIZE:
            raise ModelError("EOPNOTSUPP")
        return
    raise ModelError("EOPNOTSUPP")
