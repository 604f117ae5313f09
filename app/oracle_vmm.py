"""The contract's VMM address space on the real kernel, and host access to it.

Mapping n gets `addr = lowest - round_up(length)` from 0x7f0000000000 downwards, never
reused (KVM_CONTRACT.md). The top WINDOW_SIZE bytes of that space are mirrored by one
PROT_NONE reservation of this process: each mapping is placed there with MAP_FIXED at
its own offset and a munmap gives the range back to the reservation, so a
`userspace_addr` between, across or past mappings reaches what the session has there
(the same file pages, or a fault) and never whatever else this process maps.

Host access (`mapping_access`) never touches memory directly: it copies through
process_vm_readv / process_vm_writev on this process, which answer EFAULT where a
load or store would fault. An address outside every mapping, or a store to a mapping
without PROT_WRITE, is SIGSEGV (the VMA check comes first); any other EFAULT is the
fault handler's VM_FAULT_SIGBUS (tests/oracle/test_oracle_kvm.py pins that against a
forked child that really touches the page).
"""

from __future__ import annotations

import errno as _errno
from collections.abc import Iterable
from typing import Any

from app.oracle import MAP_FLAGS, MFD_FLAGS, PROTS, Kernel, KernelError, bits
from app.oracle_vcpu import MAP_FIXED_BITS, NONE_FLAGS, host_copy, mmap_fixed, release, reserve

VMM_TOP = 0x7F00_0000_0000  # the contract's first mapping ends here
VMM_FLOOR = 0x10000
# The VMM window: the top WINDOW_SIZE bytes of the contract's address space are mirrored
# by one PROT_NONE reservation of this process, mappings placed in it at their own
# offsets, so that any address there (inside, between or past mappings) is what it is
# in the session: mapped the same, or faulting.
# A guard of the same size above VMM_TOP keeps a slot that runs past the top mapping
# inside the reservation.
WINDOW_SIZE = 1 << 36
WINDOW_BASE = VMM_TOP - WINDOW_SIZE
RESERVED = 2 * WINDOW_SIZE


class VmmSpace(Kernel):
    """The file-side oracle with the contract's VMM address space."""

    def __init__(self) -> None:
        super().__init__()
        self._lowest = VMM_TOP
        self._vmaps: dict[int, tuple[int, int, int]] = {}  # map id -> (vaddr, span, prot)
        self._addrs: dict[int, int] = {}  # map id -> vaddr, kept after munmap
        self._huge: set[int] = set()  # hugetlb memfds: never placed in the window
        self._in_window: set[int] = set()
        self._window = reserve(RESERVED)

    def shutdown(self) -> None:
        super().shutdown()
        self._in_window.clear()
        if self._window:
            release(self._window, RESERVED)
            self._window = 0

    def memfd_create(self, name: str, flags: Iterable[str | int] = ()) -> int:
        fd = super().memfd_create(name, flags)
        if bits(flags, MFD_FLAGS, "memfd flag") & MFD_FLAGS["MFD_HUGETLB"]:
            self._huge.add(fd)
        return fd

    def close(self, fd: int) -> None:
        self._huge.discard(fd)
        super().close(fd)

    def mmap(
        self,
        fd: int,
        offset: int,
        length: int,
        prot: Iterable[str | int],
        flags: Iterable[str | int],
    ) -> int:
        """As Kernel.mmap, placed at the contract's address inside the window when it
        fits there (MAP_FIXED over the reservation), elsewhere when it does not."""
        p = bits(prot, PROTS, "prot") & 0xFFFFFFFF
        f = bits(flags, MAP_FLAGS, "map flag") & 0xFFFFFFFF
        span = (length + 4095) & ~4095 if 0 < length < WINDOW_SIZE else 0
        vaddr = self._lowest - span
        if not span or vaddr < WINDOW_BASE or fd in self._huge or f & MAP_FIXED_BITS:
            map_id = super().mmap(fd, offset, length, prot, flags)
        else:
            target = self._window + (vaddr - WINDOW_BASE)
            got = mmap_fixed(target, length, p, f, self._real(fd), offset)
            if got < 0:
                mmap_fixed(target, span, 0, NONE_FLAGS, -1, 0)  # the hole again
                raise KernelError(-got, "mmap")
            map_id, self._next_map = self._next_map, self._next_map + 1
            self._maps[map_id] = (target, length)
            self._in_window.add(map_id)
        if self._lowest - span < VMM_FLOOR:
            self.munmap(map_id)
            raise KernelError(_errno.ENOMEM, "mmap")
        self._lowest -= span
        self._addrs[map_id] = self._lowest
        self._vmaps[map_id] = (self._lowest, span, p)
        return map_id

    def munmap(self, map_id: int) -> None:
        if map_id in self._in_window:  # give the range back to the reservation
            self._in_window.discard(map_id)
            addr, length = self._maps.pop(map_id)
            mmap_fixed(addr, (length + 4095) & ~4095, 0, NONE_FLAGS, -1, 0)
        else:
            super().munmap(map_id)
        self._vmaps.pop(map_id, None)

    def map_addr(self, map_id: int) -> int:
        """The mapping's address in the session's VMM address space (the API's addr),
        also once it is unmapped."""
        return self._addrs[map_id]

    def real_addr(self, addr: int) -> int:
        """A VMM address as this process's: inside the window, the same place of the
        reservation (unmapped there is PROT_NONE, which faults as unmapped does); inside
        a mapping placed elsewhere, its place; others as they are."""
        if WINDOW_BASE <= addr < WINDOW_BASE + RESERVED:
            return self._window + (addr - WINDOW_BASE)
        for map_id, (base, span, _) in self._vmaps.items():
            if base <= addr < base + span:
                return self._maps[map_id][0] + (addr - base)
        return addr

    def mapping_access(
        self, map_id: int, offset: int, write: bool, value: int = 0
    ) -> dict[str, Any]:
        if map_id not in self._vmaps:
            raise KernelError(_errno.EINVAL, "mapping")  # as munmap of an unknown id
        addr = self._vmaps[map_id][0] + offset
        hit = next(((m, p) for m, (b, s, p) in self._vmaps.items() if b <= addr < b + s), None)
        if hit is None or (write and not hit[1] & 2) or not hit[1] & 3:
            return {"signal": "SIGSEGV", "value": None}
        got = host_copy(self.real_addr(addr), write, value)
        return (
            {"signal": "SIGBUS", "value": None} if got is None else {"signal": None, "value": got}
        )
