"""The reference model's long-term GUP pins of a VMM mapping (engine_c/kvm_pin.c,
mm/gup.c pin_user_pages with FOLL_LONGTERM, and FOLL_WRITE for a write pin).

- mapping_pin(map_id, offset, length, write): no such mapping EINVAL; length 0, a range
  that wraps or more than PIN_MAX_PAGES pages EINVAL (the engine's bounds). Then every
  page is checked before any is touched (all or nothing): past the mapping, or a write
  pin without PROT_WRITE (check_vma_flags), EFAULT; a fault that would be SIGBUS (past
  the file's end, a guest_memfd page without INIT_SHARED) EFAULT too (faultin_page).
  The model has no hwpoison, so EHWPOISON is never its answer.
- Each page is then faulted in as a touch would (refmodel_kvm_access.py `_host_page`):
  a read pin takes the MAP_PRIVATE copy where there is one, else the file's page (a hole
  allocated, as a read fault does; gup_must_unshare is for anonymous pages only); a
  write pin through MAP_PRIVATE breaks COW as a store does (do_cow_fault / wp_page_copy)
  and pins the copy; through MAP_SHARED it allocates the hole (do_shared_fault). The
  model keeps no dirty bits, so "dirtied" is not modelled.
- Each pinned page holds one more reference (`Page.refs`): a punch, truncate or close
  that drops it from the page cache leaves it an orphan (refmodel.py `_drop`), and a
  dropped MAP_PRIVATE copy (a truncate, a munmap: a pin outlives its mapping) likewise;
  an orphan is a used frame until the unpin drops its last reference. F_SEAL_WRITE is
  EBUSY while a page-cache page is pinned (refmodel.py `_do_add_seals`: pages with refs;
  engine_c/files.c inode_has_pins), a pinned copy is not in the page cache.
- mapping_unpin(pin_id): an unknown id EINVAL; each page drops its reference, an orphan
  whose last reference that was is freed.
- Pin ids are the lowest free slot + 1, as the engine's pin table gives them.
- The model has no in-place conversion (KVM_SET_MEMORY_ATTRIBUTES2), so its EAGAIN at a
  pinned page is not modelled.

`reached` counts what the pins did (pins, write pins, pinned copies, orphans) so a test
can assert the random logs get there.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from tests.engine.refmodel import PAGE, SEAL_WRITE, Inode, ModelError, Page
from tests.engine.refmodel_kvm_slots import SlotsMixin

PIN_MAX_PAGES = 4096  # engine_c/sealscope.h SS_PIN_MAX_PAGES
MAX_PINS = 1024  # SS_MAX_PINS
U64 = (1 << 64) - 1


@dataclass(eq=False)
class Pin:
    map_id: int
    offset: int
    pages: list[Page]


class PinMixin(SlotsMixin):
    gup_pins = True  # mapping_pin / mapping_unpin (kvm_logs.PIN_OPS)

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.pins: dict[int, Pin] = {}
        self.reached: Counter[str] = Counter()

    def mapping_pin(
        self, map_id: int, offset: int, length: int, write: bool = False
    ) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            v = self.vmaps.get(map_id)
            if v is None:
                raise ModelError("EINVAL")  # no such mapping
            off, n = offset & U64, length & U64
            if n == 0 or off + n > U64:
                raise ModelError("EINVAL")
            first, end = off // PAGE, -(-(off + n) // PAGE)
            if end - first > PIN_MAX_PAGES:
                raise ModelError("EINVAL")
            for pg in range(first, end):
                if self._pin_check(v, pg, write):
                    self.reached[
                        "pin_efault_readonly" if write and not v.prot & 0x2 else "pin_efault"
                    ] += 1
                    raise ModelError("EFAULT")
            if len(self.pins) >= MAX_PINS:
                raise ModelError("ENOSPC")
            got: list[Page] = []
            for pg in range(first, end):
                try:
                    page = self._pin_fault(v, pg, write)
                except ModelError:
                    for p in got:  # the pages taken so far are unpinned
                        self._unref(p)
                    raise
                page.refs += 1
                got.append(page)
            pin_id = next(i for i in range(1, MAX_PINS + 2) if i not in self.pins)
            self.pins[pin_id] = Pin(map_id, first * PAGE, got)
            self.reached["pin"] += 1
            self.reached["write_pin"] += bool(write)
            return {"pin_id": pin_id, "offset": first * PAGE, "pages": len(got)}

        return self._call("mapping_pin", run)  # type: ignore[return-value]

    def mapping_unpin(self, pin_id: int) -> None:
        def run() -> None:
            pin = self.pins.pop(pin_id, None)
            if pin is None:
                raise ModelError("EINVAL")  # no such pin
            for page in pin.pages:
                self._unref(page)

        self._call("mapping_unpin", run)

    def _pin_check(self, v: Any, pg: int, write: bool) -> bool:
        """Whether a touch of page pg of the mapping would be a signal (kvm_pin.c
        pin_page_check: past the mapping or no access, a write without PROT_WRITE, a
        SIGBUS past the file's end or at a guest_memfd page without INIT_SHARED)."""
        if pg * PAGE >= v.span or not v.prot & 0x3 or (write and not v.prot & 0x2):
            return True
        ino, idx = v.ino, v.pgoff + pg
        if idx >= -(-ino.size // PAGE):
            return True
        return ino.kind == "guest_memfd" and not ino.flags & 0x2

    def _pin_fault(self, v: Any, pg: int, write: bool) -> Page:
        """What the PTE maps after the fault: the copy if any; a write through
        MAP_PRIVATE breaks COW; else the file's page, a hole allocated."""
        idx = v.pgoff + pg
        if idx in v.cow:
            self.reached["pinned_copy"] += 1
            return v.cow[idx]  # type: ignore[no-any-return]
        if write and not v.shared:
            got = self._host_page(v, v.addr + pg * PAGE, True)  # the copy is made
            assert not isinstance(got, str), got  # checked above
            self.reached["pinned_copy"] += 1
            return got[0]
        return self._alloc(v.ino, idx)

    def _unref(self, page: Page) -> None:
        page.refs -= 1
        if not page.refs and page in self.orphans:
            self.orphans.remove(page)  # its last reference: the frame is freed

    def _orphan_copies(self, copies: list[Page], ino: Inode) -> None:
        """Dropped MAP_PRIVATE copies that a pin holds stay used frames until the unpin."""
        for page in copies:
            if page.refs:
                page.data, page.home = None, ino
                page.dead = ino not in self.inodes
                self.orphans.append(page)
                self.reached["orphan"] += 1

    def _drop(self, ino: Inode, idx: int) -> None:
        page = ino.pages.get(idx)
        super()._drop(ino, idx)
        if page is not None and page.refs and self.pins_hold(page):
            self.reached["orphan"] += 1

    def _do_add_seals(self, ino: Inode, s: int) -> int:
        pinned = any(p.refs for p in ino.pages.values())
        if s & SEAL_WRITE and not ino.seals & SEAL_WRITE and not ino.shared_maps and pinned:
            self.reached["seal_write_pinned"] += 1  # EBUSY (refmodel.py: pages with refs)
        return super()._do_add_seals(ino, s)

    def pins_hold(self, page: Page) -> bool:
        return any(page is p for pin in self.pins.values() for p in pin.pages)

    def _cow_truncated(self, ino: Inode, start: int) -> None:
        for v in self.vmaps.values():
            if v.ino is ino:
                self._orphan_copies([p for i, p in v.cow.items() if i >= start], ino)
        super()._cow_truncated(ino, start)

    def munmap(self, map_id: int) -> bool:
        v = self.vmaps.get(map_id)
        copies = list(v.cow.values()) if v is not None else []
        r = super().munmap(map_id)
        if v is not None and map_id not in self.vmaps:
            self._orphan_copies(copies, v.ino)
        return r
