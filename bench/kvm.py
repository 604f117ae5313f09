"""KVM-side benchmarks, each against a baseline measured in the same run.

    python bench/kvm.py [--gib 16] [--rounds 9]

1. A guest touching every page of an N GiB SW_PROTECTED VM through the Python face
   (Machine.vcpu_access on each gfn: shared memory from a memfd the VMM maps): ns
   per access.
2. Converting 10 % of it to private and back, one 4 KiB page at a time, as a VMM
   answers KVM_EXIT_MEMORY_FAULT exits (set the attribute private, punch the shared
   memfd page; set it shared, punch the guest_memfd page): ns per converted page;
   also in 2 MiB chunks; and the baseline's own work in the engine (fallocate then
   punch of one guest_memfd page through the Python face).
   Baseline: the real kernel's cost of the VMM's part of one conversion, from
   Python: fallocate then punch of one guest_memfd page (KVM_CREATE_VM +
   KVM_CREATE_GUEST_MEMFD on /dev/kvm).  Rounds alternate engine and kernel;
   medians and spreads.  Target: an engine round trip <= 0.5x that baseline.
3. The attribute store of a 1 TiB VM with 3 runs (target < 64 KiB).
4. Variant hugetlb_1g (a proposal, not merged): converting one 4 KiB page of a 1 GiB
   folio to private and back (the folio splits to 4 KiB pages, then merges back),
   per round, against the same conversion in a 4 KiB-backed guest_memfd (variant
   inplace_conversion) in the same run; ns per conversion and ns per 4 KiB page of
   the folio.  Rounds alternate; medians and spreads.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import statistics
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.engine import Config, Machine

PAGE = 4096
MiB = 1 << 20
PRIV = ["KVM_MEMORY_ATTRIBUTE_PRIVATE"]
PUNCH = ["FALLOC_FL_PUNCH_HOLE", "FALLOC_FL_KEEP_SIZE"]
KVM_CREATE_VM, KVM_CREATE_GUEST_MEMFD = 0xAE01, 0xC040AED4
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


def spread(xs: list[float]) -> str:
    med = statistics.median(xs)
    return f"{med:8.1f} (spread {min(xs):.1f}..{max(xs):.1f})"


class Vm:
    """An engine VM of `gib` GiB: a guest_memfd and a memfd the VMM maps, one slot."""

    def __init__(self, gib: float) -> None:
        size = int(gib * (1 << 30)) // (2 * MiB) * (2 * MiB)
        pages = size // PAGE
        phys = max(1 << 18, (pages + pages // 8 + 1024) // 1024 * 1024)
        self.m = Machine(Config(profile="guest-memfd", phys_pages=phys))
        self.size, self.pages = size, pages
        self.vm = self.m.vm_create("bench", "KVM_X86_SW_PROTECTED_VM")
        self.m.vcpu_create(self.vm)
        self.gmem = self.m.vm_guest_memfd(self.vm, size)
        self.mfd = self.m.memfd_create("shared")
        self.m.ftruncate(self.mfd, size)
        mid = self.m.mmap(self.mfd, 0, size, ["PROT_READ", "PROT_WRITE"], ["MAP_SHARED"])
        addr = self.m.mapping_addr(mid)
        flags = ["KVM_MEM_GUEST_MEMFD"]
        self.m.set_user_memory_region(self.vm, 0, flags, 0, size, addr, 0, self.gmem)

    def touch_all(self) -> float:
        """A read of every page (a write would give each page a 4 KiB data buffer:
        16 GiB of them): each faults the shared page in and maps it."""
        access, vm = self.m.vcpu_access, self.vm
        t = time.perf_counter()
        for gfn in range(self.pages):
            access(vm, 0, gfn << 12)
        return (time.perf_counter() - t) / self.pages

    def gmem_round_trips(self, gfns: range) -> float:
        """The baseline's own work in the engine: fallocate then punch of one
        guest_memfd page (the VMM's part of a conversion): s per page."""
        m, g = self.m, self.gmem
        keep = ["FALLOC_FL_KEEP_SIZE"]
        t = time.perf_counter()
        for gfn in gfns:
            m.fallocate(g, keep, gfn << 12, PAGE)
            m.fallocate(g, PUNCH, gfn << 12, PAGE)
        return (time.perf_counter() - t) / len(gfns)

    def convert(self, gfns: range, chunk: int) -> float:
        """Round trips of `gfns` to private and back, `chunk` pages a call: s per page."""
        m, vm, step = self.m, self.vm, chunk * PAGE
        t = time.perf_counter()
        for gfn in gfns[::chunk]:
            gpa = gfn << 12
            m.set_memory_attributes(vm, gpa, step, PRIV)
            m.fallocate(self.mfd, PUNCH, gpa, step)
        for gfn in gfns[::chunk]:
            gpa = gfn << 12
            m.set_memory_attributes(vm, gpa, step, [])
            m.fallocate(self.gmem, PUNCH, gpa, step)
        return (time.perf_counter() - t) / len(gfns)


def kernel_gmem_fd() -> tuple[int, int] | None:
    """A real VM and a 2 MiB guest_memfd of it, or None without /dev/kvm."""
    try:
        kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
        arg = bytearray(struct.pack("QQ6Q", 2 * MiB, 0, *([0] * 6)))
        gfd = fcntl.ioctl(vm, KVM_CREATE_GUEST_MEMFD, arg)
    except OSError:
        os.close(kvm)
        return None
    os.close(kvm)
    return vm, gfd


def kernel_round_trips(gfd: int, n: int) -> float:
    """fallocate then punch of one guest_memfd page, n times: s per round trip."""
    fa = _libc.fallocate
    t = time.perf_counter()
    for i in range(n):
        off = (i % 512) * PAGE
        if fa(gfd, 1, off, PAGE) or fa(gfd, 3, off, PAGE):  # KEEP_SIZE; | PUNCH_HOLE
            raise OSError(ctypes.get_errno(), "fallocate on the guest_memfd")
    return (time.perf_counter() - t) / n


def attr_memory_tib() -> tuple[int, int]:
    m = Machine(Config(profile="guest-memfd", phys_pages=1024))
    vm = m.vm_create("tib", "KVM_X86_SW_PROTECTED_VM")
    m.set_memory_attributes(vm, 0, 1 << 40, PRIV)
    m.set_memory_attributes(vm, 1 << 30, 2 * MiB, [])
    m.set_memory_attributes(vm, 1 << 39, PAGE, [])
    info = m.vm(vm)
    m.check()
    return info.nattr_runs, info.attr_bytes


GIB = 1 << 30


def _conversion_machine(variant: str) -> tuple[Machine, int]:
    """A 1 GiB guest_memfd (INIT_SHARED) with its memory allocated, under variant."""
    m = Machine(Config("guest-memfd", 2 * GIB // PAGE + (1 << 16), "never", {variant}))
    vm = m.vm_create("bench", "KVM_X86_SW_PROTECTED_VM")
    g = m.vm_guest_memfd(vm, GIB, ["GUEST_MEMFD_FLAG_MMAP", "GUEST_MEMFD_FLAG_INIT_SHARED"])
    m.fallocate(g, ["FALLOC_FL_KEEP_SIZE"], 0, GIB)
    return m, g


def _round_trip(m: Machine, g: int, page: int, n: int) -> float:
    """Seconds per private-and-back conversion of one page (n times)."""
    priv = 1 << 3
    t = time.perf_counter()
    for _ in range(n):
        m.set_memory_attributes2(g, page * PAGE, PAGE, priv)
        m.set_memory_attributes2(g, page * PAGE, PAGE, 0)
    return (time.perf_counter() - t) / n


def giga_conversions(rounds: int) -> None:
    giga, gg = _conversion_machine("hugetlb_1g")
    small, sg = _conversion_machine("inplace_conversion")
    runs, _ = giga.page_runs(gg, 0, 1)
    assert runs[0].order == 18, runs[0]
    g1: list[float] = []
    s4: list[float] = []
    for r in range(rounds):
        page = (r * 7919) % (GIB // PAGE)
        g1.append(_round_trip(giga, gg, page, 3) * 1e9)
        s4.append(_round_trip(small, sg, page, 200) * 1e9)
    runs, _ = giga.page_runs(gg, 0, 1)
    assert runs[0].order == 18, "merged back"
    giga.check()
    small.check()
    per_page = [x / (GIB // PAGE) for x in g1]
    ratios = [a / b for a, b in zip(g1, s4, strict=True)]
    print("hugetlb_1g (proposal): one 4 KiB page of a 1 GiB folio to private and back:")
    print(f"  1 GiB folio, split + merge, ns per conversion  {spread(g1)}")
    print(f"  1 GiB folio, ns per 4 KiB page of the folio    {spread(per_page)}")
    print(f"  4 KiB pages (inplace_conversion), ns per conv. {spread(s4)}")
    print(
        f"  1 GiB / 4 KiB per conversion {statistics.median(ratios):8.1f} "
        f"(spread {min(ratios):.1f}..{max(ratios):.1f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--gib", type=float, default=16.0, help="VM size (default 16)")
    ap.add_argument("--rounds", type=int, default=9, help="alternating rounds (default 9)")
    ap.add_argument("--only-giga", action="store_true", help="only benchmark 4 (1 GiB pages)")
    a = ap.parse_args()
    if a.only_giga:
        giga_conversions(a.rounds)
        return
    v = Vm(a.gib)
    print(f"VM of {v.size >> 20} MiB ({v.pages} pages), SW_PROTECTED, shared memfd mapped")
    touch = v.touch_all()
    v.m.check()
    print(f"guest reads every page once (faults in, maps 4 KiB): {touch * 1e9:8.1f} ns/access")
    tenth = max(512, v.pages // 10) // 512 * 512
    per_round = max(512, tenth // a.rounds) // 512 * 512
    real = kernel_gmem_fd()
    eng4k: list[float] = []
    eng2m: list[float] = []
    same: list[float] = []
    ker: list[float] = []
    for r in range(a.rounds):
        base = (r * per_round) % max(512, v.pages - per_round)
        gfns = range(base, base + per_round)
        same.append(v.gmem_round_trips(gfns) * 1e9)
        if real is not None:
            ker.append(kernel_round_trips(real[1], per_round) * 1e9)
        eng4k.append(v.convert(gfns, 1) * 1e9)
        if real is not None:
            ker.append(kernel_round_trips(real[1], per_round) * 1e9)
        eng2m.append(v.convert(gfns, 512) * 1e9)
    v.m.check()
    print(
        f"convert {per_round} pages a round to private and back, {a.rounds} rounds "
        f"({per_round * a.rounds} pages, ~10 % of the VM), ns per page:"
    )
    print(f"  engine, fallocate + punch of 1 gmem page   {spread(same)}")
    print(f"  engine, 4 KiB conversions (4 calls a page) {spread(eng4k)}")
    print(f"  engine, 2 MiB conversions                  {spread(eng2m)}")
    if ker:
        kr = [statistics.fmean(ker[2 * i : 2 * i + 2]) for i in range(a.rounds)]
        print(f"  kernel, fallocate + punch of 1 gmem page   {spread(ker)}")
        for what, xs in (("same work", same), ("4 KiB conversion", eng4k), ("2 MiB", eng2m)):
            ratios = [e / k for e, k in zip(xs, kr, strict=True)]
            print(
                f"  engine/kernel, {what:17s} {statistics.median(ratios):6.2f} "
                f"(spread {min(ratios):.2f}..{max(ratios):.2f}; target <= 0.5)"
            )
        os.close(real[1])
        os.close(real[0])
    else:
        print("  kernel baseline: no /dev/kvm or no KVM_CREATE_GUEST_MEMFD here (skipped)")
    runs, nbytes = attr_memory_tib()
    print(f"attribute store of a 1 TiB VM with {runs} runs: {nbytes} bytes (target < 64 KiB)")
    giga_conversions(a.rounds)


if __name__ == "__main__":
    main()
